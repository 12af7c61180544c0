package netpol_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// FuzzEvaluate: policies and traffic decoded from arbitrary bytes, valid or
// not, never panic, always give the same verdict, and verdicts are
// consistent with themselves.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add([]byte("netpol: 10.0.0.0/8 except 10.1.0.0/16 port https endPort 5"))
	f.Add([]byte{3, 0, 1, 2, 1, 1, 0, 2, 3, 1, 0, 5, 7, 200, 255, 0, 1, 1, 2, 2, 4, 4, 9, 9, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &decoder{b: data}
		policies := d.policies()
		tr := d.traffic()
		a := netpol.Compile(policies)
		p1 := sameTwice(t, a, netpol.Compile(policies), tr)
		if diff := cmp.Diff(p1, netpol.Evaluate(policies, tr)); diff != "" {
			t.Fatalf("Evaluate differs from Compile+Reach (-reach +evaluate):\n%s", diff)
		}
		checkVerdict(t, p1.Ingress, a.Ingress(tr))
		checkVerdict(t, p1.Egress, a.Egress(tr))
		if p1.Allowed() != (p1.Ingress.Allowed && p1.Egress.Allowed) || p1.Explanation() == "" {
			t.Fatalf("inconsistent path: %+v", p1)
		}
	})
}

// checkVerdict checks v against the single-direction evaluation and its own
// invariants.
func checkVerdict(t *testing.T, v, single netpol.Verdict) {
	t.Helper()
	if diff := cmp.Diff(v, single); diff != "" {
		t.Fatalf("Reach and single direction differ (-reach +single):\n%s", diff)
	}
	ok := v.Allowed == (v.Reason != netpol.NoRuleAllows) &&
		v.Isolated == (len(v.IsolatedBy) > 0) &&
		(v.Reason == netpol.AllowedByRule) == (v.AllowedBy != nil) &&
		(v.Reason != netpol.SameNode || v.Direction == networkingv1.PolicyTypeIngress) &&
		(v.Reason != netpol.NotPoliced && v.Reason != netpol.NotIsolated || !v.Isolated) &&
		v.Explanation != ""
	if !ok {
		t.Fatalf("inconsistent verdict: %+v", v)
	}
}

// decoder turns fuzz bytes into choices; past the end every choice is 0.
type decoder struct{ b []byte }

func (d *decoder) next() byte {
	if len(d.b) == 0 {
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) intn(n int) int { return int(d.next()) % n }

func choose[T any](d *decoder, s ...T) T { return s[d.intn(len(s))] }

// str is one of the given strings or, for the choice past them, raw bytes.
func (d *decoder) str(s ...string) string {
	i := d.intn(len(s) + 1)
	if i < len(s) {
		return s[i]
	}
	n := d.intn(12)
	out := make([]byte, 0, n)
	for range n {
		out = append(out, d.next())
	}
	return string(out)
}

func (d *decoder) policies() []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for range d.intn(5) {
		if d.intn(8) == 0 {
			out = append(out, nil)
			continue
		}
		p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: d.str("a", "b", ""), Name: d.str("p", "q")}}
		p.Spec.PodSelector = *d.selector()
		for range d.intn(3) {
			p.Spec.PolicyTypes = append(p.Spec.PolicyTypes, networkingv1.PolicyType(d.str("Ingress", "Egress")))
		}
		if d.intn(2) == 0 {
			p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
		}
		for range d.intn(3) {
			p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: d.ports(), From: d.peers()})
		}
		for range d.intn(3) {
			p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{Ports: d.ports(), To: d.peers()})
		}
		out = append(out, p)
	}
	return out
}

func (d *decoder) selector() *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	for range d.intn(3) {
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		s.MatchLabels[d.str("k", "l", "kubernetes.io/metadata.name")] = d.str("v", "w", "a")
	}
	for range d.intn(3) {
		e := metav1.LabelSelectorRequirement{Key: d.str("k", "l"),
			Operator: metav1.LabelSelectorOperator(d.str("In", "NotIn", "Exists", "DoesNotExist"))}
		for range d.intn(3) {
			e.Values = append(e.Values, d.str("v", "w"))
		}
		s.MatchExpressions = append(s.MatchExpressions, e)
	}
	return s
}

func (d *decoder) peers() []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for range d.intn(3) {
		var p networkingv1.NetworkPolicyPeer
		flags := d.next()
		if flags&1 != 0 {
			p.PodSelector = d.selector()
		}
		if flags&2 != 0 {
			p.NamespaceSelector = d.selector()
		}
		if flags&4 != 0 {
			p.IPBlock = &networkingv1.IPBlock{CIDR: d.cidr()}
			for range d.intn(3) {
				p.IPBlock.Except = append(p.IPBlock.Except, d.cidr())
			}
		}
		out = append(out, p)
	}
	return out
}

func (d *decoder) cidr() string {
	return d.str("10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "0.0.0.0/0", "::/0", "fd00::/64", "fd00::1/128",
		"::ffff:10.0.0.0/104", "010.0.0.0/08", "10.0.0.0/33", "10.0.0.0", "", "fe80::1%eth0/64")
}

func (d *decoder) ports() []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for range d.intn(3) {
		var p networkingv1.NetworkPolicyPort
		if d.intn(2) == 0 {
			pr := corev1.Protocol(d.str("TCP", "UDP", "SCTP", "tcp", ""))
			p.Protocol = &pr
		}
		switch d.intn(4) {
		case 1:
			p.Port = &intstr.IntOrString{Type: intstr.Int, IntVal: d.int32()}
		case 2:
			p.Port = &intstr.IntOrString{Type: intstr.String, StrVal: d.str("https", "dns", "")}
		case 3:
			p.Port = &intstr.IntOrString{Type: intstr.Type(d.next())}
		}
		if d.intn(2) == 0 {
			e := d.int32()
			p.EndPort = &e
		}
		out = append(out, p)
	}
	return out
}

// int32 is a small port-like number most of the time, any int32 otherwise.
func (d *decoder) int32() int32 {
	if d.intn(4) != 0 {
		return int32(d.next()) + 440
	}
	return int32(uint32(d.next())<<24 | uint32(d.next())<<16 | uint32(d.next())<<8 | uint32(d.next()))
}

func (d *decoder) traffic() netpol.Traffic {
	return netpol.Traffic{Source: d.endpoint(), Destination: d.endpoint(), Port: d.int32(),
		Protocol: corev1.Protocol(d.str("TCP", "UDP", "SCTP", ""))}
}

func (d *decoder) endpoint() netpol.Endpoint {
	e := netpol.Endpoint{IP: d.addr(), Node: d.str("n1", "n2", "")}
	if d.intn(3) == 0 {
		return e
	}
	e.Pod = &netpol.Pod{Namespace: d.str("a", "b", ""), NodeName: d.str("n1", "n2", ""), HostNetwork: d.intn(3) == 0}
	if d.intn(2) == 0 {
		e.Pod.Labels = map[string]string{d.str("k", "l"): d.str("v", "w")}
	}
	if d.intn(2) == 0 {
		e.Pod.NamespaceLabels = map[string]string{d.str("k", "l"): d.str("v", "w")}
	}
	for range d.intn(3) {
		e.Pod.IPs = append(e.Pod.IPs, d.addr())
	}
	for range d.intn(3) {
		e.Pod.Ports = append(e.Pod.Ports, netpol.ContainerPort{Name: d.str("https", "dns", ""), Port: d.int32(),
			Protocol: corev1.Protocol(d.str("TCP", "UDP", ""))})
	}
	return e
}

// addr is invalid (zero), IPv4, IPv6 or IPv4-mapped IPv6 in small ranges.
func (d *decoder) addr() netip.Addr {
	switch d.intn(4) {
	case 1:
		return netip.AddrFrom4([4]byte{10, d.next() % 3, d.next(), d.next()})
	case 2:
		return netip.AddrFrom16([16]byte{0: 0xfd, 14: d.next(), 15: d.next()})
	case 3:
		return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 10, 13: d.next() % 3, 14: d.next(), 15: d.next()})
	}
	return netip.Addr{}
}

// sameTwice checks that two sets compiled from the same input list the same
// issues and give the same path for tr, and returns that path.
func sameTwice(t *testing.T, a, b *netpol.Set, tr netpol.Traffic) netpol.Path {
	t.Helper()
	if diff := cmp.Diff(a.Issues(), b.Issues()); diff != "" {
		t.Fatalf("Issues not deterministic (-first +second):\n%s", diff)
	}
	p1, p2 := a.Reach(tr), b.Reach(tr)
	if diff := cmp.Diff(p1, p2); diff != "" {
		t.Fatalf("Reach not deterministic (-first +second):\n%s", diff)
	}
	return p1
}
