package netpol_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// benchPolicies builds n policies in namespace keda, the shapes real
// namespaces hold: pod selectors with expressions, namespace and pod peers,
// ipBlocks with excepts, numbered, ranged and named ports. Every selectEvery-th
// policy selects kedaPod (0: none); none of them allows the apiserver.
func benchPolicies(n, selectEvery int) []*networkingv1.NetworkPolicy {
	set := make([]*networkingv1.NetworkPolicy, 0, n)
	for i := range n {
		app := "svc-" + strconv.Itoa(i)
		if selectEvery > 0 && i%selectEvery == 0 {
			app = "keda"
		}
		p := netpolicy("keda", "np-"+strconv.Itoa(i),
			types(ing, egr),
			func(p *networkingv1.NetworkPolicy) {
				p.Spec.PodSelector = metav1.LabelSelector{
					MatchLabels: map[string]string{"app": app},
					MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db", "cache"}},
					},
				}
			},
			in(ports(tcp(8080), portRange(9000, 9100)),
				podNSPeer(map[string]string{"app": "prometheus"}, map[string]string{"team": "ops"}),
				nsPeer(map[string]string{"kubernetes.io/metadata.name": "ingress-" + strconv.Itoa(i)})),
			in(ports(named("metrics", corev1.ProtocolTCP)), ipPeer("172.16."+strconv.Itoa(i%256)+".0/24", "172.16."+strconv.Itoa(i%256)+".128/25")),
			in(ports(portProto(53, corev1.ProtocolUDP)), ipPeer("fd00:"+strconv.FormatInt(int64(i), 16)+"::/64")),
			out(nil, nsPeer(nil)),
		)
		set = append(set, p)
	}
	return set
}

// BenchmarkEvaluate: ingress from the apiserver to kedaPod on 6443 in a
// namespace of 1,000 policies. Reports the p99 latency of one evaluation;
// the budget is 1 ms.
func BenchmarkEvaluate(b *testing.B) {
	tr := netpol.Traffic{Source: apiserver(), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	for _, bc := range []struct {
		name        string
		selectEvery int
	}{
		{"1000-policies/none-select-pod", 0},
		{"1000-policies/10pct-select-pod", 10},
		{"1000-policies/all-select-pod", 1},
	} {
		set := netpol.Compile(benchPolicies(1000, bc.selectEvery))
		b.Run(bc.name, func(b *testing.B) {
			durations := make([]time.Duration, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				v := set.Ingress(tr)
				durations = append(durations, time.Since(start))
				if v.Allowed != (bc.selectEvery == 0) {
					b.Fatalf("unexpected verdict: %s", v.Explanation)
				}
			}
			slices.Sort(durations)
			b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds()), "p99-ns")
		})
	}
	b.Run("1000-policies/reach", func(b *testing.B) {
		set := netpol.Compile(benchPolicies(1000, 10))
		agent := netpol.PodEndpoint(&netpol.Pod{Namespace: "keda", Labels: map[string]string{"app": "keda"}, IPs: kedaPod().IPs})
		rt := netpol.Traffic{Source: agent, Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
		b.ReportAllocs()
		for b.Loop() {
			set.Reach(rt)
		}
	})
}

// BenchmarkCompile: compiling 1,000 policies, done once per policy change.
func BenchmarkCompile(b *testing.B) {
	policies := benchPolicies(1000, 10)
	b.ReportAllocs()
	for b.Loop() {
		netpol.Compile(policies)
	}
}

// BenchmarkWith: a 1,000-policy set with one policy replaced, what an
// admission review of a NetworkPolicy UPDATE needs before it evaluates.
func BenchmarkWith(b *testing.B) {
	policies := benchPolicies(1000, 10)
	set := netpol.Compile(policies)
	changed := policies[500].DeepCopy()
	changed.Spec.Ingress = nil
	b.ReportAllocs()
	for b.Loop() {
		set.With([]*networkingv1.NetworkPolicy{changed})
	}
}
