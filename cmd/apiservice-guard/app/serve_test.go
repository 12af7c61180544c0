package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeStopsOnBadStartup: what is wrong before any connection is made
// stops serve with exit 2 and a message naming the problem.
func TestServeStopsOnBadStartup(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(badConfig, []byte("mode: enforce\nrules:\n  apiservice-typo: Warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown rule in config", []string{"--config", badConfig}, `line 3: rules.apiservice-typo: unknown rule "apiservice-typo"`},
		{"missing config file", []string{"--config", filepath.Join(dir, "nope.yaml")}, "reading config"},
		{"bad control-plane CIDR", []string{"--control-plane-cidr", "10.0.0.0/33"}, `--control-plane-cidr "10.0.0.0/33": not a CIDR`},
		{"CIDR with host bits", []string{"--control-plane-cidr", "172.16.0.5/28"}, "did you mean 172.16.0.0/28?"},
		{"no kubeconfig outside a cluster", nil, "no --kubeconfig and not in a cluster"},
		{"unreadable kubeconfig", []string{"--kubeconfig", filepath.Join(dir, "missing")}, "loading kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"serve", "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, tt.args...), &stdout, &stderr)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.want)
			}
		})
	}
}

// The server's client asks for uncompressed responses (the in-cluster
// configuration is read from fixed paths, so a kubeconfig stands in).
func TestRestConfigAsksForUncompressedResponses(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.DisableCompression {
		t.Errorf("from a kubeconfig: compression asked for")
	}
}
