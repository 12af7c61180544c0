package netpol

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// party is the other end of a connection as a rule sees it: the source for
// ingress, the destination for egress.
type party struct {
	// pod is set only for a pod-network pod: selectors never match anything else.
	pod *Pod
	ip  netip.Addr
}

// peerKind says what a compiled NetworkPolicyPeer matches.
type peerKind uint8

const (
	peerInvalid peerKind = iota // matches nothing
	peerIPBlock
	peerPods
)

// peer is a compiled networkingv1.NetworkPolicyPeer.
type peer struct {
	kind  peerKind
	block ipBlock
	// nsSel selects namespaces when nsBySelector; otherwise only the policy's
	// namespace matches.
	nsBySelector bool
	nsSel        selector
	namespace    string
	pods         selector
}

func (p *peer) matches(x *party) bool {
	switch p.kind {
	case peerIPBlock:
		return p.block.contains(x.ip)
	case peerPods:
		if x.pod == nil {
			return false
		}
		if !p.nsBySelector {
			if x.pod.Namespace != p.namespace {
				return false
			}
		} else if !p.nsSel.matches(labelSet{m: x.pod.NamespaceLabels, ns: x.pod.Namespace}) {
			return false
		}
		return p.pods.matches(labelSet{m: x.pod.Labels})
	}
	return false
}

// compilePeer compiles one entry of from/to, at field path f, in a policy of
// namespace ns.
func compilePeer(np *networkingv1.NetworkPolicyPeer, ns string, f path, r reporter) peer {
	switch {
	case np.IPBlock != nil && (np.PodSelector != nil || np.NamespaceSelector != nil):
		r.add(f, "ipBlock cannot be combined with podSelector or namespaceSelector; the peer matches nothing")
		return peer{}
	case np.IPBlock != nil:
		bf := f.field("ipBlock")
		b, ok := compileIPBlock(np.IPBlock, bf, r)
		if !ok {
			return peer{}
		}
		return peer{kind: peerIPBlock, block: b}
	case np.PodSelector == nil && np.NamespaceSelector == nil:
		r.add(f, "no podSelector, namespaceSelector or ipBlock; the peer matches nothing")
		return peer{}
	}
	p := peer{kind: peerPods, namespace: ns}
	pf := f.field("podSelector")
	p.pods = compileSelector(np.PodSelector, pf, r)
	invalid := p.pods.invalid
	if np.NamespaceSelector != nil {
		nf := f.field("namespaceSelector")
		p.nsBySelector, p.nsSel = true, compileSelector(np.NamespaceSelector, nf, r)
		invalid = invalid || p.nsSel.invalid
	}
	if invalid {
		return peer{}
	}
	return p
}

// rule is a compiled ingress or egress rule.
type rule struct {
	allPeers bool // from/to empty or missing
	peers    []peer
	allPorts bool // ports empty or missing
	ports    []portMatch
}

// matches reports whether the rule allows traffic with party x at the other
// end, to port/proto of dst (nil when the destination is no pod-network pod).
func (r *rule) matches(x *party, port int32, proto corev1.Protocol, dst *Pod) bool {
	if !r.allPorts && !r.matchesPort(port, proto, dst) {
		return false
	}
	if r.allPeers {
		return true
	}
	for i := range r.peers {
		if r.peers[i].matches(x) {
			return true
		}
	}
	return false
}

func (r *rule) matchesPort(port int32, proto corev1.Protocol, dst *Pod) bool {
	for i := range r.ports {
		if r.ports[i].matches(port, proto, dst) {
			return true
		}
	}
	return false
}

// compileRule compiles one rule at field path f; peerField is "from" or "to".
func compileRule(ports []networkingv1.NetworkPolicyPort, peers []networkingv1.NetworkPolicyPeer,
	ns string, f path, peerField string, r reporter) rule {
	out := rule{allPeers: len(peers) == 0, allPorts: len(ports) == 0}
	if len(ports) > 0 {
		out.ports = make([]portMatch, 0, len(ports))
	}
	for i := range ports {
		pf := f.at("ports", i)
		if m, ok := compilePort(&ports[i], pf, r); ok {
			out.ports = append(out.ports, m)
		}
	}
	if len(peers) > 0 {
		out.peers = make([]peer, 0, len(peers))
	}
	for i := range peers {
		pf := f.at(peerField, i)
		if p := compilePeer(&peers[i], ns, pf, r); p.kind != peerInvalid {
			out.peers = append(out.peers, p)
		}
	}
	return out
}
