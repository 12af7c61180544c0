package netpol_test

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// TestIPBlock: cidr and except, IPv4 and IPv6, an except of one rule allowed
// by another, parsing leniency and invalid blocks.
func TestIPBlock(t *testing.T) {
	dst := netpol.PodEndpoint(kedaPod())
	from := func(cidr string, except ...string) pols {
		return pols{netpolicy("keda", "p", in(nil, ipPeer(cidr, except...)))}
	}
	ok := allowed("keda/p ingress rule 0", "keda/p")
	no := denied("keda/p")
	runTable(t, []tcase{
		{name: "cidr contains the source", from: apiserver(), to: dst, policies: from("192.168.0.0/24"), want: ok},
		{name: "cidr does not contain the source", from: external(), to: dst, policies: from("192.168.0.0/24"), want: no},
		{name: "source in except", from: apiserver(), to: dst, policies: from("192.168.0.0/16", "192.168.0.0/28"), want: no},
		{name: "source outside except", from: apiserver(), to: dst, policies: from("192.168.0.0/16", "192.168.1.0/24"), want: ok},
		{name: "/32 block", from: apiserver(), to: dst, policies: from("192.168.0.10/32"), want: ok},
		{name: "0.0.0.0/0 matches any IPv4", from: external(), to: dst, policies: from("0.0.0.0/0"), want: ok},
		{name: "excepted by one rule, allowed by another", from: apiserver(), to: dst,
			policies: pols{netpolicy("keda", "p", in(nil, ipPeer("192.168.0.0/16", "192.168.0.0/24")), in(ports(tcp(6443)), ipPeer("192.168.0.10/32")))},
			want:     allowed("keda/p ingress rule 1", "keda/p")},
		{name: "excepted by one peer, allowed by another peer", from: apiserver(), to: dst,
			policies: pols{netpolicy("keda", "p", in(nil, ipPeer("192.168.0.0/16", "192.168.0.0/24"), ipPeer("192.168.0.8/29")))},
			want:     ok},
		{name: "excepted by one policy, allowed by another", from: apiserver(), to: dst,
			policies: pols{netpolicy("keda", "a", in(nil, ipPeer("192.168.0.0/16", "192.168.0.0/24"))), netpolicy("keda", "b", in(nil, ipPeer("192.168.0.0/20")))},
			want:     allowed("keda/b ingress rule 0", "keda/a", "keda/b")},
		{name: "IPv6 source in IPv6 block", from: apiserver6(), to: dst, policies: from("fd00:10::/64"), want: ok},
		{name: "IPv6 source in IPv6 except", from: apiserver6(), to: dst, policies: from("fd00::/16", "fd00:10::/112"), want: no},
		{name: "IPv6 ::/0 does not match IPv4", from: apiserver(), to: dst, policies: from("::/0"), want: no},
		{name: "IPv4 0.0.0.0/0 does not match IPv6", from: apiserver6(), to: dst, policies: from("0.0.0.0/0"), want: no},
		{name: "IPv4-mapped IPv6 source is IPv4", from: netpol.AddrEndpoint(ip("::ffff:192.168.0.10"), ""), to: dst,
			policies: from("192.168.0.0/24"), want: ok},
		{name: "IPv4-mapped IPv6 cidr is IPv4", from: apiserver(), to: dst, policies: from("::ffff:192.168.0.0/120"), want: ok},
		{name: "host bits in cidr are masked", from: apiserver(), to: dst, policies: from("192.168.0.77/24"), want: ok},
		{name: "leading zeros read as decimal", from: apiserver(), to: dst, policies: from("192.168.000.010/032"), want: ok},
		{name: "ipBlock matches a pod IP", from: netpol.PodEndpoint(promPod()), to: dst, policies: from("10.244.0.0/16"), want: ok},
		{name: "unparsable cidr matches nothing", from: apiserver(), to: dst, policies: from("192.168.0.0/33"),
			want: no.with("keda/p spec.ingress[0].from[0].ipBlock.cidr")},
		{name: "empty cidr matches nothing", from: apiserver(), to: dst, policies: from(""),
			want: no.with("keda/p spec.ingress[0].from[0].ipBlock.cidr")},
		{name: "except outside cidr invalidates the peer", from: apiserver(), to: dst, policies: from("192.168.0.0/24", "10.0.0.0/8"),
			want: no.with("keda/p spec.ingress[0].from[0].ipBlock.except[0]")},
		{name: "except equal to cidr is invalid", from: apiserver(), to: dst, policies: from("192.168.0.0/24", "192.168.0.0/24"),
			want: no.with("keda/p spec.ingress[0].from[0].ipBlock.except[0]")},
		{name: "except of the other family is invalid", from: apiserver(), to: dst, policies: from("192.168.0.0/24", "fd00::/64"),
			want: no.with("keda/p spec.ingress[0].from[0].ipBlock.except[0]")},
		{name: "source without an address matches no ipBlock", from: netpol.AddrEndpoint(netip.Addr{}, "cp-1"), to: dst,
			policies: from("0.0.0.0/0"), want: no},
	})
}

// TestPorts: numbers, protocols, ranges and named ports resolved on the
// destination pod.
func TestPorts(t *testing.T) {
	dst := netpol.PodEndpoint(kedaPod())
	on := func(ps ...networkingv1.NetworkPolicyPort) pols {
		return pols{netpolicy("keda", "p", in(ports(ps...)))}
	}
	ok := allowed("keda/p ingress rule 0", "keda/p")
	no := denied("keda/p")
	udp, sctp := corev1.ProtocolUDP, corev1.ProtocolSCTP
	str := intstr.FromString("https")
	runTable(t, []tcase{
		{name: "number matches", from: apiserver(), to: dst, policies: on(tcp(6443)), want: ok},
		{name: "other number", from: apiserver(), to: dst, port: 443, policies: on(tcp(6443)), want: no},
		{name: "policy protocol defaults to TCP", from: apiserver(), to: dst, proto: udp, policies: on(tcp(6443)), want: no},
		{name: "traffic protocol defaults to TCP", from: apiserver(), to: dst, policies: on(portProto(6443, corev1.ProtocolTCP)), want: ok},
		{name: "UDP port", from: apiserver(), to: dst, port: 53, proto: udp, policies: on(portProto(53, udp)), want: ok},
		{name: "UDP port does not allow TCP", from: apiserver(), to: dst, port: 53, policies: on(portProto(53, udp)), want: no},
		{name: "SCTP port", from: apiserver(), to: dst, port: 9, proto: sctp, policies: on(portProto(9, sctp)), want: ok},
		{name: "second port entry matches", from: apiserver(), to: dst, policies: on(tcp(443), tcp(6443)), want: ok},
		{name: "endPort range contains", from: apiserver(), to: dst, policies: on(portRange(6000, 7000)), want: ok},
		{name: "endPort range lower bound inclusive", from: apiserver(), to: dst, policies: on(portRange(6443, 6500)), want: ok},
		{name: "endPort range upper bound inclusive", from: apiserver(), to: dst, policies: on(portRange(6000, 6443)), want: ok},
		{name: "endPort range excludes", from: apiserver(), to: dst, port: 7001, policies: on(portRange(6000, 7000)), want: no},
		{name: "endPort below port is invalid", from: apiserver(), to: dst, policies: on(portRange(7000, 6000)),
			want: no.with("keda/p spec.ingress[0].ports[0].endPort")},
		{name: "endPort with a named port is invalid", from: apiserver(), to: dst,
			policies: on(networkingv1.NetworkPolicyPort{Port: &str, EndPort: new(int32(7000))}),
			want:     no.with("keda/p spec.ingress[0].ports[0].endPort")},
		{name: "endPort without port is invalid", from: apiserver(), to: dst,
			policies: on(networkingv1.NetworkPolicyPort{EndPort: new(int32(7000))}),
			want:     no.with("keda/p spec.ingress[0].ports[0].endPort")},
		{name: "port above 65535 is invalid", from: apiserver(), to: dst, policies: on(tcp(70000)),
			want: no.with("keda/p spec.ingress[0].ports[0].port")},
		{name: "unknown protocol is invalid", from: apiserver(), to: dst, policies: on(portProto(6443, "HTTP")),
			want: no.with("keda/p spec.ingress[0].ports[0].protocol")},
		{name: "named port resolves on the pod", from: apiserver(), to: dst, policies: on(named("https", "")), want: ok},
		{name: "named port, traffic to another number", from: apiserver(), to: dst, port: 8080, policies: on(named("https", "")), want: no},
		{name: "named UDP port", from: apiserver(), to: dst, port: 53, proto: udp, policies: on(named("dns", udp)), want: ok},
		{name: "named port protocol must match the container port", from: apiserver(), to: dst, port: 53,
			policies: on(named("dns", corev1.ProtocolTCP)), want: no},
		{name: "named port protocol must match the traffic", from: apiserver(), to: dst, proto: udp,
			policies: on(named("https", udp)), want: no},
		{name: "named port missing on the pod", from: apiserver(), to: dst, policies: on(named("web", "")), want: no},
		{name: "empty port name is invalid", from: apiserver(), to: dst, policies: on(named("", "")),
			want: no.with("keda/p spec.ingress[0].ports[0].port")},
	})
}
