// Package harness runs apiservice-guard against a real control plane for the
// e2e tests and `make demo`: kube-apiserver and etcd through controller-runtime
// envtest (binaries from hack/tools.sh), the webhook configurations from
// manifests/ installed by envtest, an admin kubeconfig for kubectl, and the
// guard binary as a subprocess.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// Options configure a control plane.
type Options struct {
	// Assets is the directory holding kube-apiserver, etcd and kubectl.
	// Default: $KUBEBUILDER_ASSETS.
	Assets string
	// Dir is the working directory for kubeconfig, logs and configs.
	// Default: a new temporary directory.
	Dir string
	// WebhookPaths are manifest files or directories whose webhook
	// configurations envtest installs, pointed at the local guard.
	WebhookPaths []string
	// AuditPolicy, when set, enables the API server audit log with this policy.
	AuditPolicy string
	// CRDPaths are CRD manifest files or directories that envtest installs
	// (and waits for) before Start returns. A path that does not exist is an
	// error. Default: none.
	CRDPaths []string
}

// ControlPlane is a running kube-apiserver + etcd.
type ControlPlane struct {
	Env        *envtest.Environment
	Client     client.Client
	Kubeconfig string
	// GuardKubeconfig is the identity StartGuard runs the guard as; empty
	// means the admin. InstallGuardRBAC sets it.
	GuardKubeconfig string
	Kubectl         string
	AuditLog        string
	Dir             string
	// Network is the cluster network the API server dials backends on.
	Network *Network
}

// ErrNoAssets is returned when no binary directory is known.
var ErrNoAssets = errors.New("KUBEBUILDER_ASSETS is not set: run through make, or set KUBEBUILDER_ASSETS=$(hack/tools.sh)")

// Start brings up the control plane and installs the webhook configurations.
// On error, whatever started is stopped.
func Start(opts Options) (_ *ControlPlane, err error) {
	if opts.Assets == "" {
		opts.Assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if opts.Assets == "" {
		return nil, ErrNoAssets
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "apiservice-guard-"); err != nil {
			return nil, err
		}
	}
	cp := &ControlPlane{Dir: opts.Dir, Kubectl: filepath.Join(opts.Assets, "kubectl")}
	cp.Env = &envtest.Environment{
		BinaryAssetsDirectory:    opts.Assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		WebhookInstallOptions:    envtest.WebhookInstallOptions{Paths: opts.WebhookPaths},
		CRDInstallOptions:        envtest.CRDInstallOptions{Paths: opts.CRDPaths, ErrorIfPathMissing: true},
	}
	network, egress, err := startNetwork(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("starting the test cluster network: %w", err)
	}
	cp.Network = network
	defer func() {
		if err != nil {
			network.Close()
		}
	}()
	cp.Env.ControlPlane.GetAPIServer().Configure().Set("egress-selector-config-file", egress)
	if opts.AuditPolicy != "" {
		policy := filepath.Join(opts.Dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(opts.AuditPolicy), 0o600); err != nil {
			return nil, err
		}
		cp.AuditLog = filepath.Join(opts.Dir, "audit.log")
		cp.Env.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", cp.AuditLog)
	}
	cfg, err := cp.Env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	defer func() {
		if err != nil {
			_ = cp.Env.Stop()
		}
	}()
	if cp.Client, err = client.New(cfg, client.Options{Scheme: cluster.NewScheme()}); err != nil {
		return nil, err
	}
	return cp, cp.writeKubeconfig()
}

// writeKubeconfig provisions an admin user and writes its kubeconfig.
func (cp *ControlPlane) writeKubeconfig() (err error) {
	cp.Kubeconfig, err = cp.UserKubeconfig("guard-admin", "system:masters")
	return err
}

// UserKubeconfig provisions a client-certificate user with groups and writes
// a kubeconfig for it, returning its path. A name of the form
// system:serviceaccount:<namespace>:<name> is authorized exactly as that
// ServiceAccount would be: RBAC matches ServiceAccount subjects by user name.
func (cp *ControlPlane) UserKubeconfig(name string, groups ...string) (string, error) {
	user, err := cp.Env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(cp.Dir, "kubeconfig-"+strings.NewReplacer(":", "-", "/", "-").Replace(name))
	return path, os.WriteFile(path, data, 0o600)
}

// Stop stops the API server and etcd.
func (cp *ControlPlane) Stop() error {
	err := cp.Env.Stop()
	cp.Network.Close()
	return err
}

// KubectlCommand returns a kubectl command against the control plane.
func (cp *ControlPlane) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, cp.Kubectl, append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
}

// BuildGuard compiles ./cmd/apiservice-guard of the repository at root into out.
func BuildGuard(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/apiservice-guard")
	cmd.Dir = root
	if data, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the guard: %w\n%s", err, data)
	}
	return nil
}
