package policies

import (
	"context"
	"fmt"
	"slices"
	"strings"

	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// clusterChange is what a write of a cluster-scoped policy changes: the
// cluster's tiers before and after it.
type clusterChange struct {
	before, after *netpol.Tiers
	reviewed      netpol.PolicyRef
}

type clusterChangeKey struct{}

// clusterChangeFor compiles the tiers before and after the reviewed write
// of a ClusterNetworkPolicy (or an AdminNetworkPolicy or
// BaselineAdminNetworkPolicy); nil when there is nothing to judge. Under
// JudgeState "before" is the state without the reviewed policy, so that
// what it blocks on its own is found.
func clusterChangeFor(ctx context.Context, r *Review, v cluster.View) *clusterChange {
	return memoize(r, clusterChangeKey{}, func() *clusterChange {
		obj, oldObj := r.Objects()
		p, old := asClusterNetworkPolicy(obj), asClusterNetworkPolicy(oldObj)
		ref := p
		if ref == nil {
			ref = old
		}
		if ref == nil {
			return nil
		}
		kind := kindOf(ref)
		current, err := v.ClusterNetworkPolicies(ctx)
		if err != nil {
			return nil
		}
		others := slices.DeleteFunc(slices.Clone(current), func(c *cnpv1beta1.ClusterNetworkPolicy) bool {
			return kindOf(c) == kind && c.Name == ref.Name
		})
		before := current
		if r.Operation == Create || r.Judge == JudgeState {
			before = others // a created policy is not in force yet
		}
		after := others
		if p != nil {
			after = append(slices.Clone(others), p)
		}
		return &clusterChange{before: netpol.CompileTiers(before), after: netpol.CompileTiers(after),
			reviewed: netpol.PolicyRef{Name: ref.Name}}
	})
}

// kindOf is a converted policy's kind: ClusterNetworkPolicy unless it came
// from a v1alpha1 kind.
func kindOf(p *cnpv1beta1.ClusterNetworkPolicy) string {
	if p.Kind == "" {
		return netpol.ClusterNetworkPolicyKind
	}
	return p.Kind
}

// clusterPolicyCheck judges a write of a cluster-scoped policy for the
// protected Services of rule name, namespace by namespace: each
// namespace's NetworkPolicies with the tiers before and after the write.
func clusterPolicyCheck(ctx context.Context, r *Review, v cluster.View, name string) []Result {
	var here []protected
	for _, p := range protectedServices(ctx, r, v) {
		if p.rule == name {
			here = append(here, p)
		}
	}
	if len(here) == 0 {
		return nil
	}
	ch := clusterChangeFor(ctx, r, v)
	if ch == nil {
		return nil
	}
	srcs := controlPlaneSources(ctx, r, v)
	if len(srcs.list) == 0 {
		return nil // nothing to verify against; NetworkPolicy reviews say so
	}
	var out []Result
	for _, p := range here {
		if ctx.Err() != nil {
			return out
		}
		j := clusterJudgement(ctx, r, v, ch, p.namespace)
		if j == nil {
			continue
		}
		if b, ok := j.blocked(ingressOf, srcs.list, targetsOf(ctx, v, p)); ok {
			out = append(out, b.result(p.what, srcs.model))
		}
	}
	return out
}

// clusterJudgement is namespace ns's NetworkPolicies with the tiers before
// and after a cluster-scoped policy's write.
func clusterJudgement(ctx context.Context, r *Review, v cluster.View, ch *clusterChange, ns string) *judgement {
	current, err := v.NetworkPolicies(ctx, ns)
	if err != nil {
		return nil
	}
	set := r.compiled.compile(ns, current)
	return &judgement{namespace: ns, before: set.WithTiers(ch.before), after: set.WithTiers(ch.after), reviewed: ch.reviewed}
}

// clusterResult is the finding for a path a cluster-scoped policy's rule
// decides: the rule, and how to let the source in before it. The Accept
// rule to add goes into the detail (a denial shows it; it is too long for a
// warning line).
func clusterResult(b blocked, what string, model sourceModel) Result {
	rule := b.verdict.DecidedBy
	pod := b.tgt.pod.Namespace + "/" + b.tgt.pod.Name
	detail := b.verdict.Explanation + "; control-plane sources: " + string(model)
	fix := fmt.Sprintf("give the peers of %s %s rule %d a field (namespaces or pods): a peer without one fails closed and denies everything",
		rule.Kind, rule.Policy.Name, rule.Index)
	if peer, ok := clusterPeer(b.src.peer); ok {
		fix = fmt.Sprintf("accept it on %d/%s ahead of that rule: an earlier rule of %s, or a %s-tier policy of priority below %d (the rule is in the detail)",
			b.tgt.port, b.tgt.prot, rule.Policy.Name, rule.Tier, rule.Priority)
		detail += fmt.Sprintf("; the rule to add: ingress: [{action: Accept, from: [%s], protocols: [{%s: {destinationPort: {number: %d}}}]}]",
			peer, strings.ToLower(string(b.tgt.prot)), b.tgt.port)
	}
	return Result{
		Message: fmt.Sprintf("%s: %s cannot reach pod %s on %d/%s (denied by %s-tier %s)",
			what, b.src.what, pod, b.tgt.port, b.tgt.prot, rule.Tier, rule.Policy.Name),
		Fix:    fix,
		Detail: detail,
	}
}

// clusterPeer turns a source's NetworkPolicy peer into a ClusterNetworkPolicy
// ingress peer: a pod source's selectors become a pods peer; an address has
// none (ClusterNetworkPolicy ingress peers are pods only).
func clusterPeer(npPeer string) (string, bool) {
	if strings.HasPrefix(npPeer, "{namespaceSelector:") {
		return "{pods: " + npPeer + "}", true
	}
	return "", false
}
