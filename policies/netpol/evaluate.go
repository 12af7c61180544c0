package netpol

import corev1 "k8s.io/api/core/v1"

// Ingress decides whether t.Destination may receive t under the set's
// policies: the ingress half of a connection.
func (s *Set) Ingress(t Traffic) Verdict { return s.evaluate(ingress, &t) }

// Egress decides whether t.Source may send t under the set's policies: the
// egress half of a connection. Named ports are resolved on t.Destination.
func (s *Set) Egress(t Traffic) Verdict { return s.evaluate(egress, &t) }

// Reach decides both halves of t: the connection succeeds only when
// Path.Allowed.
func (s *Set) Reach(t Traffic) Path {
	return Path{Egress: s.evaluate(egress, &t), Ingress: s.evaluate(ingress, &t)}
}

// evaluate decides direction d of t. The policed end ("self") is the
// destination for ingress and the source for egress; rules match the other end.
func (s *Set) evaluate(d direction, t *Traffic) Verdict {
	self, other := &t.Destination, &t.Source
	if d == egress {
		self, other = other, self
	}
	v := Verdict{Direction: d.policyType(), Allowed: true, Reason: NotPoliced}
	if !self.isPodNetwork() {
		v.Explanation = explain(&v, t)
		return v
	}
	proto := protocolOr(t.Protocol)
	var dst *Pod // named ports resolve only on a pod-network destination
	if t.Destination.isPodNetwork() {
		dst = t.Destination.Pod
	}
	if s.cilium != nil {
		return s.ciliumEvaluate(d, t, v, self, other, proto, dst)
	}
	// The Admin tier first: its first matching rule decides, unless it is
	// a Pass.
	if len(s.admin) > 0 {
		ref, accept, decided, issues := tierVerdict(s.admin, d, self, other, t.Port, proto, dst)
		if decided {
			return clusterVerdict(v, t, ref, accept, issues)
		}
		v.PassedBy = ref
	}
	s.networkPolicies(&v, d, self, other, t.Port, proto, dst)
	// The Baseline tier only for a pod no NetworkPolicy isolates.
	if !v.Isolated && len(s.baseline) > 0 {
		ref, accept, decided, issues := tierVerdict(s.baseline, d, self, other, t.Port, proto, dst)
		if decided {
			return clusterVerdict(v, t, ref, accept, append(v.Issues, issues...))
		}
	}
	if v.Isolated {
		v.Tier = TierNetworkPolicy
	}
	v.Explanation = explain(&v, t)
	return v
}

// clusterVerdict is v decided by a ClusterNetworkPolicy rule.
func clusterVerdict(v Verdict, t *Traffic, ref *ClusterRuleRef, accept bool, issues []Issue) Verdict {
	v.Allowed, v.Reason, v.Tier, v.DecidedBy = accept, ClusterDeny, ref.Tier, ref
	if accept {
		v.Reason = ClusterAccept
	}
	v.Issues = issues
	v.Explanation = explain(&v, t)
	return v
}

// networkPolicies decides v by the NetworkPolicies of self's namespace.
func (s *Set) networkPolicies(v *Verdict, d direction, self, other *Endpoint, port int32, proto corev1.Protocol, dst *Pod) {
	x := party{ip: other.addr()}
	if other.isPodNetwork() {
		x.pod = other.Pod
	}
	pols := s.byNamespace[self.Pod.Namespace]
	var small [16]uint64 // selection bitmap without allocating, up to 1,024 policies
	chosen, n := selectPolicies(pols, d, labelSet{m: self.Pod.Labels}, small[:0])
	if n > 0 {
		v.IsolatedBy = make([]PolicyRef, 0, n)
	}
	for i, p := range pols {
		if chosen[i/64]&(1<<(i%64)) == 0 {
			if p.affects[d] && p.selector.invalid {
				v.Issues = append(v.Issues, p.issues[d]...)
			}
			continue
		}
		v.IsolatedBy = append(v.IsolatedBy, p.ref)
		v.Issues = append(v.Issues, p.issues[d]...)
		if v.AllowedBy == nil {
			v.AllowedBy = p.firstMatch(d, &x, port, proto, dst)
		}
	}
	v.decide(d, self, other)
}

// selectPolicies marks in a bitmap (buf grown as needed) the policies that
// select the pod for direction d, and counts them, so the verdict's list can
// be allocated once at its final size.
func selectPolicies(pols []*policy, d direction, pod labelSet, buf []uint64) ([]uint64, int) {
	words := (len(pols) + 63) / 64
	if words > cap(buf) {
		buf = make([]uint64, words)
	}
	buf = buf[:words]
	n := 0
	for i, p := range pols {
		if p.affects[d] && p.selector.matches(pod) {
			buf[i/64] |= 1 << (i % 64)
			n++
		}
	}
	return buf, n
}

// firstMatch returns the first rule of direction d that allows the traffic.
func (p *policy) firstMatch(d direction, x *party, port int32, proto corev1.Protocol, dst *Pod) *RuleRef {
	for i := range p.rules[d] {
		if p.rules[d][i].matches(x, port, proto, dst) {
			return &RuleRef{Policy: p.ref, Direction: d.policyType(), Index: i}
		}
	}
	return nil
}

// decide sets Isolated, Allowed and Reason once the policies are scanned.
func (v *Verdict) decide(d direction, self, other *Endpoint) {
	v.Isolated = len(v.IsolatedBy) > 0
	switch {
	case !v.Isolated:
		v.Reason = NotIsolated
	case v.AllowedBy != nil:
		v.Reason = AllowedByRule
	case d == ingress && !other.isPodNetwork() && other.node() != "" && other.node() == self.node():
		v.Reason = SameNode
	default:
		v.Allowed, v.Reason = false, NoRuleAllows
	}
}
