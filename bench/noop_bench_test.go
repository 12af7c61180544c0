package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/test/harness"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// Namespaces and names of the writes BenchmarkAgainstNoOp times.
const (
	benchPlainNS   = "bench-plain"
	benchBackendNS = "bench-backend"
	benchAPI       = "v1beta1.bench.apiservice-guard.io"
	benchWorkerCM  = "worker-config-default-1.31"
)

// apiServiceUpdateBody is an AdmissionReview of an APIService UPDATE (a
// label changed) of an adapter whose Service and pods exist: every
// APIService rule runs.
var apiServiceUpdateBody = func() string {
	api := `{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"` + benchAPI + `","labels":{"rev":"%d"}},` +
		`"spec":{"group":"bench.apiservice-guard.io","version":"v1beta1","groupPriorityMinimum":100,"versionPriority":100,` +
		`"insecureSkipTLSVerify":true,"service":{"namespace":"` + benchBackendNS + `","name":"adapter","port":443}}}`
	return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b2",` +
		`"kind":{"group":"apiregistration.k8s.io","version":"v1","kind":"APIService"},` +
		`"resource":{"group":"apiregistration.k8s.io","version":"v1","resource":"apiservices"},` +
		`"name":"` + benchAPI + `","operation":"UPDATE","userInfo":{"username":"bench"},` +
		`"object":` + fmt.Sprintf(api, 2) + `,"oldObject":` + fmt.Sprintf(api, 1) + `}}`
}()

// BenchmarkAgainstNoOp compares the guard, as installed from manifests/
// (self-managed, its webhook configurations with failurePolicy Fail), with
// the cheapest webhook anyone could write (harness.NoopWebhook, a process
// of its own: same Service, same TLS certificate, same webhook
// configurations and matchConditions) and with no webhook at all:
//
//   - writes: writes through the real kube-apiserver in alternating blocks
//     (none, no-op, guard), each kind timed on its own: NetworkPolicy
//     create, update and delete in an ordinary namespace and in a backend's
//     namespace (a policy isolating the adapter, so every rule judges it),
//     an APIService update, a k0s worker-config update;
//   - tls: reviews sent straight to each webhook's port over TLS at
//     concurrency 1 to 64, an ordinary-namespace NetworkPolicy CREATE and an
//     APIService UPDATE: reviews/s, p50, p99, and the CPU time the
//     webhook's process used per review.
//
// With GUARD_CPUPROFILE=<file> the guard's CPU profile of the tls/guard
// sub-benchmarks is written to <file>.<name>.
func BenchmarkAgainstNoOp(b *testing.B) {
	in := installed(b)
	pprofPort, err := harness.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	g := startReplica(b, in, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort))
	noop, err := in.StartNoop(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(noop.Stop)
	setUpBenchState(b, in.CP)
	b.Run("writes", func(b *testing.B) {
		if os.Getenv("GUARD_CPUPROFILE") != "" {
			// The first 30 s of the writes, all modes.
			wait := profileGuard(b, pprofPort, 30, os.Getenv("GUARD_CPUPROFILE")+".writes")
			defer wait()
		}
		benchWritesAgainstNoOp(b, in, g, noop)
	})
	for _, body := range []struct{ name, body string }{{"networkpolicy-ordinary", reviewBody}, {"apiservice-update", apiServiceUpdateBody}} {
		for _, conc := range []int{1, 4, 16, 64} {
			for _, target := range []string{"noop", "guard"} {
				b.Run(fmt.Sprintf("tls/%s/%s/concurrency=%d", body.name, target, conc), func(b *testing.B) {
					addr, pid := noop.Addr, noop.PID
					if target == "guard" {
						addr, pid = g.Addr, g.PID()
					}
					if target == "guard" && os.Getenv("GUARD_CPUPROFILE") != "" {
						wait := profileGuard(b, pprofPort, 3, fmt.Sprintf("%s.%s-%d", os.Getenv("GUARD_CPUPROFILE"), body.name, conc))
						defer wait()
					}
					benchReviews(b, in, addr, body.body, conc, pid)
				})
			}
		}
	}
}

// profileGuard takes a CPU profile of seconds of the guard (its
// /debug/pprof/profile) while the caller runs, and returns a function that
// waits for it and writes it to file: run the benchmark for longer than
// 3 s (-benchtime) for a profile of it alone.
func profileGuard(b *testing.B, port, seconds int, file string) (wait func()) {
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, seconds))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(file, data, 0o644)
		}
		done <- err
	}()
	return func() {
		if err := <-done; err != nil {
			b.Errorf("profiling the guard: %v", err)
		}
	}
}

// setUpBenchState creates what the writes need: the two namespaces, an
// adapter (Service 443 -> 6443, a pod with an IP, an APIService) in the
// backend namespace, and a k0s worker-config ConfigMap.
func setUpBenchState(b *testing.B, cp *harness.ControlPlane) {
	ctx := b.Context()
	for _, ns := range []string{benchPlainNS, benchBackendNS} {
		if err := cp.EnsureNamespace(ns); err != nil {
			b.Fatal(err)
		}
	}
	labels := map[string]string{"app": "adapter"}
	objs := []client.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: benchBackendNS, Name: "adapter"}, Spec: corev1.ServiceSpec{
			Selector: labels, Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(6443)}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: benchBackendNS, Name: "adapter-0", Labels: labels}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "adapter", Image: "adapter", Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 6443}}}}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: benchWorkerCM, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "k0s", "app.kubernetes.io/component": "worker-config"}},
			Data: map[string]string{"konnectivity": `{"enabled":true,"agentPort":8132}`}},
	}
	port := int32(443)
	objs = append(objs, &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: benchAPI}, Spec: apiregv1.APIServiceSpec{
		Group: "bench.apiservice-guard.io", Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100, InsecureSkipTLSVerify: true,
		Service: &apiregv1.ServiceReference{Namespace: benchBackendNS, Name: "adapter", Port: &port}}})
	for _, o := range objs {
		if err := cp.Client.Create(ctx, o); err != nil && !strings.Contains(err.Error(), "already exists") {
			b.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	pod := &corev1.Pod{}
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: benchBackendNS, Name: "adapter-0"}, pod); err != nil {
		b.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.9.9", PodIPs: []corev1.PodIP{{IP: "10.244.9.9"}}}
	if err := cp.Client.Status().Update(ctx, pod); err != nil {
		b.Fatal(err)
	}
}

// benchWrite is one kind of write: do makes the i-th write of the kind.
type benchWrite struct {
	name string
	do   func(ctx context.Context, i int) error
}

// benchWriteKinds are the writes timed, in the order a block makes them.
func benchWriteKinds(c client.Client) []benchWrite {
	var out []benchWrite
	for _, ns := range []struct{ label, name string }{{"ordinary", benchPlainNS}, {"backend", benchBackendNS}} {
		np := func(i int) *networkingv1.NetworkPolicy {
			// In the backend namespace it isolates the adapter (and
			// admits everyone on 6443): every rule judges it.
			return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns.name, Name: fmt.Sprintf("w-%d", i)},
				Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "adapter"}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(6443))}}}}}}
		}
		out = append(out,
			benchWrite{"networkpolicy-" + ns.label + "-create", func(ctx context.Context, i int) error { return c.Create(ctx, np(i)) }},
			benchWrite{"networkpolicy-" + ns.label + "-update", func(ctx context.Context, i int) error {
				p := &networkingv1.NetworkPolicy{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(np(i)), p); err != nil {
					return err
				}
				p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
				return c.Update(ctx, p)
			}},
			benchWrite{"networkpolicy-" + ns.label + "-delete", func(ctx context.Context, i int) error { return c.Delete(ctx, np(i)) }},
		)
	}
	out = append(out,
		benchWrite{"apiservice-update", func(ctx context.Context, i int) error {
			api := &apiregv1.APIService{}
			if err := c.Get(ctx, client.ObjectKey{Name: benchAPI}, api); err != nil {
				return err
			}
			api.Labels = map[string]string{"rev": fmt.Sprint(i)}
			return c.Update(ctx, api)
		}},
		benchWrite{"k0s-worker-config-update", func(ctx context.Context, i int) error {
			cm := &corev1.ConfigMap{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: benchWorkerCM}, cm); err != nil {
				return err
			}
			cm.Data["konnectivity"] = fmt.Sprintf(`{"enabled":true,"agentPort":%d}`, 8132+i%2)
			return c.Update(ctx, cm)
		}},
	)
	return out
}

// benchWritesAgainstNoOp times every kind of write in 40 rounds of blocks
// of 25 writes per kind (1,000 per kind and mode: the p99 is the 990th),
// alternating none, no-op and guard (the rounds are fixed, whatever b.N).
// At each switch the API server's connections to the Service are reset, and
// the guard's request count shows that it answered its blocks and no
// other. A write that fails fails the benchmark. It reports each kind's p50
// and p99 per mode and the ratios guard/no-op and guard/none, and logs them
// as a table, with the webhook calls' mean time as the API server measures
// it, each webhook's CPU per call, the guard's CPU per write while the
// no-op answers and its garbage collections. BENCH_WRITE_ROUNDS=n runs n rounds
// instead of 40. With BENCH_TAIL set it also logs the 10 slowest writes of
// each kind and mode.
func benchWritesAgainstNoOp(b *testing.B, in *harness.Installation, g *harness.Replica, noop *harness.NoopWebhook) {
	// The rounds are the measurement: b.Loop makes the framework run this
	// function once, whatever -benchtime (metrics reported before it would
	// be reset).
	for b.Loop() {
	}
	modes := []string{"none", "noop", "guard"}
	kinds := benchWriteKinds(in.CP.Client)
	times := map[string]map[string][]time.Duration{} // mode -> kind -> times
	for _, m := range modes {
		times[m] = map[string][]time.Duration{}
	}
	costs := map[string]blockCost{}
	const perBlock = 25
	rounds := 40
	if n, err := strconv.Atoi(os.Getenv("BENCH_WRITE_ROUNDS")); err == nil && n > 0 {
		rounds = n // more writes, for a p99 a run can decide
	}
	seq := 0
	registered := false // installed() leaves none
	for range rounds {
		for _, mode := range modes {
			switch mode {
			case "none":
				if err := in.Unregister(b.Context()); err != nil {
					b.Fatal(err)
				}
				time.Sleep(time.Second) // the API server's informer drops them
				registered = false
			default:
				to := g.Addr
				if mode == "noop" {
					to = noop.Addr
				}
				if err := in.CP.Network.Balance(in.Service, to); err != nil {
					b.Fatal(err)
				}
				// The API server's kept-alive connections would go on to
				// the webhook of the block before.
				in.CP.Network.Reset(in.Service)
				if !registered {
					if err := in.Register(b.Context()); err != nil {
						b.Fatal(err)
					}
					registered = true
				}
				if err := in.Serving(b.Context(), 20*time.Second); err != nil {
					b.Fatalf("%s: %v", mode, err)
				}
			}
			before := measureBlock(b, in, g, noop)
			for range perBlock {
				seq++
				for _, k := range kinds {
					t0 := time.Now()
					if err := k.do(b.Context(), seq); err != nil {
						b.Fatalf("%s, %s: %v", mode, k.name, err)
					}
					times[mode][k.name] = append(times[mode][k.name], time.Since(t0))
				}
			}
			block := measureBlock(b, in, g, noop).since(before)
			// Each block was answered by its own webhook: the guard saw
			// every NetworkPolicy write of its blocks, and nothing else.
			if mode == "guard" && block.guardReviews < 6*perBlock || mode != "guard" && block.guardReviews != 0 {
				b.Fatalf("%s: the guard answered %v reviews in a block of %d NetworkPolicy writes", mode, block.guardReviews, 6*perBlock)
			}
			costs[mode] = costs[mode].add(block)
		}
	}
	pct := func(mode, kind string, q int) time.Duration {
		d := slices.Sorted(slices.Values(times[mode][kind]))
		return d[(len(d)-1)*q/100]
	}
	var table strings.Builder
	table.WriteString("| write | p50: none | no-op | guard | p99: none | no-op | guard | guard/no-op p50 (90% interval) | p99 (90% interval) | guard/none p50 | p99 |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range kinds {
		ratio := func(a, c string, q int) float64 { return float64(pct(a, k.name, q)) / float64(pct(c, k.name, q)) }
		for _, mode := range modes {
			b.ReportMetric(float64(pct(mode, k.name, 50).Microseconds()), k.name+"/"+mode+"-p50-µs")
			b.ReportMetric(float64(pct(mode, k.name, 99).Microseconds()), k.name+"/"+mode+"-p99-µs")
		}
		b.ReportMetric(ratio("guard", "noop", 50), k.name+"/guard:noop-p50")
		b.ReportMetric(ratio("guard", "noop", 99), k.name+"/guard:noop-p99")
		b.ReportMetric(ratio("guard", "none", 50), k.name+"/guard:none-p50")
		b.ReportMetric(ratio("guard", "none", 99), k.name+"/guard:none-p99")
		ms := func(mode string, q int) float64 { return float64(pct(mode, k.name, q).Microseconds()) / 1000 }
		lo50, hi50 := ratioInterval(times["guard"][k.name], times["noop"][k.name], 50)
		lo99, hi99 := ratioInterval(times["guard"][k.name], times["noop"][k.name], 99)
		b.ReportMetric(hi50, k.name+"/guard:noop-p50-hi90")
		b.ReportMetric(hi99, k.name+"/guard:noop-p99-hi90")
		fmt.Fprintf(&table, "| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) | %.2f | %.2f |\n", k.name,
			ms("none", 50), ms("noop", 50), ms("guard", 50), ms("none", 99), ms("noop", 99), ms("guard", 99),
			ratio("guard", "noop", 50), lo50, hi50, ratio("guard", "noop", 99), lo99, hi99, ratio("guard", "none", 50), ratio("guard", "none", 99))
		if os.Getenv("BENCH_TAIL") != "" {
			for _, mode := range modes {
				d := slices.Sorted(slices.Values(times[mode][k.name]))
				b.Logf("%s %s slowest: %v", k.name, mode, d[len(d)-10:])
			}
		}
	}
	b.Logf("%d writes of each kind per mode, in %d rounds:\n%s", rounds*perBlock, rounds, table.String())
	// The webhook call as the API server times it, and the CPU each
	// webhook's process spent per call beyond what it spends meanwhile
	// without calls (the guard's informers follow every write).
	noopCall := costs["noop"].callSeconds / costs["noop"].calls
	guardCall := costs["guard"].callSeconds / costs["guard"].calls
	noopCPU := costs["noop"].noopCPU.Seconds() / costs["noop"].calls
	guardCPU := (costs["guard"].guardCPU.Seconds() - costs["noop"].guardCPU.Seconds()) / costs["guard"].calls
	// While the no-op answers, the guard still follows every write with
	// its informers (and answers the two scrapes of its metrics per block).
	writes := float64(rounds * perBlock * len(kinds))
	guardIdle := costs["noop"].guardCPU.Seconds() / writes
	b.ReportMetric(guardIdle*1e6, "guard-idle-cpu-µs/write")
	b.ReportMetric(noopCall*1e6, "noop-call-µs")
	b.ReportMetric(guardCall*1e6, "guard-call-µs")
	b.ReportMetric(noopCPU*1e6, "noop-cpu-µs/call")
	b.ReportMetric(guardCPU*1e6, "guard-cpu-µs/call")
	b.Logf("a webhook call as the API server times it: no-op %.0f µs, guard %.0f µs; CPU per call: no-op %.0f µs, guard %.0f µs",
		noopCall*1e6, guardCall*1e6, noopCPU*1e6, guardCPU*1e6)
	// The guard collects garbage in every mode (its informers follow each
	// write); the difference is its reviews'.
	b.Logf("while the no-op answers, the guard uses %.0f µs of CPU per write; its garbage collections per 1,000 writes: %.1f in its own blocks, %.1f in the no-op's",
		guardIdle*1e6, costs["guard"].guardGCs/writes*1000, costs["noop"].guardGCs/writes*1000)
	if err := in.CP.Network.Balance(in.Service, g.Addr); err != nil {
		b.Fatal(err)
	}
	in.CP.Network.Reset(in.Service)
}

// ratioInterval is the 90% bootstrap interval of the ratio of a's q-th
// percentile to c's: both samples are redrawn with replacement 500 times
// (a fixed seed, so a run's table is reproducible from its samples). It
// says how much of a ratio is this run's luck: a p99 rests on the few
// slowest writes.
func ratioInterval(a, c []time.Duration, q int) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	redraw := func(d []time.Duration, buf []time.Duration) time.Duration {
		for i := range buf {
			buf[i] = d[rng.IntN(len(d))]
		}
		slices.Sort(buf)
		return buf[(len(buf)-1)*q/100]
	}
	const n = 500
	ratios := make([]float64, n)
	bufA, bufC := make([]time.Duration, len(a)), make([]time.Duration, len(c))
	for i := range ratios {
		ratios[i] = float64(redraw(a, bufA)) / float64(redraw(c, bufC))
	}
	slices.Sort(ratios)
	return ratios[n*5/100], ratios[n*95/100]
}

// blockCost is what a block of writes cost the webhooks, or a sum of
// blocks.
type blockCost struct {
	// guardReviews is the number of AdmissionReviews the guard answered.
	guardReviews float64
	// calls and callSeconds are the API server's validating webhook calls
	// and the time they took, as it measures them.
	calls, callSeconds float64
	// guardCPU and noopCPU are the CPU time each process used.
	guardCPU, noopCPU time.Duration
	// guardGCs is the number of garbage collections the guard ran.
	guardGCs float64
}

func (c blockCost) since(before blockCost) blockCost {
	return blockCost{c.guardReviews - before.guardReviews, c.calls - before.calls, c.callSeconds - before.callSeconds,
		c.guardCPU - before.guardCPU, c.noopCPU - before.noopCPU, c.guardGCs - before.guardGCs}
}

func (c blockCost) add(d blockCost) blockCost {
	return blockCost{c.guardReviews + d.guardReviews, c.calls + d.calls, c.callSeconds + d.callSeconds,
		c.guardCPU + d.guardCPU, c.noopCPU + d.noopCPU, c.guardGCs + d.guardGCs}
}

// measureBlock reads the counters a blockCost is the difference of.
func measureBlock(b *testing.B, in *harness.Installation, g *harness.Replica, noop *harness.NoopWebhook) blockCost {
	var c blockCost
	guard, err := harness.ScrapeMetrics("http://" + g.Metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	c.guardReviews, _ = harness.Total(guard, "apiservice_guard_admission_requests_total", nil)
	_, c.guardGCs = harness.Total(guard, "go_gc_duration_seconds", nil)
	out, err := in.CP.KubectlCommand(b.Context(), "get", "--raw", "/metrics").Output()
	if err != nil {
		b.Fatalf("the API server's metrics: %v", err)
	}
	families, err := harness.ParseMetrics(bytes.NewReader(out))
	if err != nil {
		b.Fatal(err)
	}
	c.callSeconds, c.calls = harness.Total(families, "apiserver_admission_webhook_admission_duration_seconds", map[string]string{"type": "validating"})
	if c.guardCPU, err = harness.ProcessCPUTime(g.PID()); err != nil {
		b.Fatal(err)
	}
	if c.noopCPU, err = harness.ProcessCPUTime(noop.PID); err != nil {
		b.Fatal(err)
	}
	return c
}

// benchReviews sends b.N copies of body to the webhook at addr from conc
// goroutines over TLS and reports reviews/s, p50 and p99; with pid set (not
// 0), the CPU time that process used per review. A failed review fails the
// benchmark.
func benchReviews(b *testing.B, in *harness.Installation, addr, body string, conc int, pid int) {
	client := trustedClient(b, in, conc)
	var failed atomic.Int64
	var mu sync.Mutex
	var durations []time.Duration
	var next atomic.Int64
	var cpu0 time.Duration
	if pid != 0 {
		var err error
		if cpu0, err = harness.ProcessCPUTime(pid); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				resp, err := client.Post("https://"+addr+webhook.ValidatePath, "application/json", strings.NewReader(body))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("HTTP %s", resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			durations = append(durations, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if pid != 0 {
		cpu1, err := harness.ProcessCPUTime(pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/review")
	}
	slices.Sort(durations)
	if len(durations) > 0 {
		b.ReportMetric(float64(len(durations))/elapsed.Seconds(), "reviews/s")
		b.ReportMetric(float64(durations[len(durations)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(durations[(len(durations)-1)*99/100].Microseconds()), "p99-µs")
	}
	if failed.Load() > 0 {
		b.Fatalf("%d of %d reviews failed", failed.Load(), b.N)
	}
}
