package policies

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// clusterChange is what a write of a cluster-wide layer's policy changes:
// the cluster's layers before and after it.
type clusterChange struct {
	before, after stack
	reviewed      netpol.PolicyRef
	// namespace is the reviewed policy's, for a namespaced
	// CiliumNetworkPolicy, which selects pods there only; empty for the
	// cluster-scoped kinds.
	namespace string
}

type clusterChangeKey struct{}

// clusterChangeFor compiles the layers before and after the reviewed write
// of a ClusterNetworkPolicy (or an AdminNetworkPolicy or
// BaselineAdminNetworkPolicy) or a Cilium policy; nil when there is nothing
// to judge. Under JudgeState "before" is the state without the reviewed
// policy, so that what it blocks on its own is found.
func clusterChangeFor(ctx context.Context, r *Review, v cluster.View) *clusterChange {
	return memoize(r, clusterChangeKey{}, func() *clusterChange {
		obj, oldObj := r.Objects()
		layers := stackFor(ctx, r, v)
		notInForce := r.Operation == Create || r.Judge == JudgeState // a created policy is not in force yet
		if cp, old := asCiliumPolicy(obj), asCiliumPolicy(oldObj); cp != nil || old != nil {
			ref := cmp.Or(cp, old)
			ch := &clusterChange{before: layers, after: layers, namespace: ref.Namespace,
				reviewed: netpol.PolicyRef{Namespace: ref.Namespace, Name: ref.Name}}
			// Both sides by Cilium's model, even when the write makes the
			// first Cilium policy or removes the last one (Replace of a
			// nil set is an empty one, not nil).
			switch {
			case notInForce:
				ch.before.cilium = layers.cilium.Replace(ref, nil)
			case layers.cilium == nil:
				ch.before.cilium = layers.cilium.Replace(nil, nil)
			}
			ch.after.cilium = layers.cilium.Replace(ref, cp)
			return ch
		}
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
		after := others
		if p != nil {
			after = append(slices.Clone(others), p)
		}
		// Before is the tiers in force (layers.tiers, compiled once for
		// every review), or without the reviewed policy when it is not in
		// force yet.
		ch := &clusterChange{before: layers, after: layers, reviewed: netpol.PolicyRef{Name: ref.Name}}
		if notInForce {
			ch.before.tiers = netpol.CompileTiers(others)
		}
		ch.after.tiers = netpol.CompileTiers(after)
		return ch
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

// layerCheck judges a write of a cluster-wide layer's policy for the
// protected Services of rule name (every rule's, for the agents' egress),
// namespace by namespace: each namespace's NetworkPolicies with the layers
// before and after the write. Ingress is judged in the backends'
// namespaces; the agents' egress (agents) in the agents' namespace.
func layerCheck(ctx context.Context, r *Review, v cluster.View, name string, agents bool) []Result {
	if agents && r.Namespace != "" && r.Namespace != r.controlPlane.AgentNamespace() {
		return nil // a namespaced policy elsewhere selects no agent
	}
	all := protectedServices
	if !agents && r.Namespace != "" {
		// A namespaced policy (CiliumNetworkPolicy) selects pods of its
		// namespace only: the backends there are all it can cut off.
		all = protectedIn
	}
	var here []protected
	for _, p := range all(ctx, r, v) {
		if agents || p.rule == name {
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
	list, dir := srcs.list, ingressOf
	if agents {
		list, dir = srcs.agents, egressOf
		ns := r.controlPlane.AgentNamespace()
		if len(list) == 0 || ch.namespace != "" && ch.namespace != ns {
			return nil
		}
	}
	var out []Result
	for _, p := range here {
		if ctx.Err() != nil {
			return out
		}
		ns := p.namespace
		if agents {
			ns = r.controlPlane.AgentNamespace()
		} else if ch.namespace != "" && ch.namespace != ns {
			continue // a namespaced policy selects pods of its namespace only
		}
		j := clusterJudgement(ctx, r, v, ch, ns)
		if j == nil {
			continue
		}
		if b, ok := j.blocked(dir, list, targetsOf(ctx, v, p)); ok {
			res := b.result(p.what, srcs.model)
			if agents {
				res.Fix = "allow egress from the agents to that pod and port"
			}
			out = append(out, res)
		}
	}
	return out
}

// clusterJudgement is namespace ns's NetworkPolicies with the layers before
// and after a cluster-wide policy's write.
func clusterJudgement(ctx context.Context, r *Review, v cluster.View, ch *clusterChange, ns string) *judgement {
	current, err := v.NetworkPolicies(ctx, ns)
	if err != nil {
		return nil
	}
	set := r.compiled.compile(ns, current)
	return &judgement{namespace: ns, before: ch.before.on(set), after: ch.after.on(set), reviewed: ch.reviewed}
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

// ciliumResult is the finding for a path Cilium's model closes: the deny
// rule that matches it, or the policies that select the pod with no rule
// admitting the source, and the rule that would.
func ciliumResult(b blocked, what string, model sourceModel) Result {
	pod := b.tgt.pod.Namespace + "/" + b.tgt.pod.Name
	detail := b.verdict.Explanation + "; control-plane sources: " + string(model) +
		"; Cilium's model: a deny wins over every allow, and a pod any rule selects is denied what no rule allows"
	if rule := b.verdict.DecidedBy; rule != nil {
		return Result{
			Message: fmt.Sprintf("%s: %s cannot reach pod %s on %d/%s (denied by %s %s %sDeny rule %d)",
				what, b.src.what, pod, b.tgt.port, b.tgt.prot, rule.Kind, ciliumName(rule.Policy), rule.Direction, rule.Index),
			Fix:    fmt.Sprintf("leave the source out of that %sDeny rule: a deny wins over every allow", rule.Direction),
			Detail: detail,
		}
	}
	names := make([]string, len(b.verdict.IsolatedBy))
	for i, ref := range b.verdict.IsolatedBy {
		names[i] = ciliumName(ref)
	}
	return Result{
		Message: fitted(names, func(by string) string {
			return fmt.Sprintf("%s: %s cannot reach pod %s on %d/%s (isolated by %s, Cilium)", what, b.src.what, pod, b.tgt.port, b.tgt.prot, by)
		}),
		Fix: fmt.Sprintf("allow it in a Cilium policy selecting the pod: ingress: [{%s, toPorts: [{ports: [{port: \"%d\", protocol: %s}]}]}]",
			b.src.cilium, b.tgt.port, b.tgt.prot),
		Detail: detail,
	}
}

// ciliumName is ns/name, or the name of a clusterwide policy.
func ciliumName(ref netpol.PolicyRef) string {
	if ref.Namespace == "" {
		return ref.Name
	}
	return ref.Namespace + "/" + ref.Name
}
