package install

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"apiservice-guard.io/apiservice-guard/test/harness"
)

// suite is the control plane the tests share; TestMain sets it up.
var suite struct {
	in *harness.Installation
	cp *harness.ControlPlane
	// service is the guard's webhook Service's ClusterIP and port, which
	// the test network leads to the guards' ports.
	service string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "install tests need kube-apiserver and etcd: run them with `make test`, "+
			"or set KUBEBUILDER_ASSETS=$(hack/tools.sh)")
		return 1
	}
	// OpenReports, so that the leader's audit writes reports; cert-manager's
	// kinds, for the chart's cert-manager variant.
	cp, err := harness.Start(harness.Options{CRDPaths: []string{repoPath("test", "crds", "reports", "openreports"),
		repoPath("test", "crds", "certificates.cert-manager.io.yaml"), repoPath("test", "crds", "issuers.cert-manager.io.yaml")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "install: setting up:", err)
		return 1
	}
	defer func() {
		_ = cp.Stop()
		if os.Getenv("E2E_KEEP") == "" {
			os.RemoveAll(cp.Dir)
		} else {
			fmt.Fprintln(os.Stderr, "install: kept", cp.Dir)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in, err := cp.Install(ctx, repoPath())
	if err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	suite.in, suite.cp, suite.service = in, cp, in.Service
	return m.Run()
}

// repoPath resolves a path relative to the repository root.
func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// webhookManifest is manifests/base/webhook.yaml with every failurePolicy
// Fail, and edit applied to each webhook's clientConfig block (nil: none).
func webhookManifest(t testing.TB, clientConfig func(string) string) string {
	t.Helper()
	text, err := suite.in.WebhookManifest(clientConfig)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// kubectl runs kubectl as the admin with stdin, failing the test on an error.
func kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := suite.cp.KubectlCommand(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fresh removes what an earlier test left of an installation
// (Installation.Fresh). Call it before the guards start.
func fresh(t testing.TB) {
	t.Helper()
	if err := suite.in.Fresh(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// guard is one replica: the guard process and where it listens.
type guard struct{ *harness.Replica }

// startGuard starts a self-managed replica (Installation.StartReplica).
func startGuard(t testing.TB, extra ...string) *guard {
	t.Helper()
	r, err := suite.in.StartReplica(extra...)
	if err != nil {
		t.Fatal(err)
	}
	return &guard{r}
}

// presented is the certificate the replica serves now.
func (g *guard) presented(t testing.TB) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.Addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads what is presented
	if err != nil {
		t.Fatalf("TLS to %s: %v", g.Addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// writes sums the guard's apiservice_guard_certificate_writes_total whose
// object label is object.
func (g *guard) writes(t testing.TB, object string) int {
	t.Helper()
	n, err := harness.Counter(g.Metrics, "apiservice_guard_certificate_writes_total", map[string]string{"object": object})
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// secret reads the guard's Secret and decodes its bundle.
func secret(t testing.TB) (*corev1.Secret, []*x509.Certificate) {
	t.Helper()
	s, bundle, err := suite.in.Secret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, bundle
}

// eventually polls cond every 100 ms until it holds or limit passes.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
