package policies

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// NetworkPolicyKind is the group/kind of NetworkPolicies.
var NetworkPolicyKind = schema.GroupKind{Group: networkingv1.GroupName, Kind: "NetworkPolicy"}

// networkPolicyRules is the reachability family: the NetworkPolicies of a
// namespace, judged as a set, must not cut the control plane off.
func networkPolicyRules() []Rule {
	return []Rule{
		networkPolicyRule(ruleBlocksAPIService, Enforce,
			"after the change, a control-plane source can no longer reach an APIService backend pod on its target port"),
		networkPolicyRule(ruleBlocksWebhook, Warn,
			"after the change, a control-plane source can no longer reach a webhook or CRD conversion webhook backend (this guard's included)"),
		blocksKonnectivityRule(),
		invalidPolicyRule(),
	}
}

// judgement is what a NetworkPolicy review compares: its namespace's
// policies before and after the write (JudgeChange), or no policy at all and
// the policies in force, the reviewed one included (JudgeState).
type judgement struct {
	namespace     string
	before, after *netpol.Set
	// state is true for JudgeState.
	state bool
	// reviewed names the reviewed policy.
	reviewed netpol.PolicyRef
}

// noPolicies is the empty set: nothing isolated, everything allowed.
var noPolicies = netpol.Compile(nil)

type judgementKey struct{}

// judgementFor compiles the policies of the reviewed policy's namespace as
// the review's question needs them; nil when there is nothing to judge. The
// view holds the state before an admission write, and the whole state for
// the offline check and audit.
func judgementFor(ctx context.Context, r *Review, v cluster.View) *judgement {
	return memoize(r, judgementKey{}, func() *judgement {
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
		name := r.Name
		if name == "" {
			name = cmpOr(np, old).Name
		}
		j := &judgement{namespace: ns, reviewed: netpol.PolicyRef{Namespace: ns, Name: name}}
		// The whole stack: the cluster-wide layers around the namespace's.
		layers := stackFor(ctx, r, v)
		if r.Judge == JudgeState {
			j.state, j.before = true, layers.on(noPolicies)
			j.after = layers.on(r.compiled.compile(ns, current))
			if np != nil && !inForce(current, np) { // the reviewed version is the one in force
				j.after = j.after.With([]*networkingv1.NetworkPolicy{np})
			}
			return j
		}
		if r.Operation == Create && np != nil && slices.ContainsFunc(current, func(p *networkingv1.NetworkPolicy) bool { return p.Name == np.Name }) {
			// A created policy is not in force yet; a view that already
			// holds it must not count it as before.
			current = slices.DeleteFunc(slices.Clone(current), func(p *networkingv1.NetworkPolicy) bool { return p.Name == np.Name })
		}
		j.before = layers.on(r.compiled.compile(ns, current))
		if np != nil {
			j.after = j.before.With([]*networkingv1.NetworkPolicy{np})
		} else {
			j.after = j.before.With(nil, j.reviewed)
		}
		return j
	})
}

// isolatesAny reports whether the reviewed policy isolates, in direction
// dir, a pod of targets (netpol.Isolates).
func isolatesAny(r *Review, dir networkingv1.PolicyType, targets [][]target) bool {
	obj, _ := r.Objects()
	np, _ := obj.(*networkingv1.NetworkPolicy)
	if np == nil {
		return true // nothing to tell: let the full judgement decide
	}
	for _, ts := range targets {
		for _, t := range ts {
			if netpol.Isolates(np, dir, t.pod) {
				return true
			}
		}
	}
	return false
}

// inForce reports whether current holds np as it is: the same object, or
// the same name at the same resourceVersion (the audit reviews a copy of
// what the view holds).
func inForce(current []*networkingv1.NetworkPolicy, np *networkingv1.NetworkPolicy) bool {
	return slices.ContainsFunc(current, func(p *networkingv1.NetworkPolicy) bool {
		return p == np || p.Name == np.Name && p.ResourceVersion != "" && p.ResourceVersion == np.ResourceVersion
	})
}

// cmpOr returns a when it is not nil, else b.
func cmpOr(a, b *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	if a != nil {
		return a
	}
	return b
}

// verdictFunc is one direction of netpol.Set's evaluation.
type verdictFunc func(*netpol.Set, netpol.Traffic) netpol.Verdict

var (
	ingressOf verdictFunc = (*netpol.Set).Ingress
	egressOf  verdictFunc = (*netpol.Set).Egress
)

// blocked finds a source that the policies after the write keep from a
// target and those before did not. Under JudgeState, where "before" is no
// policy at all, a blocked path is reported once, on the first policy that
// isolates it: when that is not the reviewed policy, another review reports
// it and this one says nothing.
func (j *judgement) blocked(dir verdictFunc, srcs []source, targets []target) (blocked, bool) {
	for _, t := range targets {
		for _, s := range srcs {
			// After first: a write that leaves the path open, the common
			// case, needs no look at the state before it.
			tr := traffic(s, t)
			after := dir(j.after, tr)
			if after.Allowed || !dir(j.before, tr).Allowed {
				continue // open, or already blocked: not this change's doing
			}
			if j.state && (len(after.IsolatedBy) == 0 || after.IsolatedBy[0] != j.reviewed) {
				return blocked{}, false
			}
			return blocked{src: s, tgt: t, verdict: after}, true
		}
	}
	return blocked{}, false
}

// networkPolicyRule reports, for each protected Service of its rule with pods
// in the reviewed policy's namespace, the first control-plane source that the
// policies keep from a pod (see judgement.blocked).
func networkPolicyRule(name string, def Action, summary string) Rule {
	return Rule{
		Name: name, Default: def, Summary: summary,
		Kinds: append([]schema.GroupKind{NetworkPolicyKind}, layerKinds...),
		Check: func(ctx context.Context, r *Review, v cluster.View) []Result {
			if isLayerKind(r.Kind) {
				return layerCheck(ctx, r, v, name, false)
			}
			here := slices.DeleteFunc(slices.Clone(protectedIn(ctx, r, v)), func(p protected) bool { return p.rule != name })
			if len(here) == 0 {
				return nil // no backend here: nothing to compile or resolve
			}
			targets := make([][]target, len(here))
			for i, p := range here {
				if ctx.Err() != nil {
					return nil
				}
				targets[i] = targetsOf(ctx, v, p)
			}
			if r.Judge == JudgeState && !isolatesAny(r, networkingv1.PolicyTypeIngress, targets) {
				// Under JudgeState only a policy that isolates a backend
				// pod can be the first to: the others, most policies of a
				// namespace, are done without compiling the namespace's
				// policies or resolving the sources.
				return nil
			}
			j := judgementFor(ctx, r, v)
			if j == nil {
				return nil
			}
			srcs := controlPlaneSources(ctx, r, v)
			if len(srcs.list) == 0 {
				return j.cannotVerify(ctx, v, here)
			}
			var out []Result
			for i, p := range here {
				if ctx.Err() != nil {
					return out // out of budget: the answer is given without it
				}
				if b, ok := j.blocked(ingressOf, srcs.list, targets[i]); ok {
					out = append(out, b.result(p.what, srcs.model))
				}
			}
			return out
		},
	}
}

// cannotVerify is said instead of guessing when no control-plane source is
// known (offline without --control-plane-cidr): once per namespace, and only
// when the policies isolate a backend pod without admitting every address on
// its port. Under JudgeChange the write must have a part in it (it isolates
// the pod, or the pod was open before); under JudgeState it is said on the
// first policy that isolates the first such pod.
func (j *judgement) cannotVerify(ctx context.Context, v cluster.View, here []protected) []Result {
	var closed []string
	var by []netpol.PolicyRef
	for _, p := range here {
		for _, t := range targetsOf(ctx, v, p) {
			open, iso := j.after.OpenIngress(t.pod, t.port, t.prot)
			if open || !j.hasPart(t, iso) {
				continue
			}
			if len(closed) == 0 {
				by = iso
			}
			closed = append(closed, fmt.Sprintf("%s on pod %s/%s %d/%s", p.what, t.pod.Namespace, t.pod.Name, t.port, t.prot))
			break
		}
	}
	if len(closed) == 0 || (j.state && by[0] != j.reviewed) {
		return nil
	}
	return []Result{{
		Message: fitted(shortNames(by, j.namespace), func(list string) string {
			return fmt.Sprintf("cannot verify that the control plane reaches %s: no control-plane source known (isolated by %s)", listed(closed, 1), list)
		}),
		Fix: "pass --control-plane-cidr, or set controlPlane.cidrs in the config, to the API server's address range",
		Detail: "backends the policies isolate: " + strings.Join(closed, ", ") +
			"; isolating policies: " + strings.Join(refNames(by), ", "),
		Advisory: true,
	}}
}

// hasPart reports whether the reviewed write has a part in isolating target
// t (iso: the policies isolating it after the write).
func (j *judgement) hasPart(t target, iso []netpol.PolicyRef) bool {
	if j.state || slices.Contains(iso, j.reviewed) {
		return true
	}
	openBefore, _ := j.before.OpenIngress(t.pod, t.port, t.prot)
	return openBefore
}

// blocksKonnectivityRule: a policy in the agents' namespace must not stop the
// egress of pod-network konnectivity-agent pods to a protected backend's pods.
func blocksKonnectivityRule() Rule {
	return Rule{
		Name: ruleBlocksKonnectivity, Default: Warn,
		Summary: "egress of pod-network konnectivity-agent pods to an APIService or webhook backend port is blocked",
		Kinds:   append([]schema.GroupKind{NetworkPolicyKind}, layerKinds...),
		Check: func(ctx context.Context, r *Review, v cluster.View) []Result {
			if isLayerKind(r.Kind) {
				return layerCheck(ctx, r, v, ruleBlocksKonnectivity, true)
			}
			if r.Namespace != r.controlPlane.AgentNamespace() {
				return nil
			}
			j := judgementFor(ctx, r, v)
			if j == nil {
				return nil
			}
			agents := controlPlaneSources(ctx, r, v).agents
			if len(agents) == 0 {
				return nil
			}
			var out []Result
			for _, p := range protectedServices(ctx, r, v) {
				if ctx.Err() != nil {
					return out
				}
				if b, ok := j.blocked(egressOf, agents, targetsOf(ctx, v, p)); ok {
					res := b.result(p.what, modelKonnectivity)
					res.Fix = "allow egress from the agents to that pod and port"
					out = append(out, res)
				}
			}
			return out
		},
	}
}

// terminating reports whether the namespace is being deleted.
func terminating(ctx context.Context, v cluster.View, ns string) bool {
	n, err := v.Namespace(ctx, ns)
	return err == nil && (n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating)
}
