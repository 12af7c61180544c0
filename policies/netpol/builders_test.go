package netpol_test

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// Builders for the table tests: short names for the parts of a policy.

type policyOpt func(*networkingv1.NetworkPolicy)

// netpolicy builds policy namespace/name selecting every pod, with no rules
// and no policyTypes; opts fill it in.
func netpolicy(namespace, name string, opts ...policyOpt) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// selecting sets spec.podSelector.matchLabels.
func selecting(labels map[string]string) policyOpt {
	return func(p *networkingv1.NetworkPolicy) { p.Spec.PodSelector = metav1.LabelSelector{MatchLabels: labels} }
}

// selectingExpr sets spec.podSelector to one expression.
func selectingExpr(key string, op metav1.LabelSelectorOperator, values ...string) policyOpt {
	return func(p *networkingv1.NetworkPolicy) { p.Spec.PodSelector = *expr(key, op, values...) }
}

// types sets spec.policyTypes.
func types(ts ...networkingv1.PolicyType) policyOpt {
	return func(p *networkingv1.NetworkPolicy) { p.Spec.PolicyTypes = ts }
}

const (
	ing = networkingv1.PolicyTypeIngress
	egr = networkingv1.PolicyTypeEgress
)

// noIngress sets `ingress: []` (present, empty).
func noIngress() policyOpt {
	return func(p *networkingv1.NetworkPolicy) { p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{} }
}

// in appends an ingress rule.
func in(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) policyOpt {
	return func(p *networkingv1.NetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: ports, From: peers})
	}
}

// out appends an egress rule.
func out(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) policyOpt {
	return func(p *networkingv1.NetworkPolicy) {
		p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{Ports: ports, To: peers})
	}
}

// ports is shorthand for a port list.
func ports(ps ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return ps }

func proto(p corev1.Protocol) *corev1.Protocol { return &p }

// tcp is a numbered port without protocol (defaults to TCP).
func tcp(n int32) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Port: &v}
}

// portProto is a numbered port with a protocol.
func portProto(n int32, p corev1.Protocol) networkingv1.NetworkPolicyPort {
	pp := tcp(n)
	pp.Protocol = proto(p)
	return pp
}

// portRange is port..end with the default protocol.
func portRange(n, end int32) networkingv1.NetworkPolicyPort {
	pp := tcp(n)
	pp.EndPort = &end
	return pp
}

// named is a named port; p empty leaves the protocol unset.
func named(name string, p corev1.Protocol) networkingv1.NetworkPolicyPort {
	v := intstr.FromString(name)
	pp := networkingv1.NetworkPolicyPort{Port: &v}
	if p != "" {
		pp.Protocol = proto(p)
	}
	return pp
}

// allOf is every port of protocol p.
func allOf(p corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: proto(p)}
}

func expr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func sel(labels map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: labels}
}

// podPeer selects pods by labels in the policy's namespace.
func podPeer(labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: sel(labels)}
}

// nsPeer selects every pod of namespaces by labels.
func nsPeer(labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: sel(labels)}
}

// podNSPeer selects pods by labels in namespaces by labels (AND).
func podNSPeer(pod, ns map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: sel(pod), NamespaceSelector: sel(ns)}
}

// ipPeer is an ipBlock peer.
func ipPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// kedaPod is the destination most cases use: a KEDA-like metrics adapter on
// worker-1, dual-stack, with named ports https (6443/TCP), metrics
// (8080/TCP) and dns (53/UDP).
func kedaPod() *netpol.Pod {
	return &netpol.Pod{
		Namespace:       "keda",
		Name:            "keda-metrics-apiserver",
		NamespaceLabels: map[string]string{"team": "platform"},
		Labels:          map[string]string{"app": "keda"},
		NodeName:        "worker-1",
		IPs:             []netip.Addr{ip("10.244.1.7"), ip("fd00:244::7")},
		Ports: []netpol.ContainerPort{
			{Name: "https", Port: 6443},
			{Name: "metrics", Port: 8080, Protocol: corev1.ProtocolTCP},
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
		},
	}
}

// promPod is a pod-network client in namespace monitoring on worker-2.
func promPod() *netpol.Pod {
	return &netpol.Pod{
		Namespace:       "monitoring",
		Name:            "prometheus-0",
		NamespaceLabels: map[string]string{"team": "ops"},
		Labels:          map[string]string{"app": "prometheus"},
		NodeName:        "worker-2",
		IPs:             []netip.Addr{ip("10.244.2.9")},
	}
}

// agentPod is a konnectivity agent; hostNetwork ones carry the node IP.
func agentPod(hostNetwork bool) *netpol.Pod {
	p := &netpol.Pod{
		Namespace:       "kube-system",
		Name:            "konnectivity-agent-x",
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"},
		Labels:          map[string]string{"k8s-app": "konnectivity-agent"},
		NodeName:        "worker-1",
		HostNetwork:     hostNetwork,
		IPs:             []netip.Addr{ip("10.244.1.3")},
	}
	if hostNetwork {
		p.IPs = []netip.Addr{ip("192.168.0.21")}
	}
	return p
}

// apiserver is a control-plane host on its own node.
func apiserver() netpol.Endpoint { return netpol.AddrEndpoint(ip("192.168.0.10"), "cp-1") }

// apiserver6 is the same host over IPv6.
func apiserver6() netpol.Endpoint { return netpol.AddrEndpoint(ip("fd00:10::10"), "cp-1") }

// ownNode is kedaPod's node (kubelet, or any host process there).
func ownNode() netpol.Endpoint { return netpol.AddrEndpoint(ip("192.168.0.21"), "worker-1") }

// external is an address outside the cluster.
func external() netpol.Endpoint { return netpol.AddrEndpoint(ip("203.0.113.5"), "") }
