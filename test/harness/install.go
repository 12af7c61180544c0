package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/servingcert"
)

// Installation is the guard installed from manifests/base without
// cert-manager, as the install tests and the end-to-end benchmarks run it:
// its binary built from the repository, running with the RBAC of
// manifests/base, and its webhook Service, whose ClusterIP the test network
// leads to the replicas that serve.
type Installation struct {
	CP *ControlPlane
	// Root is the repository root.
	Root string
	// Bin is the guard binary built from Root.
	Bin string
	// Service is the webhook Service's ClusterIP and port.
	Service string
}

// Install builds the guard from the repository at root, installs the RBAC
// of manifests/base and applies its webhook Service.
func (cp *ControlPlane) Install(ctx context.Context, root string) (*Installation, error) {
	in := &Installation{CP: cp, Root: root, Bin: filepath.Join(cp.Dir, "apiservice-guard")}
	if err := BuildGuard(ctx, root, in.Bin); err != nil {
		return nil, err
	}
	if err := cp.InstallGuardRBAC(ctx, root); err != nil {
		return nil, err
	}
	if out, err := cp.KubectlCommand(ctx, "apply", "-f", in.path("manifests", "base", "service.yaml")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("applying the Service: %w\n%s", err, out)
	}
	svc := &corev1.Service{}
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: GuardNamespace, Name: "apiservice-guard-webhook"}, svc); err != nil {
		return nil, err
	}
	in.Service = net.JoinHostPort(svc.Spec.ClusterIP, "443")
	return in, cp.Network.Balance(in.Service)
}

func (in *Installation) path(parts ...string) string {
	return filepath.Join(append([]string{in.Root}, parts...)...)
}

// ConfigurationName is the name of the guard's two webhook configurations.
const ConfigurationName = "apiservice-guard"

// Fresh removes what an earlier installation left: the webhook
// configurations, the guard's Secret and its leader Lease. Call it before
// the replicas start.
func (in *Installation) Fresh(ctx context.Context) error {
	for _, args := range [][]string{
		{"delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", ConfigurationName, "--ignore-not-found"},
		{"delete", "secret", "-n", GuardNamespace, servingcert.DefaultSecret, "--ignore-not-found"},
		{"delete", "lease", "-n", GuardNamespace, "apiservice-guard-leader", "--ignore-not-found"},
	} {
		if out, err := in.CP.KubectlCommand(ctx, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// Replica is one self-managed guard replica and where it listens.
type Replica struct {
	*Guard
	// Addr is the webhook's address, 127.0.0.1:port.
	Addr string
	// Metrics is the metrics address.
	Metrics string
}

// StartReplica starts a self-managed replica on a port of its own, as the
// guard's ServiceAccount, and waits until it is ready (it serves a
// certificate from the Secret).
func (in *Installation) StartReplica(extra ...string) (*Replica, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	metrics, err := FreePort(port)
	if err != nil {
		return nil, err
	}
	g, err := in.CP.StartGuardWith(GuardOptions{
		Bin: in.Bin, Kubeconfig: in.CP.GuardKubeconfig, Port: port,
		MetricsAddr: fmt.Sprintf("127.0.0.1:%d", metrics),
		ExtraArgs: append([]string{"--cert-mode=self-managed", "--namespace=" + GuardNamespace,
			"--ca-propagation=2s", "--audit-interval=0"}, extra...),
	})
	if err != nil {
		return nil, err
	}
	return &Replica{Guard: g, Addr: fmt.Sprintf("127.0.0.1:%d", port), Metrics: fmt.Sprintf("127.0.0.1:%d", metrics)}, nil
}

// WebhookManifest is manifests/base/webhook.yaml with every failurePolicy
// Fail, and edit applied to each webhook's clientConfig block (nil: none).
func (in *Installation) WebhookManifest(clientConfig func(string) string) (string, error) {
	data, err := os.ReadFile(in.path("manifests", "base", "webhook.yaml"))
	if err != nil {
		return "", err
	}
	text := strings.ReplaceAll(string(data), "failurePolicy: Ignore", "failurePolicy: Fail")
	if clientConfig != nil {
		text = strings.ReplaceAll(text, "    clientConfig:\n", clientConfig("    clientConfig:\n"))
	}
	return text, nil
}

// Register applies the webhook configurations (WebhookManifest, unedited).
func (in *Installation) Register(ctx context.Context) error {
	manifest, err := in.WebhookManifest(nil)
	if err != nil {
		return err
	}
	cmd := in.CP.KubectlCommand(ctx, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("applying the webhook configurations: %w\n%s", err, out)
	}
	return nil
}

// Unregister deletes the webhook configurations.
func (in *Installation) Unregister(ctx context.Context) error {
	out, err := in.CP.KubectlCommand(ctx, "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration",
		ConfigurationName, "--ignore-not-found").CombinedOutput()
	if err != nil {
		return fmt.Errorf("deleting the webhook configurations: %w\n%s", err, out)
	}
	return nil
}

// Secret reads the guard's Secret and decodes its CA bundle.
func (in *Installation) Secret(ctx context.Context) (*corev1.Secret, []*x509.Certificate, error) {
	s := &corev1.Secret{}
	if err := in.CP.Client.Get(ctx, client.ObjectKey{Namespace: GuardNamespace, Name: servingcert.DefaultSecret}, s); err != nil {
		return nil, nil, fmt.Errorf("reading the Secret: %w", err)
	}
	bundle, err := certs.ParseBundle(s.Data[servingcert.KeyCABundle])
	if err != nil {
		return nil, nil, fmt.Errorf("the Secret's %s: %w", servingcert.KeyCABundle, err)
	}
	return s, bundle, nil
}

// CABundles returns the caBundle of every webhook of the guard's two
// configurations.
func (in *Installation) CABundles(ctx context.Context) ([][]byte, error) {
	var out [][]byte
	v := &admissionregv1.ValidatingWebhookConfiguration{}
	m := &admissionregv1.MutatingWebhookConfiguration{}
	for _, obj := range []client.Object{v, m} {
		if err := in.CP.Client.Get(ctx, client.ObjectKey{Name: ConfigurationName}, obj); err != nil {
			return nil, err
		}
	}
	for _, w := range v.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	for _, w := range m.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out, nil
}

// TrustsSecret reports whether every webhook's caBundle is the Secret's.
func (in *Installation) TrustsSecret(ctx context.Context) (bool, error) {
	s, _, err := in.Secret(ctx)
	if err != nil {
		return false, err
	}
	bundles, err := in.CABundles(ctx)
	if err != nil {
		return false, err
	}
	for _, b := range bundles {
		if !bytes.Equal(b, s.Data[servingcert.KeyCABundle]) {
			return false, nil
		}
	}
	return true, nil
}

// NetworkPolicyPasses creates and deletes a NetworkPolicy, which the API
// server sends to the webhook (failurePolicy Fail): it returns the error.
func (in *Installation) NetworkPolicyPasses(ctx context.Context) error {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "probe"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}}}}
	if err := in.CP.Client.Create(ctx, np); err != nil {
		return err
	}
	return in.CP.Client.Delete(ctx, np)
}

// Serving waits, up to limit, until the webhooks trust the Secret and a
// NetworkPolicy passes them: the installation serves.
func (in *Installation) Serving(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		switch ok, err := in.TrustsSecret(ctx); {
		case err != nil:
			last = err
		case !ok:
			last = errors.New("the webhooks do not trust the Secret's CA bundle yet")
		default:
			if last = in.NetworkPolicyPasses(ctx); last == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not serving within %s: %w", limit, last)
}

// TrustedClient is an HTTPS client with up to conns connections that
// trusts the CAs the guard's Secret holds at each handshake (read again
// every 200 ms until ctx ends), as the API server trusts the caBundle the
// guard keeps.
func (in *Installation) TrustedClient(ctx context.Context, conns int) (*http.Client, error) {
	var pool atomic.Pointer[x509.CertPool]
	load := func() {
		_, bundle, err := in.Secret(ctx)
		if err != nil {
			return // the last pool stays
		}
		p := x509.NewCertPool()
		for _, c := range bundle {
			p.AddCert(c)
		}
		pool.Store(p)
	}
	load()
	if pool.Load() == nil {
		return nil, errors.New("no CA bundle in the guard's Secret")
	}
	go func() {
		for ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			load()
		}
	}()
	cfg := &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // verified below, against the current bundle
		VerifyConnection: func(cs tls.ConnectionState) error {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool.Load(), Intermediates: inter,
				DNSName: "apiservice-guard-webhook." + GuardNamespace + ".svc"})
			return err
		},
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: conns}}, nil
}

// NoopWebhook is the cheapest webhook anyone could write
// (test/noopwebhook), run as a process of its own like the guard. It serves
// the guard's own serving certificate (from the guard's Secret), so the API
// server reaches it through the same Service, caBundle and TLS.
type NoopWebhook struct {
	Addr string
	PID  int
	cmd  *exec.Cmd
}

// StartNoop builds test/noopwebhook into dir and starts it with the
// certificate in the guard's Secret, and waits until it serves TLS.
func (in *Installation) StartNoop(ctx context.Context, dir string) (*NoopWebhook, error) {
	bin := filepath.Join(dir, "noopwebhook")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/noopwebhook")
	build.Dir = in.Root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the no-op webhook: %w\n%s", err, out)
	}
	s, _, err := in.Secret(ctx)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for file, key := range map[string]string{certFile: corev1.TLSCertKey, keyFile: corev1.TLSPrivateKeyKey} {
		if err := os.WriteFile(file, s.Data[key], 0o600); err != nil {
			return nil, err
		}
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--listen", addr, "--tls-cert-file", certFile, "--tls-key-file", keyFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &NoopWebhook{Addr: addr, PID: cmd.Process.Pid, cmd: cmd}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only whether it listens
		if err == nil {
			conn.Close()
			return n, nil
		}
		if time.Now().After(deadline) {
			n.Stop()
			return nil, fmt.Errorf("the no-op webhook does not serve TLS on %s: %w", addr, err)
		}
	}
}

// Stop kills the no-op webhook and waits for it.
func (n *NoopWebhook) Stop() {
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
}
