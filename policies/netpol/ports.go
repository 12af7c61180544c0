package netpol

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// portKind says what a compiled NetworkPolicyPort matches.
type portKind uint8

const (
	portAll   portKind = iota // every port of the protocol
	portRange                 // numbers lo..hi; a single port has lo == hi
	portNamed                 // a named container port of the destination pod
)

// portMatch is a compiled networkingv1.NetworkPolicyPort.
type portMatch struct {
	protocol corev1.Protocol
	kind     portKind
	lo, hi   int32
	name     string
}

// matches reports whether traffic to port/proto matches; dst is the
// destination pod for named ports, nil when it is no pod-network pod.
func (p *portMatch) matches(port int32, proto corev1.Protocol, dst *Pod) bool {
	if p.protocol != proto {
		return false
	}
	switch p.kind {
	case portAll:
		return true
	case portRange:
		return p.lo <= port && port <= p.hi
	}
	if dst == nil {
		return false
	}
	for i := range dst.Ports {
		cp := &dst.Ports[i]
		if cp.Port == port && cp.Name == p.name && protocolOr(cp.Protocol) == proto {
			return true
		}
	}
	return false
}

// compilePort compiles p at field path f, reporting problems through r; ok is
// false when the entry is invalid and must match nothing.
func compilePort(p *networkingv1.NetworkPolicyPort, f path, r reporter) (portMatch, bool) {
	out := portMatch{protocol: corev1.ProtocolTCP}
	if p.Protocol != nil {
		switch *p.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			out.protocol = *p.Protocol
		default:
			pf := f.field("protocol")
			r.add(pf, "unsupported protocol "+strconv.Quote(string(*p.Protocol))+"; the port matches nothing")
			return out, false
		}
	}
	bad := func(name, detail string) (portMatch, bool) {
		bf := f.field(name)
		r.add(bf, detail+"; the port matches nothing")
		return out, false
	}
	switch {
	case p.Port == nil && p.EndPort != nil:
		return bad("endPort", "endPort needs a numeric port")
	case p.Port == nil:
		out.kind = portAll
	case p.Port.Type == intstr.String && p.EndPort != nil:
		return bad("endPort", "endPort cannot follow a named port")
	case p.Port.Type == intstr.String && p.Port.StrVal == "":
		return bad("port", "empty port name")
	case p.Port.Type == intstr.String:
		out.kind, out.name = portNamed, p.Port.StrVal
	case p.Port.Type != intstr.Int:
		return bad("port", "neither a number nor a name")
	case p.Port.IntVal < 1 || p.Port.IntVal > 65535:
		return bad("port", "port "+strconv.Itoa(int(p.Port.IntVal))+" is outside 1-65535")
	default:
		out.kind, out.lo, out.hi = portRange, p.Port.IntVal, p.Port.IntVal
		if p.EndPort != nil {
			if *p.EndPort < out.lo || *p.EndPort > 65535 {
				return bad("endPort", "endPort "+strconv.Itoa(int(*p.EndPort))+" is below port or above 65535")
			}
			out.hi = *p.EndPort
		}
	}
	return out, true
}
