package policies

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// NetworkPolicyKind is the group/kind of NetworkPolicies.
var NetworkPolicyKind = schema.GroupKind{Group: networkingv1.GroupName, Kind: "NetworkPolicy"}

// networkPolicyRules is the reachability family: a NetworkPolicy write,
// evaluated on the state after it, must not cut the control plane off.
func networkPolicyRules() []Rule {
	return []Rule{
		networkPolicyRule(ruleBlocksAPIService, Enforce,
			"after the change, a control-plane source can no longer reach an APIService backend pod on its target port"),
		networkPolicyRule(ruleBlocksWebhook, Warn,
			"after the change, a control-plane source can no longer reach a webhook or CRD conversion webhook backend (this guard's included)"),
		blocksKonnectivityRule(),
	}
}

// change is a NetworkPolicy write: its namespace's policies before and after.
type change struct {
	namespace     string
	before, after *netpol.Set
}

type changeKey struct{}

// changeFor compiles the policies of the written policy's namespace as they
// are and as they will be. The view holds the state before the write.
func changeFor(ctx context.Context, r *Review, v cluster.View) *change {
	return memoize(r, changeKey{}, func() *change {
		obj, oldObj := r.Objects()
		np, _ := obj.(*networkingv1.NetworkPolicy)
		old, _ := oldObj.(*networkingv1.NetworkPolicy)
		if np == nil && old == nil {
			return nil
		}
		ns := r.Namespace
		if r.Operation == Delete && terminating(ctx, v, ns) {
			// The namespace controller is deleting everything in it, backend
			// pods included; refusing would leave the namespace stuck.
			return nil
		}
		current, err := v.NetworkPolicies(ctx, ns)
		if err != nil {
			return nil
		}
		if r.Operation == Create && np != nil && slices.ContainsFunc(current, func(p *networkingv1.NetworkPolicy) bool { return p.Name == np.Name }) {
			// A created policy is not in force yet; a view that already
			// holds it (the offline check's files) must not count it as before.
			current = slices.DeleteFunc(slices.Clone(current), func(p *networkingv1.NetworkPolicy) bool { return p.Name == np.Name })
		}
		c := &change{namespace: ns, before: r.compiled.compile(ns, current)}
		switch {
		case np != nil:
			c.after = c.before.With([]*networkingv1.NetworkPolicy{np})
		default:
			c.after = c.before.With(nil, netpol.PolicyRef{Namespace: ns, Name: old.Name})
		}
		return c
	})
}

// networkPolicyRule reports, for each protected Service of its rule with pods
// in the written policy's namespace, the first control-plane source that
// reached a pod before the write and no longer does.
func networkPolicyRule(name string, def Action, summary string) Rule {
	return Rule{
		Name: name, Default: def, Summary: summary,
		Kinds: []schema.GroupKind{NetworkPolicyKind},
		Check: func(ctx context.Context, r *Review, v cluster.View) []Result {
			var out []Result
			if name == ruleBlocksAPIService {
				out = invalidParts(r)
			}
			here := protectedIn(ctx, r, v)
			if len(here) == 0 {
				return out // no backend here: nothing to compile or resolve
			}
			c := changeFor(ctx, r, v)
			if c == nil {
				return out
			}
			for _, p := range here {
				if p.rule != name {
					continue
				}
				targets := targetsOf(ctx, v, p)
				if len(targets) == 0 {
					continue
				}
				srcs := controlPlaneSources(ctx, r, v)
				if len(srcs) == 0 {
					return []Result{cannotVerify(p)}
				}
				if b, ok := newlyBlocked(c, srcs, targets); ok {
					out = append(out, b.result(p.what, false))
				}
			}
			return out
		},
	}
}

// newlyBlocked finds a source that reached a target before and does not after.
func newlyBlocked(c *change, srcs []source, targets []target) (blocked, bool) {
	for _, t := range targets {
		for _, s := range srcs {
			// After first: a write that leaves the path open, the common
			// case, needs no look at the state before it.
			tr := traffic(s, t)
			after := c.after.Ingress(tr)
			if after.Allowed || !c.before.Ingress(tr).Allowed {
				continue // open, or already blocked: not this change's doing
			}
			return blocked{src: s, tgt: t, verdict: after}, true
		}
	}
	return blocked{}, false
}

// cannotVerify is said instead of guessing when no control-plane source is
// known (offline without --control-plane-cidr).
func cannotVerify(p protected) Result {
	return Result{
		Message:  "cannot verify that " + p.what + " stays reachable: no control-plane source is known",
		Fix:      "pass --control-plane-cidr with the API server's address range",
		Advisory: true,
	}
}

// blocksKonnectivityRule: a policy in kube-system must not stop the egress of
// pod-network konnectivity-agent pods to a protected backend's pods.
func blocksKonnectivityRule() Rule {
	return Rule{
		Name: ruleBlocksKonnectivity, Default: Warn,
		Summary: "egress of pod-network konnectivity-agent pods to an APIService or webhook backend port is blocked",
		Kinds:   []schema.GroupKind{NetworkPolicyKind},
		Check: func(ctx context.Context, r *Review, v cluster.View) []Result {
			if r.Namespace != konnectivityNamespace {
				return nil
			}
			c := changeFor(ctx, r, v)
			if c == nil {
				return nil
			}
			agents := konnectivityPods(ctx, v)
			if len(agents) == 0 {
				return nil
			}
			for _, p := range protectedServices(ctx, r, v) {
				for _, t := range targetsOf(ctx, v, p) {
					for _, a := range agents {
						tr := traffic(a, t)
						if !c.before.Egress(tr).Allowed {
							continue
						}
						if after := c.after.Egress(tr); !after.Allowed {
							res := blocked{src: a, tgt: t, verdict: after}.result(p.what, false)
							res.Fix = "allow egress from the agents to that pod and port"
							return []Result{res}
						}
					}
				}
			}
			return nil
		},
	}
}

// konnectivityPods are the pod-network konnectivity agents, as sources.
func konnectivityPods(ctx context.Context, v cluster.View) []source {
	pods, nsLabels := konnectivityAgents(ctx, v)
	var out []source
	for _, p := range pods {
		if !p.Spec.HostNetwork {
			out = append(out, source{endpoint: netpol.PodEndpoint(netpol.NewPod(p, nsLabels)), what: "konnectivity-agent pod " + p.Namespace + "/" + p.Name})
		}
	}
	return out
}

// terminating reports whether the namespace is being deleted.
func terminating(ctx context.Context, v cluster.View, ns string) bool {
	n, err := v.Namespace(ctx, ns)
	return err == nil && (n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating)
}
