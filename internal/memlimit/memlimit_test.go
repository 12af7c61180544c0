package memlimit

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestSet(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	write := func(t *testing.T, dir, name, value string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name string
		env  string
		root func(t *testing.T) string
		want int64
	}{
		{"cgroup v2", "", func(t *testing.T) string { return write(t, t.TempDir(), "memory.max", "536870912\n") }, 483183820},
		{"cgroup v2 without limit", "", func(t *testing.T) string { return write(t, t.TempDir(), "memory.max", "max\n") }, 0},
		{"cgroup v1", "", func(t *testing.T) string {
			return write(t, t.TempDir(), "memory/memory.limit_in_bytes", "268435456\n")
		}, 241591910},
		{"cgroup v1 without limit", "", func(t *testing.T) string {
			return write(t, t.TempDir(), "memory/memory.limit_in_bytes", "9223372036854771712\n")
		}, 0},
		{"from the manifests", "1073741824", func(t *testing.T) string { return write(t, t.TempDir(), "memory.max", "536870912\n") }, 966367641},
		{"no cgroup", "", func(t *testing.T) string { return t.TempDir() }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv(EnvLimit, tt.env)
			got, why := Set(tt.root(t))
			if got != tt.want {
				t.Errorf("Set() = %d (%s), want %d", got, why, tt.want)
			}
			if tt.want > 0 && debug.SetMemoryLimit(-1) != tt.want {
				t.Errorf("runtime limit %d, want %d", debug.SetMemoryLimit(-1), tt.want)
			}
		})
	}
	t.Run("GOMEMLIMIT wins", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "300MiB")
		debug.SetMemoryLimit(300 << 20)
		if got, why := Set(write(t, t.TempDir(), "memory.max", "536870912\n")); got != 300<<20 || why != "GOMEMLIMIT=300MiB" {
			t.Errorf("Set() = %d (%s)", got, why)
		}
	})
}
