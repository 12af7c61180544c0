package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// rotateEvery annotates the guard's Secret for a rotation every period,
// CA and serving certificate in turn, until the benchmark ends; it returns
// how many it asked for.
func rotateEvery(b *testing.B, in *harness.Installation, period time.Duration) *atomic.Int64 {
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			what := []string{"ca", "serving"}[i%2]
			cmd := in.CP.KubectlCommand(ctx, "annotate", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret,
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
	in := installed(b)
	g := startReplica(b, in)
	for _, rotating := range []bool{false, true} {
		for _, conc := range []int{1, 4, 16, 64} {
			name := fmt.Sprintf("tls/concurrency=%d", conc)
			if rotating {
				name = fmt.Sprintf("tls-rotating/concurrency=%d", conc)
			}
			b.Run(name, func(b *testing.B) { benchTLS(b, in, g, conc, rotating) })
		}
	}
	b.Run("writes", func(b *testing.B) { benchWrites(b, in) })
}

// benchTLS sends b.N reviews from conc goroutines (benchReviews) and, when
// rotating, reports the rotations asked for meanwhile.
func benchTLS(b *testing.B, in *harness.Installation, g *harness.Replica, conc int, rotating bool) {
	var rotations *atomic.Int64
	if rotating {
		rotations = rotateEvery(b, in, 500*time.Millisecond)
	}
	benchReviews(b, in, g.Addr, reviewBody, conc, 0)
	if rotations != nil {
		b.ReportMetric(float64(rotations.Load()), "rotations")
	}
}

// benchWrites times NetworkPolicy creates and deletes through the API
// server in 5 rounds of blocks of 40, alternating: no webhook registered,
// the guard, the guard while its certificates rotate every second. It
// reports each mode's p50 and p99 and their ratios to no webhook; a write
// that fails fails the benchmark. The rounds are fixed, whatever b.N.
func benchWrites(b *testing.B, in *harness.Installation) {
	if err := in.CP.EnsureNamespace("bench"); err != nil {
		b.Fatal(err)
	}
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
					if err := in.Unregister(b.Context()); err != nil {
						b.Fatal(err)
					}
					time.Sleep(time.Second) // the API server's informer drops them
				default:
					if err := in.Register(b.Context()); err != nil {
						b.Fatal(err)
					}
					if err := in.Serving(b.Context(), 10*time.Second); err != nil {
						b.Fatal(err)
					}
					if mode == "guard-rotating" {
						ctx, cancel := context.WithCancel(context.Background())
						done := make(chan struct{})
						go func() {
							defer close(done)
							for i := 0; ctx.Err() == nil; i++ {
								what := []string{"ca", "serving"}[i%2]
								_ = in.CP.KubectlCommand(ctx, "annotate", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret,
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
						func() error { return in.CP.Client.Create(b.Context(), np) },
						func() error { return in.CP.Client.Delete(b.Context(), np) },
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
