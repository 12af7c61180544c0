package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/webhook"
)

// BenchmarkReviewUnderLoad measures ordinary reviews (a NetworkPolicy
// CREATE in an ordinary namespace) in-process, alone and while 8
// goroutines send worst-case reviews without pause (a 900 KiB ConfigMap of
// thousands of small YAML alias bombs, of which the guard parses 8), with
// the guard's slots for large reviews (half the CPUs) and without them
// (every review counted as small). The ordinary reviews come 10 ms apart.
// Reports their p50 and p99, and how many worst-case reviews were made.
func BenchmarkReviewUnderLoad(b *testing.B) {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	ordinary := npRequest(b, admissionv1.Create, np)
	expensive := expensiveConfigMapRequest(b)

	for _, tc := range []struct {
		name  string
		load  int
		large int // LargeReview
	}{
		{"load=none", 0, 0},
		{"load=8-worst-case,slots", 8, 0},
		{"load=8-worst-case,no-slots", 8, 1 << 30},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := emptyCluster(b)
			o.LargeReview = tc.large
			v := webhook.NewValidator(o)
			ctx, cancel := context.WithCancel(b.Context())
			var wg sync.WaitGroup
			var mu sync.Mutex
			worst := 0
			for range tc.load {
				wg.Go(func() {
					for ctx.Err() == nil {
						v.Handle(ctx, expensive)
						mu.Lock()
						worst++
						mu.Unlock()
					}
				})
			}
			if tc.load > 0 {
				time.Sleep(time.Second) // the load running
			}
			// Ordinary reviews 10 ms apart, so that they sample the
			// whole time the load runs, not a few milliseconds of it.
			durations := make([]time.Duration, 0, b.N)
			for b.Loop() {
				time.Sleep(10 * time.Millisecond)
				start := time.Now()
				if resp := v.Handle(ctx, ordinary); !resp.Allowed {
					b.Fatalf("ordinary review: %+v", resp.Result)
				}
				durations = append(durations, time.Since(start))
			}
			slices.Sort(durations)
			b.ReportMetric(float64(durations[len(durations)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds()), "p99-µs")
			cancel()
			wg.Wait()
			if tc.load > 0 {
				b.ReportMetric(float64(worst), "worst-reviews")
			}
		})
	}
}

// expensiveConfigMapRequest is the CREATE of a 900 KiB kube-system
// ConfigMap whose values are each a small YAML alias bomb.
func expensiveConfigMapRequest(b *testing.B) admission.Request {
	bomb := func(key int) string {
		lines := []string{`a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]`}
		for i := 1; i < 4; i++ {
			refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 9), ",")
			lines = append(lines, fmt.Sprintf("a%d: &a%d [%s]", i, i, refs))
		}
		return strings.Join(append(lines, fmt.Sprintf("kind: ClusterConfig # k0s.k0sproject.io/v1beta1 %d", key)), "\n")
	}
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "worker-config-default-1.37", Namespace: "kube-system"}, Data: map[string]string{}}
	for k, n := 0, 0; n < 900<<10; k++ {
		v := bomb(k)
		cm.Data[fmt.Sprintf("k%d.yaml", k)], n = v, n+len(v)
	}
	data, err := json.Marshal(cm)
	if err != nil {
		b.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "worst",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		Namespace: "kube-system", Name: cm.Name, Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: data},
	}}
}
