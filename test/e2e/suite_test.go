package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/test/harness"
)

// suite is the shared control plane of the e2e tests; TestMain sets it up.
var suite *environment

// environment is the control plane with the guard in front of it.
type environment struct {
	*harness.ControlPlane
	client   client.Client
	guardBin string
	guard    *harness.Guard
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	cp, err := harness.Start(harness.Options{
		WebhookPaths: []string{repoPath("manifests", "base", "webhook.yaml")},
		// cert-manager's Certificate kind, for the caBundle injection tests.
		CRDPaths:    []string{repoPath("test", "crds")},
		AuditPolicy: auditPolicy,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setting up:", err)
		return 1
	}
	e := &environment{ControlPlane: cp, client: cp.Client, guardBin: filepath.Join(cp.Dir, "apiservice-guard")}
	defer e.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := harness.BuildGuard(ctx, repoPath(), e.guardBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// The guard runs with the RBAC of manifests/base, not as an admin.
	if err := cp.InstallGuardRBAC(ctx, repoPath()); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if e.guard, err = cp.StartGuard(e.guardBin, defaultConfig); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the guard:", err)
		return 1
	}
	suite = e
	return m.Run()
}

// repoPath resolves a path relative to the repository root.
func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

func (e *environment) stop() {
	if e.guard != nil {
		_ = e.guard.Stop()
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping control plane:", err)
	}
	if os.Getenv("E2E_KEEP") == "" {
		os.RemoveAll(e.Dir)
	} else {
		fmt.Fprintln(os.Stderr, "e2e: kept", e.Dir)
	}
}

// useGuardConfig restarts the guard with another config for one test and
// restores the default afterwards.
func useGuardConfig(t *testing.T, config string) {
	t.Helper()
	useGuard(t, harness.GuardOptions{Config: config})
}

// useGuard restarts the guard as o says for one test (Bin and Kubeconfig
// default to the suite's) and restores the default guard afterwards.
func useGuard(t *testing.T, o harness.GuardOptions) {
	t.Helper()
	if o.Bin == "" {
		o.Bin = suite.guardBin
	}
	if o.Kubeconfig == "" {
		o.Kubeconfig = suite.GuardKubeconfig
	}
	_ = suite.guard.Stop()
	g, err := suite.StartGuardWith(o)
	if err != nil {
		t.Fatalf("restarting guard: %v", err)
	}
	suite.guard = g
	t.Cleanup(func() {
		_ = suite.guard.Stop()
		g, err := suite.StartGuard(suite.guardBin, defaultConfig)
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
			t.Logf("guard log (%s):\n%s", suite.guard.LogPath, suite.guard.Logs())
		}
	})
}

// kubectl runs the built kubectl with stdin and returns stdout and stderr.
func kubectl(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	// Not cancelled with the test: t.Context() is already done when
	// t.Cleanup functions run, and they call kubectl to delete what a test made.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
	defer cancel()
	cmd := suite.KubectlCommand(ctx, args...)
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = stringsReader(stdin)
	}
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// auditPolicy records APIService, NetworkPolicy, ConfigMap and k0s
// ClusterConfig writes at Metadata level, which carries the admission audit
// annotations.
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
      - group: ""
        resources: [configmaps]
      - group: k0s.k0sproject.io
        resources: [clusterconfigs]
  - level: None
`

// defaultConfig is the guard's config for most tests: every rule at its
// default action.
const defaultConfig = "mode: enforce\n"
