package bench

import (
	"fmt"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// bigPolicies are the backend namespace's 1,000 policies: a default-deny, one
// allow of the API server on the adapters' 6443, and 998 varied policies
// (label selectors with expressions, namespace and pod peers, ipBlocks with
// excepts, numbered, ranged and named ports, some egress). About one in ten
// selects the adapter pods; none of those allows the API server on 6443.
func bigPolicies(ns string, apiServer netip.Addr) []client.Object {
	out := []client.Object{
		policy(ns, "default-deny", metav1.LabelSelector{}),
		policy(ns, "allow-apiserver", metav1.LabelSelector{MatchLabels: map[string]string{"app": "adapter"}},
			ingressFrom(ports(6443), networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(apiServer, apiServer.BitLen()).String()}})),
	}
	for i := 2; i < scaleBigPolicies; i++ {
		sel := metav1.LabelSelector{
			MatchLabels:      map[string]string{"app": "svc-" + strconv.Itoa(i%40)},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db", "cache"}}},
		}
		if i%10 == 2 {
			sel = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"adapter", "svc-" + strconv.Itoa(i%40)}}}}
		}
		out = append(out, policy(ns, fmt.Sprintf("np-%04d", i), sel, variedRules(i)...))
	}
	return out
}

// variedRules are four shapes of ingress, and egress on every third policy.
func variedRules(i int) []func(*networkingv1.NetworkPolicy) {
	octet := strconv.Itoa(i % 256)
	var rules []func(*networkingv1.NetworkPolicy)
	switch i % 4 {
	case 0:
		rules = append(rules, ingressFrom(append(ports(9090), namedPort("metrics")),
			networkingv1.NetworkPolicyPeer{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}}}))
	case 1:
		rules = append(rules, ingressFrom(append(ports(8443), networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromInt32(9000)), EndPort: ptr.To[int32](9100)}),
			networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "172.16." + octet + ".0/24", Except: []string{"172.16." + octet + ".128/25"}}}))
	case 2:
		rules = append(rules,
			ingressFrom([]networkingv1.NetworkPolicyPort{namedPort("http")},
				networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "team-" + strconv.Itoa(i%40)}}}),
			ingressFrom([]networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))}},
				networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "fd00:" + strconv.FormatInt(int64(i), 16) + "::/64"}}))
	default:
		rules = append(rules, ingressFrom(ports(80, 443),
			networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}}}))
	}
	if i%3 == 0 {
		rules = append(rules, egressTo(ports(53), networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}}}),
			egressTo(ports(443), networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}))
	}
	return rules
}

// appPolicies are what an ordinary namespace holds: a default-deny, an allow
// from the ingress controller, and (n > 2) an allow of Prometheus.
func appPolicies(ns string, n int) []client.Object {
	out := []client.Object{
		policy(ns, "default-deny-ingress", metav1.LabelSelector{}),
		policy(ns, "allow-ingress-nginx", metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
			ingressFrom([]networkingv1.NetworkPolicyPort{namedPort("http")}, networkingv1.NetworkPolicyPeer{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}}),
			ingressFrom(nil, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}})),
	}
	if n > 2 {
		out = append(out, prometheusPolicy(ns, "allow-prometheus", metav1.LabelSelector{}))
	}
	return out[:n]
}

// prometheusPolicy allows Prometheus in namespace monitoring to scrape the
// selected pods' metrics port.
func prometheusPolicy(ns, name string, sel metav1.LabelSelector) *networkingv1.NetworkPolicy {
	return policy(ns, name, sel, ingressFrom(append(ports(9090), namedPort("metrics")), networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}}}))
}

func policy(ns, name string, sel metav1.LabelSelector, opts ...func(*networkingv1.NetworkPolicy)) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "bench"}},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	for _, o := range opts {
		o(np)
	}
	return np
}

func ingressFrom(ps []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: ps, From: peers})
	}
}

func egressTo(ps []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		if len(np.Spec.Egress) == 0 {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{Ports: ps, To: peers})
	}
}

func ports(ns ...int32) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, len(ns))
	for i, n := range ns {
		out[i] = networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(n))}
	}
	return out
}

func namedPort(name string) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString(name))}
}
