// Package hack holds the project's build scripts; this test checks the
// caching contract of tools.sh without building anything.
package hack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestToolsCacheKey: tools.sh reuses binaries that are present under the key
// of the current pins, and a changed pin gives a new key (so a rebuild).
func TestToolsCacheKey(t *testing.T) {
	work := t.TempDir()
	copyFile(t, "tools.sh", filepath.Join(work, "tools.sh"))
	for _, m := range []string{"kube", "etcd"} {
		for _, f := range []string{"go.mod", "go.sum"} {
			copyFile(t, filepath.Join("tools", m, f), filepath.Join(work, "tools", m, f))
		}
	}
	cache := t.TempDir()
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command("bash", append([]string{filepath.Join(work, "tools.sh")}, args...)...)
		cmd.Env = append(os.Environ(), "GUARD_TOOLS_CACHE="+cache)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tools.sh %v: %v\n%s", args, err, stderr.String())
		}
		return strings.TrimSpace(string(out)), stderr.String()
	}
	dir, _ := run("--print")
	if !strings.HasPrefix(dir, cache+"/") {
		t.Fatalf("bin dir %q is not under GUARD_TOOLS_CACHE %q", dir, cache)
	}
	// Present binaries are reused: nothing is built.
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, stderr := run()
	if got != dir || strings.Contains(stderr, "building") {
		t.Fatalf("with binaries present: dir %q (want %q), stderr %q", got, dir, stderr)
	}
	// A changed pin is a different cache directory.
	mod := filepath.Join(work, "tools", "kube", "go.mod")
	data, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mod, append(data, []byte("\n// pin changed\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, _ := run("--print"); changed == dir {
		t.Fatalf("changing a pinned go.mod kept the cache directory %q", dir)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
