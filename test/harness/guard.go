package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Guard is the guard binary running `serve` against a control plane.
type Guard struct {
	cmd     *exec.Cmd
	LogPath string
	// HealthAddr serves /healthz and /readyz.
	HealthAddr string
	done       chan error
	readyz     string
}

var guardStarts atomic.Int32

// GuardOptions override where a guard listens and what it reads.
type GuardOptions struct {
	// Bin is the guard binary. Required.
	Bin string
	// Config is the policy config (YAML text). Default: empty, every rule at
	// its default action.
	Config string
	// CertDir holds tls.crt and tls.key. Default: envtest's webhook serving
	// certificate, which the installed webhook configurations trust.
	CertDir string
	// Port is the webhook port. Default: envtest's webhook port.
	Port int
	// MetricsAddr is the metrics address. Default "0" (disabled).
	MetricsAddr string
	// Kubeconfig is the identity the guard runs as. Default: the admin.
	Kubeconfig string
	// ExtraArgs are appended to the serve command line.
	ExtraArgs []string
}

// StartGuard runs bin with the given policy config on envtest's webhook host,
// port and serving certificate, and waits until /readyz answers 200.
func (cp *ControlPlane) StartGuard(bin, config string, extraArgs ...string) (*Guard, error) {
	return cp.StartGuardWith(GuardOptions{Bin: bin, Config: config, Kubeconfig: cp.GuardKubeconfig, ExtraArgs: extraArgs})
}

// StartGuardWith runs the guard as o says and waits until /readyz answers 200.
func (cp *ControlPlane) StartGuardWith(o GuardOptions) (*Guard, error) {
	wh := cp.Env.WebhookInstallOptions
	if o.CertDir == "" {
		o.CertDir = wh.LocalServingCertDir
	}
	if o.Port == 0 {
		o.Port = wh.LocalServingPort
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0"
	}
	if o.Kubeconfig == "" {
		o.Kubeconfig = cp.Kubeconfig
	}
	// The leader election Lease lives in the guard's namespace, as in a
	// cluster.
	if err := cp.EnsureNamespace(GuardNamespace); err != nil {
		return nil, err
	}
	n := guardStarts.Add(1)
	cfgPath := filepath.Join(cp.Dir, fmt.Sprintf("guard-config-%d.yaml", n))
	if err := os.WriteFile(cfgPath, []byte(o.Config), 0o600); err != nil {
		return nil, err
	}
	// Not the webhook's port, which is free while no guard serves it.
	probe, err := FreePort(o.Port)
	if err != nil {
		return nil, err
	}
	g := &Guard{
		LogPath:    filepath.Join(cp.Dir, fmt.Sprintf("guard-%d.log", n)),
		done:       make(chan error, 1),
		HealthAddr: fmt.Sprintf("127.0.0.1:%d", probe),
	}
	g.readyz = "http://" + g.HealthAddr + "/readyz"
	logFile, err := os.Create(g.LogPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve",
		"--kubeconfig", o.Kubeconfig,
		"--config", cfgPath,
		"--cert-dir", o.CertDir,
		"--host", wh.LocalServingHost,
		"--port", strconv.Itoa(o.Port),
		"--metrics-bind-address", o.MetricsAddr,
		"--health-probe-bind-address", g.HealthAddr,
		"--leader-election-namespace", GuardNamespace,
		// Backends are dialed through the test network, as the API server
		// dials them.
		"--backend-dial", "unix://" + cp.Network.Socket(),
		// Stopped at once unless a test asks for the delay (a later flag
		// wins).
		"--shutdown-delay", "0s",
	}, o.ExtraArgs...)
	g.cmd = exec.Command(o.Bin, args...)
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() { g.done <- g.cmd.Wait(); logFile.Close() }()
	if err := g.waitReady(90 * time.Second); err != nil {
		g.Stop()
		return nil, fmt.Errorf("%w\n%s", err, g.Logs())
	}
	return g, nil
}

// waitReady polls /readyz until 200, the process exits, or timeout.
func (g *Guard) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-g.done:
			g.done <- err
			return fmt.Errorf("guard exited before becoming ready: %v", err)
		default:
		}
		if resp, err := client.Get(g.readyz); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("guard not ready after %s", timeout)
}

// PID is the guard process's ID; 0 before it starts.
func (g *Guard) PID() int {
	if g.cmd.Process == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

// ProcessCPUTime is the CPU time (user and system) process pid has used,
// read from /proc/<pid>/stat.
func ProcessCPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 14th and 15th fields of the line.
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 30s).
// It returns the process's exit error, nil for a clean exit.
func (g *Guard) Stop() error {
	if g.cmd.Process == nil {
		return nil
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.done:
		g.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		return fmt.Errorf("guard did not stop within 30s; killed")
	}
}

// Logs returns what the guard has logged so far.
func (g *Guard) Logs() string {
	data, _ := os.ReadFile(g.LogPath)
	return string(data)
}

// FreePort returns a loopback port nothing listens on, other than the
// ports named.
func FreePort(not ...int) (int, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		held = append(held, l) // held, so that the next try gets another port
		if port := l.Addr().(*net.TCPAddr).Port; !slices.Contains(not, port) {
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

// EnsureNamespace creates the namespace name unless it exists.
func (cp *ControlPlane) EnsureNamespace(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}
