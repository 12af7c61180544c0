package bench

import (
	"context"
	"runtime"

	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kruntime "k8s.io/apimachinery/pkg/runtime"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/audit"
	"apiservice-guard.io/apiservice-guard/policies"
)

// countingClient counts the report writes (applies and deletes) an audit
// makes through it.
type countingClient struct {
	client.Client
	writes atomic.Int64
}

func (c *countingClient) Apply(ctx context.Context, obj kruntime.ApplyConfiguration, opts ...client.ApplyOption) error {
	c.writes.Add(1)
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.writes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkAuditScale runs the audit on the generated cluster of
// BenchmarkNetworkPolicyScale (20,000 pods, 5,000 NetworkPolicies, 100
// APIService backends), writing OpenReports reports to the real API server:
//   - first-scan: the first full scan of this auditor, once per run: in
//     the first run it writes every report; in later runs (-count) the
//     reports exist, as after a restart, and it writes none;
//   - rescan-unchanged: a full scan with nothing changed, which must write
//     nothing;
//   - update: what a change in the namespace holding 1,000 policies has
//     reviewed again (its APIService and its 1,000 policies); nothing
//     changed, so no report is written: the reviews are the cost.
//
// It reports wall time and this process's CPU seconds per operation, the
// writes, and the heap the audit keeps (state and known reports).
func BenchmarkAuditScale(b *testing.B) {
	env, err := scaleCluster()
	if err != nil {
		b.Fatal(err)
	}
	cp, err := liveEnv()
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	writes := &countingClient{Client: cp.Client}
	a, err := audit.New(audit.Options{
		Engine: engine, View: env.live,
		Sources:  audit.Sources{Cache: env.live.Reader()},
		Reports:  audit.ReportOptions{Client: writes, Mapper: cp.Client.RESTMapper(), API: audit.APIOpenReports, MaxResults: 50},
		Interval: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a.Prepare(ctx)

	// The first scan writes every report: it happens once, here; its
	// sub-benchmark reports it (its ns/op means nothing).
	c0 := cpuSeconds()
	stats, err := a.Scan(ctx)
	cpu := cpuSeconds() - c0
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	firstWrites := writes.writes.Load()
	b.Run("first-scan", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(stats.Took.Seconds(), "wall-s")
		b.ReportMetric(cpu, "cpu-s")
		b.ReportMetric(float64(stats.Reviewed), "reviewed")
		b.ReportMetric(float64(firstWrites), "writes")
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "audit-heap-MB")
	})
	b.Run("rescan-unchanged", func(b *testing.B) {
		w0, c0 := writes.writes.Load(), cpuSeconds()
		for b.Loop() {
			if _, err := a.Scan(ctx); err != nil {
				b.Fatal(err)
			}
		}
		n := float64(b.N)
		b.ReportMetric((cpuSeconds()-c0)/n, "cpu-s/op")
		b.ReportMetric(float64(writes.writes.Load()-w0)/n, "writes/op")
		if w := writes.writes.Load() - w0; w != 0 {
			b.Errorf("%d report writes while nothing changed, want 0", w)
		}
	})
	b.Run("update", func(b *testing.B) {
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: env.state.bigNS, Name: "allow-apiserver"}}
		w0, c0 := writes.writes.Load(), cpuSeconds()
		for b.Loop() {
			if err := a.Refresh(ctx, np); err != nil {
				b.Fatal(err)
			}
		}
		n := float64(b.N)
		b.ReportMetric((cpuSeconds()-c0)/n, "cpu-s/op")
		b.ReportMetric(float64(writes.writes.Load()-w0)/n, "writes/op")
	})

}
