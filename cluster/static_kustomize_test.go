package cluster_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/cluster"
)

func TestKustomizations(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"kustomization.yaml", "app.yaml",
		"base/Kustomization", "base/deploy.yml",
		"overlays/prod/kustomization.yml",
		".git/kustomization.yaml", // hidden: not walked
		"docs/kustomization.yaml.txt",
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		path string
		want []string // relative to dir
	}{
		{name: "directory", path: dir, want: []string{"base/Kustomization", "kustomization.yaml", "overlays/prod/kustomization.yml"}},
		{name: "subdirectory", path: filepath.Join(dir, "overlays"), want: []string{"overlays/prod/kustomization.yml"}},
		{name: "file", path: filepath.Join(dir, "kustomization.yaml")},
		{name: "directory without", path: filepath.Join(dir, "docs")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cluster.Kustomizations(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, filepath.Join(dir, w))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Kustomizations(%s) (-want +got):\n%s", tt.path, diff)
			}
		})
	}
	if _, err := cluster.Kustomizations(filepath.Join(dir, "missing")); err == nil {
		t.Error("Kustomizations(missing) = nil error, want one")
	}
}
