package netpol

import (
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cilium's policy model, separate from NetworkPolicy's, for clusters whose
// CNI is Cilium: rules select endpoints by labels (pod labels, and
// io.kubernetes.pod.namespace and io.cilium.k8s.namespace.labels.<key>),
// peers are endpoints, entities and CIDRs, and a deny wins over any allow.
// Only ingress is modelled here.

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
	rules  []*ciliumRule
	issues []Issue
}

type ciliumRule struct {
	base      policy // ref, kind, issues
	namespace string // "" for a clusterwide policy
	index     int    // in the policy's spec, specs
	selector  selector
	// isolates: the rule puts the pods it selects in default deny for
	// ingress (it has an ingress or ingressDeny section, and does not turn
	// enableDefaultDeny.ingress off).
	isolates    bool
	allow, deny []ciliumPeers
}

// ciliumPeers is one compiled ingress or ingressDeny rule.
type ciliumPeers struct {
	index     int
	any       bool // no L3 field: every peer
	endpoints []selector
	entities  map[string]bool
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
	s := &CiliumSet{}
	for _, p := range policies {
		if p == nil {
			continue
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
			s.rules = append(s.rules, r)
			s.issues = append(s.issues, r.base.all...)
		}
	}
	return s
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
	r.isolates = len(cr.Ingress) > 0 || len(cr.IngressDeny) > 0
	if cr.EnableDefaultDeny != nil && cr.EnableDefaultDeny.Ingress != nil && !*cr.EnableDefaultDeny.Ingress {
		r.isolates = false
	}
	for j := range cr.Ingress {
		r.allow = append(r.allow, compileCiliumPeers(&cr.Ingress[j], p.Namespace, j, f.at("ingress", j), rep))
	}
	for j := range cr.IngressDeny {
		r.deny = append(r.deny, compileCiliumPeers(&cr.IngressDeny[j], p.Namespace, j, f.at("ingressDeny", j), rep))
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

// compileCiliumPeers compiles one ingress rule of a policy in namespace ns
// ("" for a clusterwide one): there, an endpoint selector that names no
// namespace selects in ns only, as Cilium reads it.
func compileCiliumPeers(in *CiliumIngressRule, ns string, j int, f path, r reporter) ciliumPeers {
	out := ciliumPeers{index: j, entities: map[string]bool{}}
	out.any = len(in.FromEndpoints) == 0 && len(in.FromEntities) == 0 && len(in.FromCIDR) == 0 && len(in.FromCIDRSet) == 0 && len(in.FromNodes) == 0
	for k := range in.FromEndpoints {
		ef := f.at("fromEndpoints", k)
		if e, ok := reservedEntity(&in.FromEndpoints[k]); ok {
			out.entities[e] = true
			continue
		}
		sel := in.FromEndpoints[k].DeepCopy()
		if ns != "" && !namesNamespace(sel) {
			if sel.MatchLabels == nil {
				sel.MatchLabels = map[string]string{}
			}
			sel.MatchLabels[ciliumNamespaceLabel] = ns
		}
		out.endpoints = append(out.endpoints, compileCiliumSelector(sel, ef, r))
	}
	for _, e := range in.FromEntities {
		out.entities[e] = true
	}
	for k, c := range in.FromCIDR {
		if p, err := netip.ParsePrefix(c); err == nil {
			out.cidrs = append(out.cidrs, ciliumCIDR{prefix: p.Masked()})
		} else {
			r.add(f.at("fromCIDR", k), "not a CIDR; the entry matches nothing")
		}
	}
	for k, c := range in.FromCIDRSet {
		p, err := netip.ParsePrefix(c.CIDR)
		if err != nil {
			r.add(f.at("fromCIDRSet", k), "no CIDR (a CIDR group is not resolved); the entry matches nothing")
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
	if len(in.FromNodes) > 0 {
		r.add(f.field("fromNodes"), "node labels are not known to the guard; the entries match no node")
	}
	for k, pr := range in.ToPorts {
		for l, pp := range pr.Ports {
			m, ok := compileCiliumPort(pp)
			if !ok {
				r.add(f.at("toPorts", k).at("ports", l), "not a port, a name or a protocol Cilium knows; the entry matches nothing")
				continue
			}
			out.ports = append(out.ports, m...)
		}
	}
	if len(in.ToPorts) > 0 && len(out.ports) == 0 {
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

// ciliumLabels are a pod's labels as Cilium selectors see them.
func ciliumLabels(p *Pod) labelSet {
	m := make(map[string]string, len(p.Labels)+len(p.NamespaceLabels)+1)
	for k, v := range p.Labels {
		m[k] = v
	}
	for k, v := range p.NamespaceLabels {
		m[ciliumNamespaceLabelPrefix+k] = v
	}
	m[ciliumNamespaceLabel] = p.Namespace
	return labelSet{m: m}
}

// selects reports whether the rule selects the pod.
func (r *ciliumRule) selects(p *Pod) bool {
	if r.namespace != "" && p.Namespace != r.namespace {
		return false
	}
	return r.selector.matches(ciliumLabels(p))
}

// entities are the entities the source is, seen from the destination pod.
func ciliumEntities(src, dst *Endpoint) map[string]bool {
	e := map[string]bool{EntityAll: true}
	switch {
	case src.isPodNetwork():
		e[EntityCluster] = true
	case src.node() != "" && src.node() == dst.node():
		e[EntityHost], e[EntityCluster] = true, true
	case src.node() != "":
		e[EntityRemoteNode], e[EntityCluster] = true, true
	default:
		e[EntityWorld] = true
	}
	if src.KubeAPIServer {
		e[EntityKubeAPIServer] = true
	}
	return e
}

// matches reports whether the peers match the source on the port.
func (c *ciliumPeers) matches(src, dst *Endpoint, ents map[string]bool, port int32, proto corev1.Protocol, dstPod *Pod) bool {
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
	for e := range c.entities {
		if ents[e] {
			return true
		}
	}
	if src.isPodNetwork() {
		l := ciliumLabels(src.Pod)
		for i := range c.endpoints {
			if c.endpoints[i].matches(l) {
				return true
			}
		}
		return false
	}
	// CIDRs match addresses outside the cluster only (no pod, no node).
	if a := src.addr(); a.IsValid() && src.node() == "" {
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
// policies: a matching ingressDeny rule denies, else a matching ingress
// rule allows, else a pod that a rule selects for ingress is denied (default
// deny), and one no rule selects is allowed. Ingress from the pod's own
// host is always allowed (Cilium's default, allow-localhost).
func (c *CiliumSet) Ingress(t Traffic) Verdict {
	v := Verdict{Direction: "Ingress", Allowed: true, Reason: NotPoliced}
	dst, src := &t.Destination, &t.Source
	if !dst.isPodNetwork() {
		v.Explanation = explain(&v, &t)
		return v
	}
	v.Reason = NotIsolated
	proto := protocolOr(t.Protocol)
	ents := ciliumEntities(src, dst)
	var allowedBy *ClusterRuleRef
	for _, r := range c.rules {
		if !r.selects(dst.Pod) {
			continue
		}
		if r.isolates {
			v.Isolated = true
			v.IsolatedBy = append(v.IsolatedBy, r.base.ref)
		}
		for i := range r.deny {
			if r.deny[i].matches(src, dst, ents, t.Port, proto, dst.Pod) {
				return ciliumDecided(v, &t, r.ref(r.deny[i].index, "Deny"), false)
			}
		}
		if allowedBy == nil {
			for i := range r.allow {
				if r.allow[i].matches(src, dst, ents, t.Port, proto, dst.Pod) {
					allowedBy = r.ref(r.allow[i].index, "Allow")
					break
				}
			}
		}
	}
	switch {
	case allowedBy != nil:
		return ciliumDecided(v, &t, allowedBy, true)
	case v.Isolated && ents[EntityHost]:
		v.Reason = SameNode
	case v.Isolated:
		v.Allowed, v.Reason, v.Tier = false, CiliumDefaultDeny, TierCilium
	}
	v.Explanation = explain(&v, &t)
	return v
}

func (r *ciliumRule) ref(index int, action string) *ClusterRuleRef {
	return &ClusterRuleRef{Kind: r.base.kind, Policy: r.base.ref, Tier: TierCilium, Direction: "ingress", Index: index,
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
