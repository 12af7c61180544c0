package netpol

import (
	"cmp"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Tier is where a cluster-scoped policy sits around NetworkPolicies: the
// Admin tier is evaluated before them, the Baseline tier after, and only for
// pods no NetworkPolicy isolates.
type Tier string

// Tiers of ClusterNetworkPolicy; TierNetworkPolicy names the namespaced
// layer between them in verdicts.
const (
	TierAdmin         Tier = "Admin"
	TierNetworkPolicy Tier = "NetworkPolicy"
	TierBaseline      Tier = "Baseline"
)

// ClusterNetworkPolicyKind is the Kind in the PolicyRef of a
// ClusterNetworkPolicy.
const ClusterNetworkPolicyKind = "ClusterNetworkPolicy"

// clusterAction is a compiled ClusterNetworkPolicy rule action.
type clusterAction uint8

const (
	actionAccept clusterAction = iota
	actionDeny
	actionPass
)

func (a clusterAction) String() string {
	return [...]string{"Accept", "Deny", "Pass"}[a]
}

// clusterPeerKind says what a compiled ClusterNetworkPolicy peer matches.
type clusterPeerKind uint8

const (
	cpeerNone       clusterPeerKind = iota // matches nothing
	cpeerAll                               // matches everything (a Deny or Pass peer that sets no field: fail closed)
	cpeerNamespaces                        // pod-network pods in selected namespaces
	cpeerPods                              // selected pod-network pods in selected namespaces
	cpeerNetworks                          // addresses in CIDRs
	cpeerAllNodes                          // any node address (an empty nodes selector)
)

// clusterPeer is a compiled ClusterNetworkPolicy peer.
type clusterPeer struct {
	kind  clusterPeerKind
	ns    selector
	pods  selector
	cidrs []netip.Prefix
}

// clusterRule is a compiled ClusterNetworkPolicy rule.
type clusterRule struct {
	index  int
	name   string
	action clusterAction
	peers  []clusterPeer
	ports  []portMatch // none: every port and protocol
}

// clusterPolicy is a compiled ClusterNetworkPolicy.
type clusterPolicy struct {
	base     policy // ref and issues
	tier     Tier
	priority int32
	// subject: pods in namespaces ns; with pods set, only those pods.
	subjectNS   selector
	subjectPods *selector
	rules       [2][]clusterRule
}

// ClusterRuleRef names one rule of a cluster-scoped policy.
type ClusterRuleRef struct {
	Kind      string    `json:"kind"`
	Policy    PolicyRef `json:"policy"`
	Tier      Tier      `json:"tier"`
	Priority  int32     `json:"priority"`
	Direction string    `json:"direction"`
	Index     int       `json:"index"`
	Name      string    `json:"name,omitempty"`
	Action    string    `json:"action"`
}

// String renders `ClusterNetworkPolicy deny-all (Baseline tier, priority 10)
// ingress rule 0 "deny-all" (Deny)`; a Cilium rule, which has no priority,
// `CiliumNetworkPolicy keda/allow ingress rule 0 "specs[0]" (Allow)`.
func (r ClusterRuleRef) String() string {
	name := r.Policy.Name
	if r.Policy.Namespace != "" {
		name = r.Policy.Namespace + "/" + name
	}
	s := r.Kind + " " + name
	if r.Tier != TierCilium {
		s += " (" + string(r.Tier) + " tier, priority " + strconv.Itoa(int(r.Priority)) + ")"
	}
	s += " " + r.Direction + " rule " + strconv.Itoa(r.Index)
	if r.Name != "" {
		s += " " + strconv.Quote(r.Name)
	}
	return s + " (" + r.Action + ")"
}

// ClusterNetworkPolicyFromV1Alpha2 converts a v1alpha2 ClusterNetworkPolicy
// (the same schema as v1beta1) to v1beta1.
func ClusterNetworkPolicyFromV1Alpha2(p *cnpv1alpha2.ClusterNetworkPolicy) (*cnpv1beta1.ClusterNetworkPolicy, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	out := &cnpv1beta1.ClusterNetworkPolicy{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, err
	}
	out.APIVersion = cnpv1beta1.GroupVersion.String()
	return out, nil
}

// compileCluster compiles a ClusterNetworkPolicy; invalid content is
// reported as Issues and decided as the ClusterNetworkPolicy API says:
// a peer that sets no field fails closed (an Accept matches nothing, a
// Deny or Pass everything), an unknown tier or action leaves the policy or
// rule out.
func compileCluster(p *cnpv1beta1.ClusterNetworkPolicy) *clusterPolicy {
	cp := &clusterPolicy{priority: p.Spec.Priority}
	cp.base.kind, cp.base.ref = ClusterNetworkPolicyKind, PolicyRef{Name: p.Name}
	switch p.Kind {
	case AdminNetworkPolicyKind, BaselineAdminNetworkPolicyKind: // mapped from v1alpha1
		cp.base.kind = p.Kind
	}
	r := reporter{p: &cp.base, both: true}
	spec := path{}.field("spec")
	switch p.Spec.Tier {
	case cnpv1beta1.AdminTier:
		cp.tier = TierAdmin
	case cnpv1beta1.BaselineTier:
		cp.tier = TierBaseline
	default:
		r.add(spec.field("tier"), "unknown tier "+strconv.Quote(string(p.Spec.Tier))+"; the policy is left out")
		cp.tier = ""
	}
	if p.Spec.Priority < 0 || p.Spec.Priority > 1000 {
		r.add(spec.field("priority"), "must be from 0 to 1000")
	}
	subj := spec.field("subject")
	switch {
	case p.Spec.Subject.Namespaces != nil && p.Spec.Subject.Pods == nil:
		cp.subjectNS = compileSelector(p.Spec.Subject.Namespaces, subj.field("namespaces"), r)
	case p.Spec.Subject.Pods != nil && p.Spec.Subject.Namespaces == nil:
		cp.subjectNS = compileSelector(&p.Spec.Subject.Pods.NamespaceSelector, subj.field("pods").field("namespaceSelector"), r)
		pods := compileSelector(&p.Spec.Subject.Pods.PodSelector, subj.field("pods").field("podSelector"), r)
		cp.subjectPods = &pods
	default:
		r.add(subj, "exactly one of namespaces and pods must be set; the policy selects no pod")
		cp.subjectNS.invalid = true
	}
	for i, rule := range p.Spec.Ingress {
		f := spec.at("ingress", i)
		peers := make([]clusterPeer, 0, len(rule.From))
		action, ok := compileAction(rule.Action, f, r)
		if !ok {
			continue
		}
		for j, peer := range rule.From {
			peers = append(peers, compileClusterPeer(peer.Namespaces, peer.Pods, nil, nil, action, f.at("from", j), r))
		}
		cp.rules[ingress] = append(cp.rules[ingress], clusterRule{index: i, name: rule.Name, action: action, peers: peers,
			ports: compileProtocols(rule.Protocols, f.field("protocols"), r)})
	}
	for i, rule := range p.Spec.Egress {
		f := spec.at("egress", i)
		action, ok := compileAction(rule.Action, f, r)
		if !ok {
			continue
		}
		peers := make([]clusterPeer, 0, len(rule.To))
		for j, peer := range rule.To {
			pf := f.at("to", j)
			switch {
			case len(peer.DomainNames) > 0:
				// Names are resolved by the dataplane: the guard cannot tell
				// which addresses they cover, and matches none.
				peers = append(peers, clusterPeer{kind: cpeerNone})
			default:
				peers = append(peers, compileClusterPeer(peer.Namespaces, peer.Pods, peer.Nodes, peer.Networks, action, pf, r))
			}
		}
		cp.rules[egress] = append(cp.rules[egress], clusterRule{index: i, name: rule.Name, action: action, peers: peers,
			ports: compileProtocols(rule.Protocols, f.field("protocols"), r)})
	}
	return cp
}

func compileAction(a cnpv1beta1.ClusterNetworkPolicyRuleAction, f path, r reporter) (clusterAction, bool) {
	switch a {
	case cnpv1beta1.ClusterNetworkPolicyRuleActionAccept:
		return actionAccept, true
	case cnpv1beta1.ClusterNetworkPolicyRuleActionDeny:
		return actionDeny, true
	case cnpv1beta1.ClusterNetworkPolicyRuleActionPass:
		return actionPass, true
	}
	r.add(f.field("action"), "unknown action "+strconv.Quote(string(a))+"; the rule is left out")
	return 0, false
}

// compileClusterPeer compiles a peer that sets one of its fields.
func compileClusterPeer(ns *metav1.LabelSelector, pods *cnpv1beta1.NamespacedPod, nodes *metav1.LabelSelector, nets []cnpv1beta1.CIDR,
	action clusterAction, f path, r reporter) clusterPeer {
	set := 0
	for _, isSet := range []bool{ns != nil, pods != nil, nodes != nil, len(nets) > 0} {
		if isSet {
			set++
		}
	}
	if set != 1 {
		if action == actionAccept {
			r.add(f, "exactly one peer field must be set; an Accept fails closed and matches nothing")
			return clusterPeer{kind: cpeerNone}
		}
		r.add(f, "exactly one peer field must be set; a Deny or Pass fails closed and matches everything")
		return clusterPeer{kind: cpeerAll}
	}
	switch {
	case ns != nil:
		return clusterPeer{kind: cpeerNamespaces, ns: compileSelector(ns, f.field("namespaces"), r)}
	case pods != nil:
		return clusterPeer{kind: cpeerPods,
			ns:   compileSelector(&pods.NamespaceSelector, f.field("pods").field("namespaceSelector"), r),
			pods: compileSelector(&pods.PodSelector, f.field("pods").field("podSelector"), r)}
	case nodes != nil:
		if len(nodes.MatchLabels) == 0 && len(nodes.MatchExpressions) == 0 {
			return clusterPeer{kind: cpeerAllNodes}
		}
		// Node labels are not part of an Endpoint: the guard cannot tell
		// which nodes a non-empty selector picks.
		r.add(f.field("nodes"), "node labels are not known to the guard; the peer matches no node")
		return clusterPeer{kind: cpeerNone}
	}
	out := clusterPeer{kind: cpeerNetworks}
	for k, c := range nets {
		p, err := netip.ParsePrefix(string(c))
		if err != nil {
			r.add(f.at("networks", k), "not a CIDR; the entry matches nothing")
			continue
		}
		out.cidrs = append(out.cidrs, p.Masked())
	}
	return out
}

// compileProtocols compiles a rule's protocols; none matches every port.
func compileProtocols(protos []cnpv1beta1.ClusterNetworkPolicyProtocol, f path, r reporter) []portMatch {
	var out []portMatch
	for i, p := range protos {
		pf := f.at("protocols", i)
		add := func(proto corev1.Protocol, port *cnpv1beta1.Port) {
			m := portMatch{protocol: proto, kind: portAll}
			if port != nil {
				switch {
				case port.Range != nil:
					m.kind, m.lo, m.hi = portRange, port.Range.Start, port.Range.End
				default:
					m.kind, m.lo, m.hi = portRange, port.Number, port.Number
				}
				if m.lo < 1 || m.hi > 65535 || m.lo > m.hi {
					r.add(pf, "port or range outside 1-65535; the entry matches nothing")
					return
				}
			}
			out = append(out, m)
		}
		switch {
		case p.TCP != nil:
			add(corev1.ProtocolTCP, p.TCP.DestinationPort)
		case p.UDP != nil:
			add(corev1.ProtocolUDP, p.UDP.DestinationPort)
		case p.SCTP != nil:
			add(corev1.ProtocolSCTP, p.SCTP.DestinationPort)
		case p.DestinationNamedPort != "":
			for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
				out = append(out, portMatch{protocol: proto, kind: portNamed, name: p.DestinationNamedPort})
			}
		default:
			r.add(pf, "no protocol set; the entry matches nothing")
		}
	}
	if len(protos) > 0 && len(out) == 0 {
		// Every entry invalid: the rule matches no port (not every port).
		out = append(out, portMatch{protocol: "none"})
	}
	return out
}

// selects reports whether the policy's subject selects pod.
func (cp *clusterPolicy) selects(pod *Pod) bool {
	if !cp.subjectNS.matches(labelSet{m: pod.NamespaceLabels, ns: pod.Namespace}) {
		return false
	}
	return cp.subjectPods == nil || cp.subjectPods.matches(labelSet{m: pod.Labels})
}

// matches reports whether the peer matches the other end of the traffic.
func (p *clusterPeer) matches(other *Endpoint) bool {
	switch p.kind {
	case cpeerAll:
		return true
	case cpeerNamespaces, cpeerPods:
		if !other.isPodNetwork() {
			return false // host-networked pods and non-pod addresses are no pods here
		}
		if !p.ns.matches(labelSet{m: other.Pod.NamespaceLabels, ns: other.Pod.Namespace}) {
			return false
		}
		return p.kind == cpeerNamespaces || p.pods.matches(labelSet{m: other.Pod.Labels})
	case cpeerNetworks:
		a := other.addr()
		return a.IsValid() && slices.ContainsFunc(p.cidrs, func(c netip.Prefix) bool { return c.Contains(a.Unmap()) })
	case cpeerAllNodes:
		return !other.isPodNetwork() && other.node() != ""
	}
	return false
}

// match returns the first rule of direction d that matches the traffic.
func (cp *clusterPolicy) match(d direction, other *Endpoint, port int32, proto corev1.Protocol, dst *Pod) *clusterRule {
	for i := range cp.rules[d] {
		rule := &cp.rules[d][i]
		if len(rule.ports) > 0 && !slices.ContainsFunc(rule.ports, func(m portMatch) bool { return m.matches(port, proto, dst) }) {
			continue
		}
		for j := range rule.peers {
			if rule.peers[j].matches(other) {
				return rule
			}
		}
	}
	return nil
}

// ref names rule of the policy for verdicts.
func (cp *clusterPolicy) ruleRef(d direction, rule *clusterRule) *ClusterRuleRef {
	dir := "ingress"
	if d == egress {
		dir = "egress"
	}
	return &ClusterRuleRef{Kind: cp.base.kind, Policy: cp.base.ref, Tier: cp.tier, Priority: cp.priority, Direction: dir,
		Index: rule.index, Name: rule.name, Action: rule.action.String()}
}

// Tiers are compiled ClusterNetworkPolicies, immutable and safe for
// concurrent use: build them once with CompileTiers and add them to any
// number of Sets with WithTiers.
type Tiers struct {
	admin, baseline []*clusterPolicy
	issues          []Issue
	n               int
}

// CompileTiers compiles ClusterNetworkPolicies (nil entries skipped) into
// their tiers, each by priority. Policies of equal priority are taken in
// name order (the API leaves their order to the implementation).
func CompileTiers(policies []*cnpv1beta1.ClusterNetworkPolicy) *Tiers {
	t := &Tiers{}
	for _, p := range policies {
		if p == nil {
			continue
		}
		cp := compileCluster(p)
		switch cp.tier {
		case TierAdmin:
			t.admin = append(t.admin, cp)
		case TierBaseline:
			t.baseline = append(t.baseline, cp)
		}
		t.issues = append(t.issues, cp.base.all...)
		t.n++
	}
	byPriority := func(a, b *clusterPolicy) int {
		return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.base.ref.Name, b.base.ref.Name))
	}
	slices.SortStableFunc(t.admin, byPriority)
	slices.SortStableFunc(t.baseline, byPriority)
	return t
}

// Len is the number of policies compiled.
func (t *Tiers) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// WithTiers returns a Set holding s's NetworkPolicies and the tiers t
// (none when t is nil), which its evaluations then apply: the Admin tier,
// then the NetworkPolicies, then, for pods no NetworkPolicy isolates, the
// Baseline tier. s is not changed.
func (s *Set) WithTiers(t *Tiers) *Set {
	if t == nil && len(s.admin) == 0 && len(s.baseline) == 0 && len(s.clusterIssues) == 0 {
		return s // nothing to add or take away: every review without tiers
	}
	out := &Set{byNamespace: s.byNamespace, cilium: s.cilium}
	if t != nil {
		out.admin, out.baseline, out.clusterIssues = t.admin, t.baseline, t.issues
	}
	return out
}

// WithCluster is s.WithTiers(CompileTiers(policies)).
func (s *Set) WithCluster(policies []*cnpv1beta1.ClusterNetworkPolicy) *Set {
	return s.WithTiers(CompileTiers(policies))
}

// tier decides direction d of the traffic by the first matching rule of
// the tier's policies that select the policed pod: decided is false when
// none matches or a Pass does.
func tierVerdict(pols []*clusterPolicy, d direction, self, other *Endpoint, port int32, proto corev1.Protocol, dst *Pod) (ref *ClusterRuleRef, accept, decided bool, issues []Issue) {
	for _, cp := range pols {
		if !cp.selects(self.Pod) {
			continue
		}
		rule := cp.match(d, other, port, proto, dst)
		if rule == nil {
			continue
		}
		issues = cp.base.issues[d]
		if rule.action == actionPass {
			return cp.ruleRef(d, rule), false, false, issues
		}
		return cp.ruleRef(d, rule), rule.action == actionAccept, true, issues
	}
	return nil, false, false, nil
}
