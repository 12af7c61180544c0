package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// suite is the shared control plane of the e2e tests; TestMain sets it up.
var suite *environment

// environment is one running control plane with the guard in front of it.
type environment struct {
	env        *envtest.Environment
	client     client.Client
	clientset  *kubernetes.Clientset
	kubeconfig string
	kubectl    string
	guardBin   string
	auditLog   string
	dir        string
	guard      *guardProcess
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "e2e: KUBEBUILDER_ASSETS is not set: run `make test`, or `KUBEBUILDER_ASSETS=$(hack/tools.sh) go test ./test/e2e/`")
		return 1
	}
	e, err := start(assets)
	if e != nil {
		defer e.stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setting up:", err)
		return 1
	}
	suite = e
	return m.Run()
}

// repoPath resolves a path relative to the repository root.
func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// start brings up the control plane with audit logging, installs the
// webhook configurations from manifests/, builds and starts the guard.
func start(assets string) (*environment, error) {
	dir, err := os.MkdirTemp("", "apiservice-guard-e2e-")
	if err != nil {
		return nil, err
	}
	e := &environment{dir: dir, kubectl: filepath.Join(assets, "kubectl"), auditLog: filepath.Join(dir, "audit.log")}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return e, err
	}
	e.env = &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{repoPath("manifests", "base", "webhook.yaml")},
		},
	}
	e.env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policy).
		Set("audit-log-path", e.auditLog)
	cfg, err := e.env.Start()
	if err != nil {
		return e, fmt.Errorf("starting control plane: %w", err)
	}
	if e.client, err = client.New(cfg, client.Options{Scheme: cluster.NewScheme()}); err != nil {
		return e, err
	}
	if e.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return e, err
	}
	if err := e.writeKubeconfig(); err != nil {
		return e, err
	}
	if err := e.buildGuard(); err != nil {
		return e, err
	}
	e.guard, err = e.startGuard(defaultConfig)
	return e, err
}

// writeKubeconfig provisions an admin user and writes its kubeconfig, which
// the guard and kubectl use.
func (e *environment) writeKubeconfig() error {
	user, err := e.env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	e.kubeconfig = filepath.Join(e.dir, "kubeconfig")
	return os.WriteFile(e.kubeconfig, data, 0o600)
}

// buildGuard compiles the guard binary under test.
func (e *environment) buildGuard() error {
	e.guardBin = filepath.Join(e.dir, "apiservice-guard")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", e.guardBin, "./cmd/apiservice-guard")
	cmd.Dir = repoPath()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the guard: %w\n%s", err, out)
	}
	return nil
}

func (e *environment) stop() {
	if e.guard != nil {
		e.guard.stop()
	}
	if e.env != nil {
		if err := e.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping control plane:", err)
		}
	}
	if os.Getenv("E2E_KEEP") == "" {
		os.RemoveAll(e.dir)
	} else {
		fmt.Fprintln(os.Stderr, "e2e: kept", e.dir)
	}
}

// auditPolicy records APIService and NetworkPolicy writes at Metadata level,
// which carries the admission audit annotations.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: apiregistration.k8s.io
        resources: [apiservices]
      - group: networking.k8s.io
        resources: [networkpolicies]
  - level: None
`

// defaultConfig is the guard's config for most tests: every rule at its
// default action.
const defaultConfig = "mode: enforce\n"
