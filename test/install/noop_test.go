package install

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"apiservice-guard.io/apiservice-guard/test/harness"
)

// noopWebhook is the cheapest webhook anyone could write
// (test/noopwebhook), run as a process of its own like the guard. It
// serves the guard's own serving certificate (read from the guard's
// Secret), so the API server reaches it through the same Service, caBundle
// and TLS; the benchmarks compare the guard with it.
type noopWebhook struct {
	addr string
	pid  int
}

func startNoopWebhook(t testing.TB) *noopWebhook {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "noopwebhook")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/noopwebhook")
	build.Dir = repoPath()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the no-op webhook: %v\n%s", err, out)
	}
	s, _ := secret(t)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for file, key := range map[string]string{certFile: corev1.TLSCertKey, keyFile: corev1.TLSPrivateKeyKey} {
		if err := os.WriteFile(file, s.Data[key], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--listen", addr, "--tls-cert-file", certFile, "--tls-key-file", keyFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 10*time.Second, "the no-op webhook serves TLS", func() bool {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only whether it listens
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	return &noopWebhook{addr: addr, pid: cmd.Process.Pid}
}
