package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// guardProcess is the guard binary running `serve` against the suite.
type guardProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan error
	ready   string
}

var guardStarts int

// startGuard runs the guard with the given policy config on envtest's webhook
// host, port and serving certificate, and waits until /readyz answers 200.
func (e *environment) startGuard(config string) (*guardProcess, error) {
	guardStarts++
	cfgPath := filepath.Join(e.dir, fmt.Sprintf("guard-config-%d.yaml", guardStarts))
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	probe, err := freePort()
	if err != nil {
		return nil, err
	}
	wh := e.env.WebhookInstallOptions
	g := &guardProcess{
		logPath: filepath.Join(e.dir, fmt.Sprintf("guard-%d.log", guardStarts)),
		done:    make(chan error, 1),
		ready:   fmt.Sprintf("http://127.0.0.1:%d/readyz", probe),
	}
	logFile, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	g.cmd = exec.Command(e.guardBin, "serve",
		"--kubeconfig", e.kubeconfig,
		"--config", cfgPath,
		"--cert-dir", wh.LocalServingCertDir,
		"--host", wh.LocalServingHost,
		"--port", strconv.Itoa(wh.LocalServingPort),
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probe),
	)
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() { g.done <- g.cmd.Wait(); logFile.Close() }()
	if err := g.waitReady(90 * time.Second); err != nil {
		g.stop()
		return nil, fmt.Errorf("%w\n%s", err, g.logs())
	}
	return g, nil
}

// waitReady polls /readyz until 200, the process exits, or timeout.
func (g *guardProcess) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-g.done:
			g.done <- err
			return fmt.Errorf("guard exited before becoming ready: %v", err)
		default:
		}
		if resp, err := http.Get(g.ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("guard not ready after %s", timeout)
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 30s).
func (g *guardProcess) stop() {
	if g.cmd.Process == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.done:
		g.done <- err
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
	}
}

func (g *guardProcess) logs() string {
	data, _ := os.ReadFile(g.logPath)
	return string(data)
}

// useGuardConfig restarts the guard with another config for one test and
// restores the default afterwards.
func useGuardConfig(t *testing.T, config string) {
	t.Helper()
	suite.guard.stop()
	g, err := suite.startGuard(config)
	if err != nil {
		t.Fatalf("restarting guard: %v", err)
	}
	suite.guard = g
	t.Cleanup(func() {
		suite.guard.stop()
		g, err := suite.startGuard(defaultConfig)
		if err != nil {
			t.Fatalf("restoring guard: %v", err)
		}
		suite.guard = g
	})
}

// dumpGuardLogsOnFailure prints the guard's log when the test fails.
func dumpGuardLogsOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guard log (%s):\n%s", suite.guard.logPath, suite.guard.logs())
		}
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// kubectl runs the built kubectl against the suite and returns stdout and
// stderr separately.
func kubectl(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, suite.kubectl, append([]string{"--kubeconfig", suite.kubeconfig}, args...)...)
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = stringsReader(stdin)
	}
	err = cmd.Run()
	return out.String(), errb.String(), err
}
