package netpol

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cilium's policy model, separate from NetworkPolicy's, for clusters whose
// CNI is Cilium: rules select endpoints by labels (pod labels, and
// io.kubernetes.pod.namespace and io.cilium.k8s.namespace.labels.<key>),
// peers are endpoints, entities and CIDRs, and a deny wins over any allow.
// A Set with Cilium policies (Set.WithCilium) decides by this model, with
// the NetworkPolicies taken into Cilium's union as Cilium takes them.

// Kinds of Cilium policies, as verdicts name them.
const (
	CiliumNetworkPolicyKind            = "CiliumNetworkPolicy"
	CiliumClusterwideNetworkPolicyKind = "CiliumClusterwideNetworkPolicy"
	// TierCilium names the Cilium layer in verdicts.
	TierCilium Tier = "Cilium"
)

// Cilium's label keys for a pod's namespace and its namespace's labels.
const (
	ciliumNamespaceLabel       = "io.kubernetes.pod.namespace"
	ciliumNamespaceLabelPrefix = "io.cilium.k8s.namespace.labels."
)

// Reasons of Cilium verdicts.
const (
	// CiliumAllowed: an ingress rule (Verdict.DecidedBy) allows it.
	CiliumAllowed Reason = "CiliumAllowed"
	// CiliumDenied: an ingressDeny rule (Verdict.DecidedBy) denies it.
	CiliumDenied Reason = "CiliumDenied"
	// CiliumDefaultDeny: rules select the pod for ingress (IsolatedBy) and
	// none allows it.
	CiliumDefaultDeny Reason = "CiliumDefaultDeny"
)

// CiliumSet is compiled Cilium policies, immutable and safe for concurrent
// use.
type CiliumSet struct {
	// rules by the namespace they select in; "" for clusterwide rules.
	// Never changed once compiled: Replace puts its namespace's new list in
	// over, which is read first.
	rules  map[string][]*ciliumRule
	over   map[string][]*ciliumRule
	n      int
	issues []Issue
}

// in is the rules selecting in namespace ns ("" for clusterwide ones).
func (c *CiliumSet) in(ns string) []*ciliumRule {
	if r, ok := c.over[ns]; ok {
		return r
	}
	return c.rules[ns]
}

type ciliumRule struct {
	base      policy // ref, kind, issues
	namespace string // "" for a clusterwide policy
	index     int    // in the policy's spec, specs
	selector  selector
	// isolates, per direction: the rule puts the pods it selects in default
	// deny (it has a section of that direction, allow or deny, and does not
	// turn enableDefaultDeny off for it).
	isolates    [2]bool
	allow, deny [2][]ciliumPeers
}

// ciliumPeerFields are the peer fields of an ingress rule (from...) or an
// egress rule (to...), with the prefix their field names carry.
type ciliumPeerFields struct {
	prefix    string
	endpoints []metav1.LabelSelector
	entities  []string
	cidr      []string
	cidrSet   []CiliumCIDRRule
	nodes     []metav1.LabelSelector
	ports     []CiliumPortRule
}

func ingressFields(r *CiliumIngressRule) ciliumPeerFields {
	return ciliumPeerFields{"from", r.FromEndpoints, r.FromEntities, r.FromCIDR, r.FromCIDRSet, r.FromNodes, r.ToPorts}
}

func egressFields(r *CiliumEgressRule) ciliumPeerFields {
	return ciliumPeerFields{"to", r.ToEndpoints, r.ToEntities, r.ToCIDR, r.ToCIDRSet, r.ToNodes, r.ToPorts}
}

// entitySet is a set of Cilium entities, one bit each.
type entitySet uint16

const (
	entHost entitySet = 1 << iota
	entRemoteNode
	entKubeAPIServer
	entCluster
	entWorld
	entAll
	// entOther stands for every entity the guard gives no source (init,
	// health, unmanaged, ingress, ...): a peer of only those matches none.
	entOther
)

// entityBits is the bit of an entity name.
func entityBits(name string) entitySet {
	switch name {
	case EntityHost:
		return entHost
	case EntityRemoteNode:
		return entRemoteNode
	case EntityKubeAPIServer:
		return entKubeAPIServer
	case EntityCluster:
		return entCluster
	case EntityWorld:
		return entWorld
	case EntityAll:
		return entAll
	}
	return entOther
}

// ciliumPeers is one compiled ingress or ingressDeny rule.
type ciliumPeers struct {
	index     int
	any       bool // no L3 field: every peer
	endpoints []selector
	entities  entitySet
	cidrs     []ciliumCIDR
	ports     []portMatch // none: every port
}

type ciliumCIDR struct {
	prefix netip.Prefix
	except []netip.Prefix
}

// CompileCilium compiles Cilium policies; nil entries are skipped. Rules
// with a nodeSelector (host policies) are left out: they select nodes.
func CompileCilium(policies []*CiliumPolicy) *CiliumSet {
	s := &CiliumSet{rules: map[string][]*ciliumRule{}}
	for _, p := range policies {
		s.add(p)
	}
	return s
}

// add compiles p's rules into s.
func (s *CiliumSet) add(p *CiliumPolicy) {
	if p == nil {
		return
	}
	var rules []CiliumRule
	if p.Spec != nil {
		rules = append(rules, *p.Spec)
	}
	rules = append(rules, p.Specs...)
	for i := range rules {
		if rules[i].NodeSelector != nil {
			continue
		}
		r := compileCiliumRule(p, &rules[i], i)
		if _, ok := s.over[r.namespace]; ok {
			s.over[r.namespace] = append(s.over[r.namespace], r)
		} else {
			s.rules[r.namespace] = append(s.rules[r.namespace], r)
		}
		s.n++
		s.issues = append(s.issues, r.base.all...)
	}
}

// Replace returns c without the policy named as name is (its kind, by
// whether it has a namespace, its namespace and name) and with put (nil:
// none) compiled in: the set after a write, compiling only the written
// policy. c is not changed.
func (c *CiliumSet) Replace(name, put *CiliumPolicy) *CiliumSet {
	out := &CiliumSet{rules: map[string][]*ciliumRule{}, over: map[string][]*ciliumRule{}}
	if c != nil {
		out.rules, out.n, out.issues = c.rules, c.n, c.issues
		maps.Copy(out.over, c.over) // a few namespaces at most
	}
	if name != nil {
		list := out.in(name.Namespace)
		kept := slices.DeleteFunc(slices.Clone(list), func(r *ciliumRule) bool { return r.base.ref.Name == name.Name })
		if len(kept) != len(list) {
			out.n -= len(list) - len(kept)
			out.over[name.Namespace] = kept
			ref, kind := PolicyRef{Namespace: name.Namespace, Name: name.Name}, CiliumClusterwideNetworkPolicyKind
			if ref.Namespace != "" {
				kind = CiliumNetworkPolicyKind
			}
			out.issues = slices.DeleteFunc(slices.Clone(out.issues), func(i Issue) bool { return i.Policy == ref && i.Kind == kind })
		}
	}
	if put != nil {
		// Its own list, so that compiling appends to no shared array.
		out.over[put.Namespace] = slices.Clip(out.in(put.Namespace))
		out.issues = slices.Clip(out.issues)
		out.add(put)
	}
	return out
}

func compileCiliumRule(p *CiliumPolicy, cr *CiliumRule, i int) *ciliumRule {
	r := &ciliumRule{namespace: p.Namespace, index: i}
	r.base.ref = PolicyRef{Namespace: p.Namespace, Name: p.Name}
	r.base.kind = CiliumClusterwideNetworkPolicyKind
	if p.Namespace != "" {
		r.base.kind = CiliumNetworkPolicyKind
	}
	rep := reporter{p: &r.base, both: true}
	f := path{}.at("specs", i)
	r.selector = compileCiliumSelector(cr.EndpointSelector, f.field("endpointSelector"), rep)
	r.isolates[ingress] = len(cr.Ingress) > 0 || len(cr.IngressDeny) > 0
	r.isolates[egress] = len(cr.Egress) > 0 || len(cr.EgressDeny) > 0
	if dd := cr.EnableDefaultDeny; dd != nil {
		if dd.Ingress != nil && !*dd.Ingress {
			r.isolates[ingress] = false
		}
		if dd.Egress != nil && !*dd.Egress {
			r.isolates[egress] = false
		}
	}
	for j := range cr.Ingress {
		r.allow[ingress] = append(r.allow[ingress], compileCiliumPeers(ingressFields(&cr.Ingress[j]), p.Namespace, j, f.at("ingress", j), rep))
	}
	for j := range cr.IngressDeny {
		r.deny[ingress] = append(r.deny[ingress], compileCiliumPeers(ingressFields(&cr.IngressDeny[j]), p.Namespace, j, f.at("ingressDeny", j), rep))
	}
	for j := range cr.Egress {
		r.allow[egress] = append(r.allow[egress], compileCiliumPeers(egressFields(&cr.Egress[j]), p.Namespace, j, f.at("egress", j), rep))
	}
	for j := range cr.EgressDeny {
		r.deny[egress] = append(r.deny[egress], compileCiliumPeers(egressFields(&cr.EgressDeny[j]), p.Namespace, j, f.at("egressDeny", j), rep))
	}
	return r
}

// compileCiliumSelector compiles an endpoint selector with Cilium's label
// sources ("k8s:", "any:") taken off the keys.
func compileCiliumSelector(ls *metav1.LabelSelector, f path, r reporter) selector {
	if ls == nil {
		return selector{}
	}
	c := ls.DeepCopy()
	c.MatchLabels = map[string]string{}
	for k, v := range ls.MatchLabels {
		c.MatchLabels[ciliumKey(k)] = v
	}
	for i := range c.MatchExpressions {
		c.MatchExpressions[i].Key = ciliumKey(c.MatchExpressions[i].Key)
	}
	return compileSelector(c, f, r)
}

// ciliumKey takes the label source off a key: "k8s:app" is "app".
func ciliumKey(k string) string {
	for _, src := range []string{"k8s:", "any:"} {
		if strings.HasPrefix(k, src) {
			return k[len(src):]
		}
	}
	return k
}

// compileCiliumPeers compiles one rule of a policy in namespace ns ("" for
// a clusterwide one): there, an endpoint selector that names no namespace
// selects in ns only, as Cilium reads it.
func compileCiliumPeers(in ciliumPeerFields, ns string, j int, f path, r reporter) ciliumPeers {
	out := ciliumPeers{index: j}
	out.any = len(in.endpoints) == 0 && len(in.entities) == 0 && len(in.cidr) == 0 && len(in.cidrSet) == 0 && len(in.nodes) == 0
	for k := range in.endpoints {
		ef := f.at(in.prefix+"Endpoints", k)
		if e, ok := reservedEntity(&in.endpoints[k]); ok {
			out.entities |= entityBits(e)
			continue
		}
		sel := in.endpoints[k].DeepCopy()
		if ns != "" && !namesNamespace(sel) {
			if sel.MatchLabels == nil {
				sel.MatchLabels = map[string]string{}
			}
			sel.MatchLabels[ciliumNamespaceLabel] = ns
		}
		out.endpoints = append(out.endpoints, compileCiliumSelector(sel, ef, r))
	}
	for _, e := range in.entities {
		out.entities |= entityBits(e)
	}
	for k, c := range in.cidr {
		if p, err := netip.ParsePrefix(c); err == nil {
			out.cidrs = append(out.cidrs, ciliumCIDR{prefix: p.Masked()})
		} else {
			r.add(f.at(in.prefix+"CIDR", k), "not a CIDR; the entry matches nothing")
		}
	}
	for k, c := range in.cidrSet {
		p, err := netip.ParsePrefix(c.CIDR)
		if err != nil {
			r.add(f.at(in.prefix+"CIDRSet", k), "no CIDR (a CIDR group is not resolved); the entry matches nothing")
			continue
		}
		cs := ciliumCIDR{prefix: p.Masked()}
		for _, e := range c.Except {
			if ep, err := netip.ParsePrefix(e); err == nil {
				cs.except = append(cs.except, ep.Masked())
			}
		}
		out.cidrs = append(out.cidrs, cs)
	}
	if len(in.nodes) > 0 {
		r.add(f.field(in.prefix+"Nodes"), "node labels are not known to the guard; the entries match no node")
	}
	for k, pr := range in.ports {
		for l, pp := range pr.Ports {
			m, ok := compileCiliumPort(pp)
			if !ok {
				r.add(f.at("toPorts", k).at("ports", l), "not a port, a name or a protocol Cilium knows; the entry matches nothing")
				continue
			}
			out.ports = append(out.ports, m...)
		}
	}
	if len(in.ports) > 0 && len(out.ports) == 0 {
		out.ports = []portMatch{{protocol: "none"}}
	}
	return out
}

// namesNamespace reports whether an endpoint selector says which
// namespace (io.kubernetes.pod.namespace, with or without its source).
func namesNamespace(ls *metav1.LabelSelector) bool {
	for k := range ls.MatchLabels {
		if ciliumKey(k) == ciliumNamespaceLabel {
			return true
		}
	}
	for _, e := range ls.MatchExpressions {
		if ciliumKey(e.Key) == ciliumNamespaceLabel {
			return true
		}
	}
	return false
}

// reservedEntity reads a fromEndpoints selector of one reserved label
// ("reserved:host": "") as the entity it names.
func reservedEntity(ls *metav1.LabelSelector) (string, bool) {
	if len(ls.MatchLabels) != 1 || len(ls.MatchExpressions) != 0 {
		return "", false
	}
	for k := range ls.MatchLabels {
		if e, ok := strings.CutPrefix(k, "reserved:"); ok {
			return e, true
		}
	}
	return "", false
}

// compileCiliumPort compiles a port entry: a number (with endPort, a
// range) or a name, of one protocol or, for ANY or none, of each.
func compileCiliumPort(pp CiliumPortProtocol) ([]portMatch, bool) {
	protos := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	switch strings.ToUpper(pp.Protocol) {
	case "", "ANY":
	case "TCP", "UDP", "SCTP":
		protos = []corev1.Protocol{corev1.Protocol(strings.ToUpper(pp.Protocol))}
	default:
		return nil, false
	}
	var m portMatch
	switch n, err := strconv.Atoi(pp.Port); {
	case pp.Port == "" || pp.Port == "0":
		m.kind = portAll
	case err == nil && n >= 1 && n <= 65535:
		m.kind, m.lo, m.hi = portRange, int32(n), int32(n)
		if pp.EndPort > 0 {
			if pp.EndPort < m.lo || pp.EndPort > 65535 {
				return nil, false
			}
			m.hi = pp.EndPort
		}
	case err != nil:
		m.kind, m.name = portNamed, pp.Port
	default:
		return nil, false
	}
	out := make([]portMatch, len(protos))
	for i, p := range protos {
		out[i] = m
		out[i].protocol = p
	}
	return out, true
}

// ciliumLabels are a pod's labels as Cilium selectors see them: its own,
// its namespace as io.kubernetes.pod.namespace, and its namespace's labels
// as io.cilium.k8s.namespace.labels.<key>; read in place, not copied.
func ciliumLabels(p *Pod) labelSet { return labelSet{cilium: p} }

// ciliumLabel is one label of the pod as Cilium selectors see it.
func (p *Pod) ciliumLabel(key string) (string, bool) {
	if key == ciliumNamespaceLabel {
		return p.Namespace, true
	}
	if k, ok := strings.CutPrefix(key, ciliumNamespaceLabelPrefix); ok {
		v, ok := p.NamespaceLabels[k]
		return v, ok
	}
	v, ok := p.Labels[key]
	return v, ok
}

// ciliumEntities are the entities the other end of a connection is, seen
// from the policed pod self: a pod-network pod is in the cluster; a node
// address is host on self's node and remote-node elsewhere (both in the
// cluster); anything else is world; the API server is kube-apiserver
// besides.
func ciliumEntities(other, self *Endpoint) entitySet {
	e := entAll
	switch {
	case other.isPodNetwork():
		e |= entCluster
	case other.node() != "" && other.node() == self.node():
		e |= entHost | entCluster
	case other.node() != "":
		e |= entRemoteNode | entCluster
	default:
		e |= entWorld
	}
	if other.KubeAPIServer {
		e |= entKubeAPIServer
	}
	return e
}

// matches reports whether the peers match the other end on the port.
func (c *ciliumPeers) matches(other *Endpoint, ents entitySet, port int32, proto corev1.Protocol, dstPod *Pod) bool {
	if len(c.ports) > 0 {
		ok := false
		for i := range c.ports {
			if c.ports[i].matches(port, proto, dstPod) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if c.any {
		return true
	}
	if c.entities&ents != 0 {
		return true
	}
	if other.isPodNetwork() {
		l := ciliumLabels(other.Pod)
		for i := range c.endpoints {
			if c.endpoints[i].matches(l) {
				return true
			}
		}
		return false
	}
	// CIDRs match addresses outside the cluster only (no pod, no node).
	if a := other.addr(); a.IsValid() && other.node() == "" {
		a = a.Unmap()
		for _, cs := range c.cidrs {
			if cs.prefix.Contains(a) && !containsAny(cs.except, a) {
				return true
			}
		}
	}
	return false
}

func containsAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Ingress decides whether t.Destination may receive t under the Cilium
// policies alone (Compile(nil).WithCilium(c)).
func (c *CiliumSet) Ingress(t Traffic) Verdict { return ciliumOnly(c).evaluate(ingress, &t) }

// Egress decides whether t.Source may send t under the Cilium policies
// alone.
func (c *CiliumSet) Egress(t Traffic) Verdict { return ciliumOnly(c).evaluate(egress, &t) }

func ciliumOnly(c *CiliumSet) *Set { return &Set{cilium: c} }

// Len is the number of rules compiled.
func (c *CiliumSet) Len() int {
	if c == nil {
		return 0
	}
	return c.n
}

// WithCilium returns a Set holding s's NetworkPolicies that decides by
// Cilium's model when c is not nil (even without rules; nil keeps the
// NetworkPolicy model): the Cilium rules and the
// NetworkPolicies form one union (Cilium translates each NetworkPolicy into
// its own rules), in which a matching deny rule denies, else any matching
// allow rule (Cilium's or a NetworkPolicy's) allows, else a pod that a rule
// selects for the direction is denied (default deny), and one none selects
// is allowed. Ingress from the pod's own node is always allowed (Cilium's
// allow-localhost default). ClusterNetworkPolicy tiers are not applied
// under this model: Cilium does not implement them. s is not changed.
func (s *Set) WithCilium(c *CiliumSet) *Set {
	if c == s.cilium {
		return s
	}
	out := *s
	out.cilium = c
	return &out
}

// ciliumEvaluate decides direction d of t by Cilium's model.
func (s *Set) ciliumEvaluate(d direction, t *Traffic, v Verdict, self, other *Endpoint, proto corev1.Protocol, dst *Pod) Verdict {
	v.Reason = NotIsolated
	ents := ciliumEntities(other, self)
	var allowedBy *ClusterRuleRef
	selfLabels := ciliumLabels(self.Pod)
	// The NetworkPolicies selecting the pod, counted first, so that the
	// verdict's list is allocated once.
	pols := s.byNamespace[self.Pod.Namespace]
	var small [16]uint64
	chosen, n := selectPolicies(pols, d, labelSet{m: self.Pod.Labels}, small[:0])
	layers := [2][]*ciliumRule{s.cilium.in(self.Pod.Namespace), s.cilium.in("")}
	if most := n + len(layers[0]) + len(layers[1]); most > 0 {
		v.IsolatedBy = make([]PolicyRef, 0, most)
	}
	// The pod's namespace's rules, then the clusterwide ones (the order
	// decides only which allow a verdict names).
	for _, rules := range layers {
		for _, r := range rules {
			if !r.selector.matches(selfLabels) {
				continue
			}
			if r.isolates[d] {
				v.IsolatedBy = append(v.IsolatedBy, r.base.ref)
			}
			for i := range r.deny[d] {
				if r.deny[d][i].matches(other, ents, t.Port, proto, dst) {
					return ciliumDecided(v, t, r.ref(d, r.deny[d][i].index, "Deny"), false)
				}
			}
			if allowedBy == nil {
				for i := range r.allow[d] {
					if r.allow[d][i].matches(other, ents, t.Port, proto, dst) {
						allowedBy = r.ref(d, r.allow[d][i].index, "Allow")
						break
					}
				}
			}
		}
	}

	// The NetworkPolicies in the same union. Cilium gives their ipBlocks to
	// addresses outside the cluster only: a pod or a node is matched by
	// its identity, never by its address.
	x := party{}
	if other.isPodNetwork() {
		x.pod = other.Pod
	} else if other.node() == "" {
		x.ip = other.addr()
	}
	for i, p := range pols {
		if chosen[i/64]&(1<<(i%64)) == 0 {
			continue
		}
		v.IsolatedBy = append(v.IsolatedBy, p.ref)
		v.Issues = append(v.Issues, p.issues[d]...)
		if allowedBy == nil && v.AllowedBy == nil {
			v.AllowedBy = p.firstMatch(d, &x, t.Port, proto, dst)
		}
	}
	v.Isolated = len(v.IsolatedBy) > 0
	switch {
	case allowedBy != nil:
		return ciliumDecided(v, t, allowedBy, true)
	case v.AllowedBy != nil:
		v.Reason, v.Tier = AllowedByRule, TierCilium
	case v.Isolated && d == ingress && ents&entHost != 0:
		v.Reason = SameNode
	case v.Isolated:
		v.Allowed, v.Reason, v.Tier = false, CiliumDefaultDeny, TierCilium
	}
	v.Explanation = explain(&v, t)
	return v
}

func (r *ciliumRule) ref(d direction, index int, action string) *ClusterRuleRef {
	dir := "ingress"
	if d == egress {
		dir = "egress"
	}
	return &ClusterRuleRef{Kind: r.base.kind, Policy: r.base.ref, Tier: TierCilium, Direction: dir, Index: index,
		Name: "specs[" + strconv.Itoa(r.index) + "]", Action: action}
}

func ciliumDecided(v Verdict, t *Traffic, ref *ClusterRuleRef, allowed bool) Verdict {
	v.Allowed, v.Tier, v.DecidedBy = allowed, TierCilium, ref
	v.Reason = CiliumDenied
	if allowed {
		v.Reason = CiliumAllowed
	}
	v.Explanation = explain(&v, t)
	return v
}

// Issues are the parts of the policies the guard cannot use.
func (c *CiliumSet) Issues() []Issue { return c.issues }
