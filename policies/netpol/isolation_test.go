package netpol_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

type pols = []*networkingv1.NetworkPolicy

// TestIsolationAndUnion: which policies isolate, policyTypes defaulting, the
// union of rules, `ingress: []` vs `[{}]`, empty from and ports.
func TestIsolationAndUnion(t *testing.T) {
	dst := netpol.PodEndpoint(kedaPod())
	runTable(t, []tcase{
		{name: "no policies", to: dst, from: apiserver(), want: notIsolated()},
		{name: "policy in another namespace", to: dst, from: apiserver(),
			policies: pols{netpolicy("other", "deny", types(ing))}, want: notIsolated()},
		{name: "policy selecting other pods", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "deny", selecting(map[string]string{"app": "x"}), types(ing))}, want: notIsolated()},
		{name: "default deny with policyTypes Ingress", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "deny", types(ing))}, want: denied("keda/deny")},
		{name: "policyTypes absent defaults to Ingress", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "deny")}, want: denied("keda/deny")},
		{name: "policyTypes Egress only does not isolate ingress", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "eg", types(egr))}, want: notIsolated()},
		{name: "policyTypes absent with egress rules still isolates ingress", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "eg", out(nil))}, want: denied("keda/eg")},
		{name: "unknown policyType ignored and reported", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "odd", types(ing, "Sideways"))},
			want:     denied("keda/odd").with("keda/odd spec.policyTypes[1]")},
		{name: "matchExpressions In selects the pod", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "deny", selectingExpr("app", metav1.LabelSelectorOpIn, "keda", "x"), types(ing))},
			want:     denied("keda/deny")},
		{name: "invalid podSelector selects nothing, reported", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "bad", selectingExpr("app", "Matches", "keda"), types(ing))},
			want:     notIsolated().with("keda/bad spec.podSelector.matchExpressions[0]")},
		{name: "policy with empty namespace is in default", to: netpol.PodEndpoint(&netpol.Pod{Namespace: "default"}),
			from: apiserver(), policies: pols{netpolicy("", "deny")}, want: denied("default/deny")},
		{name: "union: deny-all plus allow", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "deny", types(ing)), netpolicy("keda", "allow", in(ports(tcp(6443))))},
			want:     allowed("keda/allow ingress rule 0", "keda/deny", "keda/allow")},
		{name: "union: second rule of second policy", to: dst, from: apiserver(),
			policies: pols{
				netpolicy("keda", "a", in(ports(tcp(80)))),
				netpolicy("keda", "b", in(ports(tcp(81))), in(ports(tcp(6443)))),
			},
			want: allowed("keda/b ingress rule 1", "keda/a", "keda/b")},
		{name: "union: first allowing rule in input order", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "a", in(nil)), netpolicy("keda", "b", in(nil))},
			want:     allowed("keda/a ingress rule 0", "keda/a", "keda/b")},
		{name: "ingress: [] allows nothing", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "empty", noIngress())}, want: denied("keda/empty")},
		{name: "ingress: [{}] allows everything", to: dst, from: external(), port: 9, proto: corev1.ProtocolSCTP,
			policies: pols{netpolicy("keda", "all", in(nil))}, want: allowed("keda/all ingress rule 0", "keda/all")},
		{name: "ports only: any source on that port", to: dst, from: external(),
			policies: pols{netpolicy("keda", "p", in(ports(tcp(6443))))}, want: allowed("keda/p ingress rule 0", "keda/p")},
		{name: "ports only: other port denied", to: dst, from: external(), port: 8080,
			policies: pols{netpolicy("keda", "p", in(ports(tcp(6443))))}, want: denied("keda/p")},
		{name: "from only: every port and protocol", to: dst, from: apiserver(), port: 53, proto: corev1.ProtocolUDP,
			policies: pols{netpolicy("keda", "f", in(nil, ipPeer("192.168.0.0/24")))}, want: allowed("keda/f ingress rule 0", "keda/f")},
		{name: "ports [{protocol: UDP}] allows any UDP port", to: dst, from: apiserver(), port: 9999, proto: corev1.ProtocolUDP,
			policies: pols{netpolicy("keda", "u", in(ports(allOf(corev1.ProtocolUDP))))}, want: allowed("keda/u ingress rule 0", "keda/u")},
		{name: "ports [{protocol: UDP}] denies TCP", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "u", in(ports(allOf(corev1.ProtocolUDP))))}, want: denied("keda/u")},
		{name: "ports [{}] means every TCP port", to: dst, from: apiserver(), port: 1,
			policies: pols{netpolicy("keda", "t", in(ports(networkingv1.NetworkPolicyPort{})))}, want: allowed("keda/t ingress rule 0", "keda/t")},
		{name: "ports [{}] denies UDP", to: dst, from: apiserver(), proto: corev1.ProtocolUDP,
			policies: pols{netpolicy("keda", "t", in(ports(networkingv1.NetworkPolicyPort{})))}, want: denied("keda/t")},
		{name: "rule whose ports are all invalid allows nothing", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "bad", in(ports(tcp(0))))},
			want:     denied("keda/bad").with("keda/bad spec.ingress[0].ports[0].port")},
		{name: "rule whose peers are all invalid allows nothing", to: dst, from: apiserver(),
			policies: pols{netpolicy("keda", "bad", in(nil, networkingv1.NetworkPolicyPeer{}))},
			want:     denied("keda/bad").with("keda/bad spec.ingress[0].from[0]")},
	})
}

// TestPeers: pod and namespace selectors, AND within a peer, OR across peers,
// label selector operators.
func TestPeers(t *testing.T) {
	dst := netpol.PodEndpoint(kedaPod())
	prom := netpol.PodEndpoint(promPod())
	local := netpol.PodEndpoint(&netpol.Pod{Namespace: "keda", Labels: map[string]string{"app": "prometheus"}, IPs: kedaPod().IPs[:1]})
	promLabels := map[string]string{"app": "prometheus"}
	ops := map[string]string{"team": "ops"}
	policy := func(peers ...networkingv1.NetworkPolicyPeer) pols {
		return pols{netpolicy("keda", "p", selecting(map[string]string{"app": "keda"}), in(nil, peers...))}
	}
	ok := allowed("keda/p ingress rule 0", "keda/p")
	no := denied("keda/p")
	runTable(t, []tcase{
		{name: "podSelector in the policy namespace", from: local, to: dst, policies: policy(podPeer(promLabels)), want: ok},
		{name: "podSelector does not reach other namespaces", from: prom, to: dst, policies: policy(podPeer(promLabels)), want: no},
		{name: "podSelector {} is every pod of the policy namespace", from: local, to: dst, policies: policy(podPeer(nil)), want: ok},
		{name: "podSelector {} excludes other namespaces", from: prom, to: dst, policies: policy(podPeer(nil)), want: no},
		{name: "namespaceSelector matches", from: prom, to: dst, policies: policy(nsPeer(ops)), want: ok},
		{name: "namespaceSelector does not match", from: prom, to: dst, policies: policy(nsPeer(map[string]string{"team": "dev"})), want: no},
		{name: "namespaceSelector {} is every namespace", from: prom, to: dst, policies: policy(nsPeer(nil)), want: ok},
		{name: "namespaceSelector {} matches no non-pod source", from: apiserver(), to: dst, policies: policy(nsPeer(nil)), want: no},
		{name: "podSelector matches no non-pod source", from: external(), to: dst, policies: policy(podPeer(nil)), want: no},
		{name: "AND: namespace matches, pod does not", from: prom, to: dst,
			policies: policy(podNSPeer(map[string]string{"app": "grafana"}, ops)), want: no},
		{name: "AND: both match", from: prom, to: dst, policies: policy(podNSPeer(promLabels, ops)), want: ok},
		{name: "AND: pod matches, namespace does not", from: prom, to: dst,
			policies: policy(podNSPeer(promLabels, map[string]string{"team": "dev"})), want: no},
		{name: "OR: separate peers, namespace one matches", from: prom, to: dst,
			policies: policy(podPeer(map[string]string{"app": "grafana"}), nsPeer(ops)), want: ok},
		{name: "OR: separate peers, pod one would need the policy namespace", from: prom, to: dst,
			policies: policy(podPeer(promLabels), nsPeer(map[string]string{"team": "dev"})), want: no},
		{name: "kubernetes.io/metadata.name is implied", from: prom, to: dst,
			policies: policy(nsPeer(map[string]string{"kubernetes.io/metadata.name": "monitoring"})), want: ok},
		{name: "kubernetes.io/metadata.name always equals the namespace", from: netpol.PodEndpoint(&netpol.Pod{
			Namespace: "monitoring", NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "keda"}}), to: dst,
			policies: policy(nsPeer(map[string]string{"kubernetes.io/metadata.name": "keda"})), want: no},
		{name: "NotIn matches a pod without the key", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{PodSelector: expr("env", metav1.LabelSelectorOpNotIn, "prod"),
				NamespaceSelector: sel(nil)}), want: ok},
		{name: "NotIn rejects a listed value", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{PodSelector: expr("app", metav1.LabelSelectorOpNotIn, "prometheus"),
				NamespaceSelector: sel(nil)}), want: no},
		{name: "DoesNotExist matches a namespace without the key", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("env", metav1.LabelSelectorOpDoesNotExist)}), want: ok},
		{name: "Exists needs the key", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("env", metav1.LabelSelectorOpExists)}), want: no},
		{name: "In with a value not listed", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("team", metav1.LabelSelectorOpIn, "dev", "qa")}), want: no},
		{name: "invalid operator: peer matches nothing, reported", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("team", "Like", "ops")}),
			want:     no.with("keda/p spec.ingress[0].from[0].namespaceSelector.matchExpressions[0]")},
		{name: "In without values is invalid", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("team", metav1.LabelSelectorOpIn)}),
			want:     no.with("keda/p spec.ingress[0].from[0].namespaceSelector.matchExpressions[0]")},
		{name: "Exists with values is invalid", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{NamespaceSelector: expr("team", metav1.LabelSelectorOpExists, "ops")}),
			want:     no.with("keda/p spec.ingress[0].from[0].namespaceSelector.matchExpressions[0]")},
		{name: "ipBlock combined with a selector is invalid", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}, NamespaceSelector: sel(nil)}),
			want:     no.with("keda/p spec.ingress[0].from[0]")},
		{name: "an invalid peer does not hide a valid one", from: prom, to: dst,
			policies: policy(networkingv1.NetworkPolicyPeer{}, nsPeer(ops)), want: ok.with("keda/p spec.ingress[0].from[0]")},
	})
}
