package netpol

import corev1 "k8s.io/api/core/v1"

// OpenIngress says whether pod dst accepts connections on port/proto from
// every address outside the pod network, whichever that is: dst is no
// pod-network pod, or no policy isolates it for ingress, or a rule of an
// isolating policy allows the port from every source (no from, or an ipBlock
// holding a whole address family with no except). It returns the isolating
// policies in input order. It is what can be said without knowing where a
// connection comes from.
func (s *Set) OpenIngress(dst *Pod, port int32, proto corev1.Protocol) (open bool, isolatedBy []PolicyRef) {
	if dst == nil || dst.HostNetwork {
		return true, nil
	}
	proto = protocolOr(proto)
	for _, p := range s.byNamespace[dst.Namespace] {
		if !p.affects[ingress] || !p.selector.matches(labelSet{m: dst.Labels}) {
			continue
		}
		isolatedBy = append(isolatedBy, p.ref)
		for i := range p.rules[ingress] {
			if r := &p.rules[ingress][i]; r.fromEverywhere() && (r.allPorts || r.matchesPort(port, proto, dst)) {
				open = true
			}
		}
	}
	return open || len(isolatedBy) == 0, isolatedBy
}

// fromEverywhere reports whether the rule's peers match every address.
func (r *rule) fromEverywhere() bool {
	if r.allPeers {
		return true
	}
	for i := range r.peers {
		if p := &r.peers[i]; p.kind == peerIPBlock && p.block.cidr.Bits() == 0 && len(p.block.except) == 0 {
			return true
		}
	}
	return false
}
