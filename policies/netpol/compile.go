package netpol

import (
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// direction indexes per-direction data: ingress or egress.
type direction uint8

const (
	ingress direction = iota
	egress
)

func (d direction) policyType() networkingv1.PolicyType {
	if d == egress {
		return networkingv1.PolicyTypeEgress
	}
	return networkingv1.PolicyTypeIngress
}

// policy is a compiled NetworkPolicy.
type policy struct {
	kind     string // empty for a NetworkPolicy; see Issue.Kind
	ref      PolicyRef
	selector selector
	affects  [2]bool    // policyTypes, defaulted, by direction
	rules    [2][]rule  // spec.ingress, spec.egress
	issues   [2][]Issue // problems that matter to each direction
	all      []Issue    // every problem, in field order
}

// Set is a compiled, immutable set of NetworkPolicies, safe for concurrent
// use. Build it with Compile, derive changed sets with With, and reuse it for
// many evaluations.
type Set struct {
	// byNamespace holds each namespace's policies in input order. Slices are
	// never modified after construction: With copies the ones it changes.
	byNamespace map[string][]*policy
	// admin and baseline are the ClusterNetworkPolicies of each tier, by
	// priority (WithCluster); clusterIssues their invalid parts.
	admin, baseline []*clusterPolicy
	clusterIssues   []Issue
	// cilium, when set, makes the Set decide by Cilium's model
	// (WithCilium).
	cilium *CiliumSet
}

// Compile compiles policies for evaluation. Nil entries are skipped; a policy
// with an empty namespace is taken to be in "default". The Set keeps no
// reference to the policies, so they may change afterwards. Compile never
// fails: invalid content is decided as the package doc says and listed by
// Set.Issues.
func Compile(policies []*networkingv1.NetworkPolicy) *Set {
	s := &Set{byNamespace: map[string][]*policy{}}
	for _, np := range policies {
		if np == nil {
			continue
		}
		p := compilePolicy(np)
		s.byNamespace[p.ref.Namespace] = append(s.byNamespace[p.ref.Namespace], p)
	}
	return s
}

// With returns a new Set: s with each policy of upsert replacing the one of
// the same namespace/name (in place) or added after the others, and the
// policies named in remove deleted. s is unchanged and shares everything else,
// so the cost is compiling upsert plus copying the touched namespaces' lists:
// this is how to evaluate a CREATE, UPDATE or DELETE without recompiling.
func (s *Set) With(upsert []*networkingv1.NetworkPolicy, remove ...PolicyRef) *Set {
	out := &Set{byNamespace: maps.Clone(s.byNamespace), admin: s.admin, baseline: s.baseline, clusterIssues: s.clusterIssues, cilium: s.cilium}
	copied := map[string]bool{}
	own := func(ns string) []*policy {
		if !copied[ns] {
			copied[ns] = true
			out.byNamespace[ns] = slices.Clone(out.byNamespace[ns])
		}
		return out.byNamespace[ns]
	}
	for _, ref := range remove {
		ref = ref.defaulted()
		out.byNamespace[ref.Namespace] = slices.DeleteFunc(own(ref.Namespace),
			func(p *policy) bool { return p.ref == ref })
	}
	for _, np := range upsert {
		if np == nil {
			continue
		}
		p := compilePolicy(np)
		list := own(p.ref.Namespace)
		if i := slices.IndexFunc(list, func(q *policy) bool { return q.ref == p.ref }); i >= 0 {
			list[i] = p
		} else {
			out.byNamespace[p.ref.Namespace] = append(list, p)
		}
	}
	for ns, list := range out.byNamespace {
		if len(list) == 0 {
			delete(out.byNamespace, ns)
		}
	}
	return out
}

// Evaluate is Compile(policies).Reach(t), for one-off checks.
func Evaluate(policies []*networkingv1.NetworkPolicy, t Traffic) Path {
	return Compile(policies).Reach(t)
}

// Len is the number of policies in the set.
func (s *Set) Len() int {
	n := 0
	for _, list := range s.byNamespace {
		n += len(list)
	}
	return n
}

// Issues lists the invalid content of every policy in the set, by namespace
// name, then in policy order.
func (s *Set) Issues() []Issue {
	var out []Issue
	for _, ns := range slices.Sorted(maps.Keys(s.byNamespace)) {
		for _, p := range s.byNamespace[ns] {
			out = append(out, p.all...)
		}
	}
	out = append(out, s.clusterIssues...)
	if s.cilium != nil {
		out = append(out, s.cilium.issues...)
	}
	return out
}

// defaulted puts an empty namespace in "default", as Compile does.
func (r PolicyRef) defaulted() PolicyRef {
	if r.Namespace == "" {
		r.Namespace = corev1.NamespaceDefault
	}
	return r
}

// compilePolicy compiles one policy, collecting its issues.
func compilePolicy(np *networkingv1.NetworkPolicy) *policy {
	p := &policy{ref: PolicyRef{Namespace: np.Namespace, Name: np.Name}.defaulted()}
	spec := path{}.field("spec")
	both := reporter{p: p, both: true}
	sf := spec.field("podSelector")
	p.selector = compileSelector(&np.Spec.PodSelector, sf, both)
	p.affects = policyTypes(&np.Spec, spec, both)
	if n := len(np.Spec.Ingress); n > 0 {
		p.rules[ingress] = make([]rule, 0, n)
	}
	for i := range np.Spec.Ingress {
		r := &np.Spec.Ingress[i]
		f := spec.at("ingress", i)
		p.rules[ingress] = append(p.rules[ingress], compileRule(r.Ports, r.From, p.ref.Namespace, f, "from", reporter{p: p, d: ingress}))
	}
	if n := len(np.Spec.Egress); n > 0 {
		p.rules[egress] = make([]rule, 0, n)
	}
	for i := range np.Spec.Egress {
		r := &np.Spec.Egress[i]
		f := spec.at("egress", i)
		p.rules[egress] = append(p.rules[egress], compileRule(r.Ports, r.To, p.ref.Namespace, f, "to", reporter{p: p, d: egress}))
	}
	return p
}

// policyTypes returns which directions the policy affects, defaulting an
// empty list as the API server does: Ingress, plus Egress when spec.egress is
// non-empty. Unknown values are reported and ignored.
func policyTypes(spec *networkingv1.NetworkPolicySpec, f path, r reporter) [2]bool {
	if len(spec.PolicyTypes) == 0 {
		return [2]bool{true, len(spec.Egress) > 0}
	}
	var out [2]bool
	for i, t := range spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			out[ingress] = true
		case networkingv1.PolicyTypeEgress:
			out[egress] = true
		default:
			tf := f.at("policyTypes", i)
			r.add(tf, "unknown policy type "+strconv.Quote(string(t))+"; ignored")
		}
	}
	return out
}

// Isolates reports whether np isolates pod in direction dir (Ingress or
// Egress): the policy affects that direction and its podSelector selects
// the pod, with the defaulting and selector semantics Compile uses (an
// invalid selector selects nothing). It compiles only the selector, not
// the rules.
func Isolates(np *networkingv1.NetworkPolicy, dir networkingv1.PolicyType, pod *Pod) bool {
	ns := PolicyRef{Namespace: np.Namespace}.defaulted().Namespace
	if pod == nil || pod.Namespace != ns {
		return false
	}
	p := &policy{}
	r := reporter{p: p, both: true}
	d := ingress
	if dir == networkingv1.PolicyTypeEgress {
		d = egress
	}
	if !policyTypes(&np.Spec, path{}, r)[d] {
		return false
	}
	sel := compileSelector(&np.Spec.PodSelector, path{}, r)
	return sel.matches(labelSet{m: pod.Labels})
}
