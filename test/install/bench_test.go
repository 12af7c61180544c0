package install

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/servingcert"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// reviewBody is an AdmissionReview of a NetworkPolicy CREATE in an ordinary
// namespace: what most reviews in a cluster are.
const reviewBody = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b1",` +
	`"kind":{"group":"networking.k8s.io","version":"v1","kind":"NetworkPolicy"},` +
	`"resource":{"group":"networking.k8s.io","version":"v1","resource":"networkpolicies"},` +
	`"namespace":"shop","name":"deny","operation":"CREATE","userInfo":{"username":"bench"},` +
	`"object":{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"shop"},` +
	`"spec":{"podSelector":{},"policyTypes":["Ingress"]}}}}`

// trustedClient is an HTTPS client that trusts the CAs the guard's Secret
// holds at each handshake (read again every 200 ms), as the API server
// trusts the caBundle the guard keeps.
func trustedClient(b *testing.B, conns int) *http.Client {
	var pool atomic.Pointer[x509.CertPool]
	load := func() {
		s := &corev1.Secret{}
		if err := suite.cp.Client.Get(context.Background(), client.ObjectKey{Namespace: harness.GuardNamespace, Name: servingcert.DefaultSecret}, s); err != nil {
			return // the last pool stays
		}
		bundle, err := certs.ParseBundle(s.Data[servingcert.KeyCABundle])
		if err != nil {
			return
		}
		p := x509.NewCertPool()
		for _, c := range bundle {
			p.AddCert(c)
		}
		pool.Store(p)
	}
	load()
	if pool.Load() == nil {
		b.Fatal("no CA bundle in the guard's Secret")
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
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
				DNSName: "apiservice-guard-webhook.apiservice-guard-system.svc"})
			return err
		},
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: conns}}
}

// rotateEvery annotates the guard's Secret for a rotation every period,
// CA and serving certificate in turn, until the benchmark ends; it returns
// how many it asked for.
func rotateEvery(b *testing.B, period time.Duration) *atomic.Int64 {
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			what := []string{"ca", "serving"}[i%2]
			cmd := suite.cp.KubectlCommand(ctx, "annotate", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret,
				fmt.Sprintf("%s=%s-bench-%d-%d", servingcert.AnnotationRotate, what, time.Now().UnixNano(), i), "--overwrite")
			if err := cmd.Run(); err == nil {
				n.Add(1)
			}
			select {
			case <-ctx.Done():
			case <-time.After(period):
			}
		}
	})
	b.Cleanup(func() { cancel(); wg.Wait() })
	return &n
}

// BenchmarkInstalled measures a self-managed guard as installed: reviews/s
// at its webhook port over TLS at concurrency 1 to 64, alone and while it
// rotates its CA or serving certificate every 500 ms; then writes through the real
// kube-apiserver in alternating blocks, with no webhook registered, with
// the guard, and with the guard while it rotates.
func BenchmarkInstalled(b *testing.B) {
	fresh(b)
	g := startGuard(b)
	b.Cleanup(func() { _ = g.Stop() })
	if err := suite.cp.Network.Balance(suite.service, g.addr); err != nil {
		b.Fatal(err)
	}
	for _, rotating := range []bool{false, true} {
		for _, conc := range []int{1, 4, 16, 64} {
			name := fmt.Sprintf("tls/concurrency=%d", conc)
			if rotating {
				name = fmt.Sprintf("tls-rotating/concurrency=%d", conc)
			}
			b.Run(name, func(b *testing.B) { benchTLS(b, g, conc, rotating) })
		}
	}
	b.Run("writes", func(b *testing.B) { benchWrites(b) })
}

// benchTLS sends b.N reviews from conc goroutines (benchReviews) and, when
// rotating, reports the rotations asked for meanwhile.
func benchTLS(b *testing.B, g *guard, conc int, rotating bool) {
	var rotations *atomic.Int64
	if rotating {
		rotations = rotateEvery(b, 500*time.Millisecond)
	}
	benchReviews(b, g.addr, reviewBody, conc, 0)
	if rotations != nil {
		b.ReportMetric(float64(rotations.Load()), "rotations")
	}
}

// benchWrites times NetworkPolicy creates and deletes through the API
// server in 5 rounds of blocks of 40, alternating: no webhook registered,
// the guard, the guard while its certificates rotate every second. It
// reports each mode's p50 and p99 and their ratios to no webhook; a write
// that fails fails the benchmark. The rounds are fixed, whatever b.N.
func benchWrites(b *testing.B) {
	t := b
	ensureNamespace(t, "bench")
	modes := []string{"none", "guard", "guard-rotating"}
	times := map[string][]time.Duration{}
	const blockWrites, blocks = 40, 5
	seq := 0
	for range 1 {
		for range blocks {
			for _, mode := range modes {
				var stop func()
				switch mode {
				case "none":
					kubectl(t, "", "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "apiservice-guard", "--ignore-not-found")
					time.Sleep(time.Second) // the API server's informer drops them
				default:
					kubectl(t, webhookManifest(t, nil), "apply", "-f", "-")
					eventually(t, 10*time.Second, "the webhooks trust the guard", func() bool { return trustsSecret(t) })
					eventually(t, 10*time.Second, "a NetworkPolicy passes the webhook", func() bool { return networkPolicyPasses(t) == nil })
					if mode == "guard-rotating" {
						ctx, cancel := context.WithCancel(context.Background())
						done := make(chan struct{})
						go func() {
							defer close(done)
							for i := 0; ctx.Err() == nil; i++ {
								what := []string{"ca", "serving"}[i%2]
								_ = suite.cp.KubectlCommand(ctx, "annotate", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret,
									fmt.Sprintf("%s=%s-w-%d", servingcert.AnnotationRotate, what, time.Now().UnixNano()), "--overwrite").Run()
								select {
								case <-ctx.Done():
								case <-time.After(time.Second):
								}
							}
						}()
						stop = func() { cancel(); <-done }
					}
				}
				for range blockWrites / 2 {
					seq++
					np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("w-%d", seq)},
						Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}}}}
					for _, write := range []func() error{
						func() error { return suite.cp.Client.Create(b.Context(), np) },
						func() error { return suite.cp.Client.Delete(b.Context(), np) },
					} {
						t0 := time.Now()
						if err := write(); err != nil {
							b.Fatalf("%s: %v", mode, err)
						}
						times[mode] = append(times[mode], time.Since(t0))
					}
				}
				if stop != nil {
					stop()
				}
			}
		}
	}
	p := func(mode string, q int) time.Duration {
		d := slices.Sorted(slices.Values(times[mode]))
		return d[len(d)*q/100]
	}
	for _, mode := range modes {
		b.ReportMetric(float64(p(mode, 50).Microseconds()), mode+"-p50-µs")
		b.ReportMetric(float64(p(mode, 99).Microseconds()), mode+"-p99-µs")
	}
	for _, mode := range modes[1:] {
		b.ReportMetric(float64(p(mode, 50))/float64(p("none", 50)), mode+"/none-p50")
		b.ReportMetric(float64(p(mode, 99))/float64(p("none", 99)), mode+"/none-p99")
	}
}
