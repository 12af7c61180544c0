package install

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/servingcert"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// suite is the control plane the tests share; TestMain sets it up.
var suite struct {
	cp       *harness.ControlPlane
	guardBin string
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
	suite.cp, suite.guardBin = cp, filepath.Join(cp.Dir, "apiservice-guard")
	if err := harness.BuildGuard(ctx, repoPath(), suite.guardBin); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	// The guard runs with the RBAC of manifests/base, not as an admin.
	if err := cp.InstallGuardRBAC(ctx, repoPath()); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	if err := setUpService(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		return 1
	}
	return m.Run()
}

// repoPath resolves a path relative to the repository root.
func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// setUpService applies the guard's Service from manifests/base: the API
// server reaches the webhooks at its ClusterIP, which the test network
// leads to the guards that serve (route).
func setUpService(ctx context.Context) error {
	if out, err := suite.cp.KubectlCommand(ctx, "apply", "-f", repoPath("manifests", "base", "service.yaml")).CombinedOutput(); err != nil {
		return fmt.Errorf("applying the Service: %w\n%s", err, out)
	}
	svc := &corev1.Service{}
	if err := suite.cp.Client.Get(ctx, client.ObjectKey{Namespace: harness.GuardNamespace, Name: "apiservice-guard-webhook"}, svc); err != nil {
		return err
	}
	suite.service = net.JoinHostPort(svc.Spec.ClusterIP, "443")
	return suite.cp.Network.Balance(suite.service)
}

// webhookManifest is manifests/base/webhook.yaml with every failurePolicy
// Fail, and edit applied to each webhook's clientConfig block (nil: none).
func webhookManifest(t testing.TB, clientConfig func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(repoPath("manifests", "base", "webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "failurePolicy: Ignore", "failurePolicy: Fail")
	if clientConfig != nil {
		text = strings.ReplaceAll(text, "    clientConfig:\n", clientConfig("    clientConfig:\n"))
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

// fresh removes what an earlier test left of an installation: the
// webhook configurations, the guard's Secret and its leader Lease. Call it
// before the guards start.
func fresh(t testing.TB) {
	t.Helper()
	for _, args := range [][]string{
		{"delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "apiservice-guard", "--ignore-not-found"},
		{"delete", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret, "--ignore-not-found"},
		{"delete", "lease", "-n", harness.GuardNamespace, "apiservice-guard-leader", "--ignore-not-found"},
	} {
		kubectl(t, "", args...)
	}
}

// guard is one replica: the guard process and where it listens.
type guard struct {
	*harness.Guard
	addr    string // webhook, 127.0.0.1:port
	metrics string
}

// startGuard starts a self-managed replica on a port of its own, as the
// guard's ServiceAccount, and waits until it is ready (it serves a
// certificate from the Secret).
func startGuard(t testing.TB, extra ...string) *guard {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := harness.FreePort(port)
	if err != nil {
		t.Fatal(err)
	}
	g, err := suite.cp.StartGuardWith(harness.GuardOptions{
		Bin: suite.guardBin, Kubeconfig: suite.cp.GuardKubeconfig, Port: port,
		MetricsAddr: fmt.Sprintf("127.0.0.1:%d", metrics),
		ExtraArgs: append([]string{"--cert-mode=self-managed", "--namespace=" + harness.GuardNamespace,
			"--ca-propagation=2s", "--audit-interval=0"}, extra...),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &guard{Guard: g, addr: fmt.Sprintf("127.0.0.1:%d", port), metrics: fmt.Sprintf("127.0.0.1:%d", metrics)}
}

// presented is the certificate the replica serves now.
func (g *guard) presented(t testing.TB) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads what is presented
	if err != nil {
		t.Fatalf("TLS to %s: %v", g.addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// writes sums the guard's apiservice_guard_certificate_writes_total whose
// object label is object.
func (g *guard) writes(t testing.TB, object string) int {
	t.Helper()
	resp, err := http.Get("http://" + g.metrics + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiservice_guard_certificate_writes_total{") || !strings.Contains(line, `object="`+object+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(v)
	}
	return total
}

// secret reads the guard's Secret and decodes its bundle.
func secret(t testing.TB) (*corev1.Secret, []*x509.Certificate) {
	t.Helper()
	s := &corev1.Secret{}
	if err := suite.cp.Client.Get(t.Context(), client.ObjectKey{Namespace: harness.GuardNamespace, Name: servingcert.DefaultSecret}, s); err != nil {
		t.Fatalf("reading the Secret: %v", err)
	}
	bundle, err := certs.ParseBundle(s.Data[servingcert.KeyCABundle])
	if err != nil {
		t.Fatalf("the Secret's %s: %v", servingcert.KeyCABundle, err)
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
