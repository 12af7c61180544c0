package netpol_test

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// The random generator for the differential test. It draws small universes
// (three namespaces, three nodes, a handful of label keys and values, ports
// and addresses packed into small ranges) so that selectors, CIDRs and ports
// match often enough to exercise every branch. It emits only policies the API
// server would accept, and avoids the cases listed in ambiguities
// (differential_test.go) that cannot be adapted for the oracle.

// universe is what the generator draws names, labels and ports from.
type universe struct {
	namespaces, nodes, podKeys, nsKeys, values, portNames []string
	ports                                                 []int32
	protocols                                             []corev1.Protocol
}

func newUniverse() universe {
	return universe{
		namespaces: []string{"ns-a", "ns-b", "ns-c"},
		nodes:      []string{"node-1", "node-2", "node-3"},
		podKeys:    []string{"app", "tier", "role"},
		nsKeys:     []string{"team", "env"},
		values:     []string{"a", "b", "c"},
		portNames:  []string{"http", "https", "dns", "metrics"},
		ports:      []int32{53, 80, 443, 6443, 8080, 10250},
		protocols:  []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP},
	}
}

// allKeys lists every label key a selector may use.
func (u universe) allKeys() []string {
	return slices.Concat(u.podKeys, u.nsKeys, []string{nsNameKey})
}

const nsNameKey = "kubernetes.io/metadata.name"

// gen draws cases from r.
type gen struct {
	r      *rand.Rand
	u      universe
	v6     bool // address family of the case
	nsLbls map[string]map[string]string
}

func newGen(seed1, seed2 uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed1, seed2)), u: newUniverse()}
}

// genCase is one random case: policies and the traffic between two endpoints.
type genCase struct {
	policies []*networkingv1.NetworkPolicy
	traffic  netpol.Traffic
}

func (g *gen) pick(n int) int        { return g.r.IntN(n) }
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pickOf[T any](g *gen, s []T) T { return s[g.r.IntN(len(s))] }

// newCase draws a full case.
func (g *gen) newCase() genCase {
	g.v6 = g.chance(0.4)
	g.nsLbls = map[string]map[string]string{}
	for _, ns := range g.u.namespaces {
		l := map[string]string{nsNameKey: ns}
		for _, k := range g.u.nsKeys {
			if g.chance(0.6) {
				l[k] = pickOf(g, g.u.values)
			}
		}
		g.nsLbls[ns] = l
	}
	dst := g.endpoint(true)
	src := g.endpoint(false)
	c := genCase{traffic: netpol.Traffic{Source: src, Destination: dst, Port: g.trafficPort(dst), Protocol: g.protocol(true)}}
	for i := range 1 + g.pick(5) {
		c.policies = append(c.policies, g.policy(i, src, dst))
	}
	return c
}

// endpoint draws a pod-network pod, a hostNetwork pod, a node or an external
// address; a destination is a pod-network pod more often than a source.
func (g *gen) endpoint(dst bool) netpol.Endpoint {
	n := g.pick(100)
	if dst && n < 50 {
		n = n * 45 / 50 // destinations: 60% pod-network pods
	}
	node := pickOf(g, g.u.nodes)
	switch {
	case n < 45:
		return netpol.PodEndpoint(g.pod(node, false))
	case n < 60:
		p := g.pod(node, true)
		return netpol.Endpoint{Pod: p, Node: node}
	case n < 80:
		return netpol.AddrEndpoint(g.nodeIP(node), node)
	}
	return netpol.AddrEndpoint(g.addr(g.v6 != g.chance(0.1), 203, 113), "")
}

// pod draws a pod; its first IP is of the case's family.
func (g *gen) pod(node string, hostNetwork bool) *netpol.Pod {
	ns := pickOf(g, g.u.namespaces)
	p := &netpol.Pod{Namespace: ns, Name: "pod-" + strconv.Itoa(g.pick(1000)), NamespaceLabels: g.nsLbls[ns],
		Labels: map[string]string{}, NodeName: node, HostNetwork: hostNetwork}
	for _, k := range g.u.podKeys {
		if g.chance(0.6) {
			p.Labels[k] = pickOf(g, g.u.values)
		}
	}
	if hostNetwork {
		p.IPs = []netip.Addr{g.nodeIP(node)}
	} else {
		p.IPs = []netip.Addr{g.addr(g.v6, 10, 0), g.addr(!g.v6, 10, 0)}
	}
	// Unique names and unique number/protocol pairs: see ambiguity
	// "named-port-duplicates".
	names := slices.Clone(g.u.portNames)
	g.r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for i := range g.pick(4) {
		cp := netpol.ContainerPort{Name: names[i], Port: pickOf(g, g.u.ports), Protocol: g.protocol(true)}
		if !slices.ContainsFunc(p.Ports, func(o netpol.ContainerPort) bool {
			return o.Port == cp.Port && protoOr(o.Protocol) == protoOr(cp.Protocol)
		}) {
			p.Ports = append(p.Ports, cp)
		}
	}
	return p
}

func protoOr(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// addr draws an address in a small range: a.b.0-3.x for IPv4, fd<a>::<b>:0-3xx for IPv6.
func (g *gen) addr(v6 bool, a, b byte) netip.Addr {
	if v6 {
		var x [16]byte
		x[0], x[1], x[13], x[14], x[15] = 0xfd, a, b, byte(g.pick(4)), byte(g.pick(256))
		return netip.AddrFrom16(x)
	}
	return netip.AddrFrom4([4]byte{a, b, byte(g.pick(4)), byte(g.pick(256))})
}

// nodeIP is node's address in the case's family.
func (g *gen) nodeIP(node string) netip.Addr {
	i := byte(slices.Index(g.u.nodes, node) + 1)
	if g.v6 {
		return netip.AddrFrom16([16]byte{0: 0xfd, 1: 192, 15: i})
	}
	return netip.AddrFrom4([4]byte{192, 168, 0, i})
}

func (g *gen) protocol(allowEmpty bool) corev1.Protocol {
	if allowEmpty && g.chance(0.25) {
		return ""
	}
	return pickOf(g, g.u.protocols)
}

// trafficPort is often one of the destination's container ports.
func (g *gen) trafficPort(dst netpol.Endpoint) int32 {
	if dst.Pod != nil && len(dst.Pod.Ports) > 0 && g.chance(0.4) {
		return pickOf(g, dst.Pod.Ports).Port
	}
	if g.chance(0.1) {
		return int32(1 + g.pick(65535))
	}
	return pickOf(g, g.u.ports)
}

// policy draws policy i, usually in the namespace of one of the ends.
func (g *gen) policy(i int, src, dst netpol.Endpoint) *networkingv1.NetworkPolicy {
	ns := pickOf(g, g.u.namespaces)
	switch n := g.pick(10); {
	case n < 4 && dst.Pod != nil:
		ns = dst.Pod.Namespace
	case n < 7 && src.Pod != nil:
		ns = src.Pod.Namespace
	}
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "np-" + strconv.Itoa(i)}}
	if !g.chance(0.3) {
		p.Spec.PodSelector = *g.selector(g.u.podKeys)
	}
	switch g.pick(4) {
	case 1:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	if n := g.ruleCount(); n >= 0 {
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
		for range n {
			p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: g.ports(), From: g.peers(src)})
		}
	}
	if n := g.ruleCount(); n >= 0 {
		p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
		for range n {
			p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{Ports: g.ports(), To: g.peers(dst)})
		}
	}
	return p
}

// ruleCount is -1 (field absent), 0 (empty list) or 1-3 rules.
func (g *gen) ruleCount() int {
	switch n := g.pick(10); {
	case n < 2:
		return -1
	case n < 3:
		return 0
	default:
		return 1 + g.pick(3)
	}
}

// selector draws a valid selector over keys (possibly empty).
func (g *gen) selector(keys []string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	for range g.pick(3) {
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		k := pickOf(g, keys)
		s.MatchLabels[k] = g.value(k)
	}
	ops := []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn,
		metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}
	for range g.pick(3) {
		e := metav1.LabelSelectorRequirement{Key: pickOf(g, keys), Operator: pickOf(g, ops)}
		if e.Operator == metav1.LabelSelectorOpIn || e.Operator == metav1.LabelSelectorOpNotIn {
			for range 1 + g.pick(2) {
				e.Values = append(e.Values, g.value(e.Key))
			}
		}
		s.MatchExpressions = append(s.MatchExpressions, e)
	}
	return s
}

// value draws a label value for key: a namespace name for
// kubernetes.io/metadata.name.
func (g *gen) value(key string) string {
	if key == nsNameKey {
		return pickOf(g, g.u.namespaces)
	}
	return pickOf(g, g.u.values)
}

// ports draws nil or 1-3 valid ports.
func (g *gen) ports() []networkingv1.NetworkPolicyPort {
	if g.chance(0.35) {
		return nil
	}
	var out []networkingv1.NetworkPolicyPort
	for range 1 + g.pick(3) {
		var p networkingv1.NetworkPolicyPort
		if pr := g.protocol(true); pr != "" {
			p.Protocol = &pr
		}
		switch g.pick(10) {
		case 0: // no port: every port of the protocol
		case 1, 2, 3:
			v := intstr.FromString(pickOf(g, g.u.portNames))
			p.Port = &v
		case 4, 5:
			lo := max(1, pickOf(g, g.u.ports)-int32(g.pick(100)))
			end := lo + int32(g.pick(200))
			v := intstr.FromInt32(lo)
			p.Port, p.EndPort = &v, &end
		default:
			v := intstr.FromInt32(pickOf(g, g.u.ports))
			p.Port = &v
		}
		out = append(out, p)
	}
	return out
}

// peers draws nil or 1-3 valid peers; other is the end they should often match.
func (g *gen) peers(other netpol.Endpoint) []networkingv1.NetworkPolicyPeer {
	if g.chance(0.3) {
		return nil
	}
	var out []networkingv1.NetworkPolicyPeer
	for range 1 + g.pick(3) {
		var p networkingv1.NetworkPolicyPeer
		switch g.pick(4) {
		case 0:
			p.IPBlock = g.ipBlock(other)
		case 1:
			p.PodSelector = g.selector(g.u.podKeys)
		case 2:
			p.NamespaceSelector = g.selector(append(slices.Clone(g.u.nsKeys), nsNameKey))
		default:
			p.PodSelector = g.selector(g.u.podKeys)
			p.NamespaceSelector = g.selector(g.u.nsKeys)
		}
		out = append(out, p)
	}
	return out
}

// ipBlock draws a valid ipBlock, often around the address of other, in the
// case's family most of the time; its excepts are strict subsets of cidr.
func (g *gen) ipBlock(other netpol.Endpoint) *networkingv1.IPBlock {
	anchor := other.IP
	if !anchor.IsValid() && other.Pod != nil {
		anchor = other.Pod.IPs[0]
	}
	switch g.pick(4) {
	case 2:
		anchor = g.addr(g.v6 != g.chance(0.2), 10, 0)
	case 3:
		anchor = g.nodeIP(pickOf(g, g.u.nodes))
	}
	if !anchor.IsValid() {
		anchor = g.addr(g.v6, 10, 0)
	}
	maxBits := anchor.BitLen()
	bits := 16 + g.pick(17)
	if anchor.Is6() {
		bits = 100 + g.pick(29)
	}
	if g.chance(0.05) {
		bits = 0
	}
	cidr := netip.PrefixFrom(anchor, bits)
	b := &networkingv1.IPBlock{CIDR: cidr.Masked().String()}
	if g.chance(0.2) {
		b.CIDR = cidr.String() // host bits set, as users write "10.0.1.7/22"
	}
	for range g.pick(3) {
		if bits == maxBits {
			break
		}
		inside := anchor
		if g.chance(0.5) {
			inside = g.randomIn(cidr.Masked())
		}
		e := netip.PrefixFrom(inside, bits+1+g.pick(maxBits-bits)).Masked()
		b.Except = append(b.Except, e.String())
	}
	return b
}

// randomIn draws an address inside p.
func (g *gen) randomIn(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if g.chance(0.5) {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
