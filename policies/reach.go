package policies

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// protected is a Service the control plane must reach: an APIService's
// backend, a webhook's, or a CRD conversion webhook's.
type protected struct {
	// rule is the NetworkPolicy rule that guards it.
	rule string
	// what names it in messages: "APIService v1beta1.metrics.k8s.io".
	what               string
	namespace, service string
	port               int32 // Service port
}

const (
	ruleBlocksAPIService   = "networkpolicy-blocks-apiservice"
	ruleBlocksWebhook      = "networkpolicy-blocks-webhook"
	ruleBlocksKonnectivity = "networkpolicy-blocks-konnectivity"
)

type protectedKey struct{}

// protectedServices lists every Service the control plane must reach.
func protectedServices(ctx context.Context, r *Review, v cluster.View) []protected {
	return memoize(r, protectedKey{}, func() []protected { return protectedOf(ctx, v, "") })
}

type protectedInKey struct{}

// protectedIn lists the protected Services in the review's namespace, in
// protectedServices' order. The view answers it by namespace, so that a
// NetworkPolicy write where no backend runs, the common case, is decided
// without listing every APIService and webhook, compiling policies or
// resolving pods.
func protectedIn(ctx context.Context, r *Review, v cluster.View) []protected {
	if r.Namespace == "" {
		return nil // to the view, "" would mean every namespace
	}
	return memoize(r, protectedInKey{}, func() []protected { return protectedOf(ctx, v, r.Namespace) })
}

// protectedOf lists the protected Services in namespace ns, every namespace
// when empty. The webhooks of one configuration that call the same Service
// port are one entry, so a blocked pod is reported once for them.
func protectedOf(ctx context.Context, v cluster.View, ns string) []protected {
	refs, err := v.ServiceReferences(ctx, ns)
	if err != nil || len(refs) == 0 {
		return nil
	}
	type key struct {
		kind, referrer, namespace, service string
		port                               int32
	}
	out := make([]protected, 0, len(refs))
	webhooks := map[key]int{} // index in out
	names := map[int][]string{}
	for _, ref := range refs {
		p := protected{rule: ruleBlocksWebhook, namespace: ref.Namespace, service: ref.Service, port: portOr443(ref.Port)}
		switch ref.Kind {
		case cluster.KindAPIService:
			p.rule, p.what = ruleBlocksAPIService, "APIService "+ref.Name
		case cluster.KindCustomResourceDefinition:
			p.what = "conversion webhook of CRD " + ref.Name
		default:
			k := key{ref.Kind, ref.Referrer, ref.Namespace, ref.Service, p.port}
			if i, ok := webhooks[k]; ok {
				names[i] = append(names[i], ref.Name)
				out[i].what = fmt.Sprintf("webhooks %s of %s", listed(names[i], 2), ref.Referrer)
				continue
			}
			webhooks[k] = len(out)
			names[len(out)] = []string{ref.Name}
			p.what = "webhook " + ref.Name
		}
		out = append(out, p)
	}
	return out
}

func portOr443(p *int32) int32 {
	if p == nil {
		return 443
	}
	return *p
}

// target is one backend pod and the pod port the Service sends traffic to.
type target struct {
	pod  *netpol.Pod
	port int32
	prot corev1.Protocol
}

// targetsOf resolves a protected Service to its pods and pod-side ports:
// selector -> pods -> targetPort (numeric or named). Never the Service port.
func targetsOf(ctx context.Context, v cluster.View, p protected) []target {
	svc, err := v.Service(ctx, p.namespace, p.service)
	if err != nil || len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == p.port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return nil // apiservice-port-mismatch reports it
	}
	pods, _ := v.Pods(ctx, p.namespace, labels.SelectorFromSet(svc.Spec.Selector))
	var nsLabels map[string]string
	if ns, err := v.Namespace(ctx, p.namespace); err == nil {
		nsLabels = ns.Labels
	}
	var out []target
	for _, pod := range pods {
		port, _ := resolvePodPort(sp, p.port, pod)
		if port == 0 {
			continue // a named port this pod does not declare: not an endpoint
		}
		out = append(out, target{pod: netpol.NewPod(pod, nsLabels), port: port, prot: protocolOf(sp.Protocol)})
	}
	return out
}

// blocked is a control-plane source that cannot reach a target.
type blocked struct {
	src     source
	tgt     target
	verdict netpol.Verdict
}

// traffic is the connection from a source to a target.
func traffic(s source, t target) netpol.Traffic {
	return netpol.Traffic{Source: s.endpoint, Destination: netpol.PodEndpoint(t.pod), Port: t.port, Protocol: t.prot}
}

// maxNamedPolicies caps how many isolating policies a message names; the
// detail names them all.
const maxNamedPolicies = 4

// maxListed is how long a list in a message grows before the rest is
// counted instead of named.
const maxListed = 64

// result renders the finding for a blocked path: short enough for one
// warning line (the blocked source, which says what kind of source it is,
// the pod and port, the isolating policies as far as listed fits them), the
// rule that would allow it as the fix, and as the detail the full
// explanation and the source model that found the source.
func (b blocked) result(what string, model sourceModel) Result {
	if b.verdict.Tier == netpol.TierCilium {
		return ciliumResult(b, what, model)
	}
	if b.verdict.DecidedBy != nil {
		return clusterResult(b, what, model)
	}
	pod := b.tgt.pod.Namespace + "/" + b.tgt.pod.Name
	detail := b.verdict.Explanation
	if len(b.verdict.IsolatedBy) > maxNamedPolicies {
		detail += "; isolating policies: " + listed(refNames(b.verdict.IsolatedBy), len(b.verdict.IsolatedBy))
	}
	detail += "; control-plane sources: " + string(model)
	return Result{
		Message: fitted(shortNames(b.verdict.IsolatedBy, b.tgt.pod.Namespace), func(by string) string {
			return fmt.Sprintf("%s: %s cannot reach pod %s on %d/%s (isolated by %s)", what, b.src.what, pod, b.tgt.port, b.tgt.prot, by)
		}),
		Fix:    "allow it: " + allowRule(b),
		Detail: detail,
	}
}

// allowRule is the minimal ingress rule that lets the source in.
func allowRule(b blocked) string {
	return fmt.Sprintf("ingress: [{from: [%s], ports: [{port: %d, protocol: %s}]}]", b.src.peer, b.tgt.port, b.tgt.prot)
}

// maxMessage is the longest message fitted makes when it can: with
// "[rule] " in front (the longest rule of the family has 33 characters) it
// stays a warning line of at most 256 characters.
const maxMessage = 220

// fitted renders a message naming the policies (isolating ones) with as
// many names as fit maxMessage, at least one.
func fitted(policies []string, render func(list string) string) string {
	var msg string
	for n := maxNamedPolicies; n >= 1; n-- {
		if msg = render(listed(policies, n)); len(msg) <= maxMessage {
			break
		}
	}
	return msg
}

// shortNames are the policies' names, without the namespace when it is ns
// (the namespace of the pod a message names): "default-deny", or
// "kube-system/deny-egress" for an agent's egress policy.
func shortNames(refs []netpol.PolicyRef, ns string) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Name
		if r.Namespace != ns {
			out[i] = r.String()
		}
	}
	return out
}

// refNames are the policies' "namespace/name".
func refNames(refs []netpol.PolicyRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

// listed joins up to n items with ", " and says how many more there are:
// "a, b and 3 more". Past maxListed characters it names no further item, so
// long names keep a message short; the first item is always named.
func listed(items []string, n int) string {
	var b strings.Builder
	named := 0
	for named < len(items) && named < n && (named == 0 || b.Len()+len(items[named]) <= maxListed) {
		if named > 0 {
			b.WriteString(", ")
		}
		b.WriteString(items[named])
		named++
	}
	if rest := len(items) - named; rest > 0 {
		fmt.Fprintf(&b, " and %d more", rest)
	}
	return b.String()
}

// unreachableRule warns, on an APIService write, when the NetworkPolicies in
// force already keep a control-plane source from the backend's pods: the
// backend's ingress, and with konnectivity the agents' egress.
func unreachableRule() Rule {
	return apiServiceRule("apiservice-unreachable", Warn,
		"current NetworkPolicies already block a control-plane source from the backend's pod port, or konnectivity agents' egress to it",
		func(ctx context.Context, f *backendFacts) []Result {
			if f.svc == nil || f.externalName() {
				return nil
			}
			p := protected{rule: ruleBlocksAPIService, what: "APIService " + f.api.Name, namespace: f.ref.Namespace, service: f.ref.Name, port: f.port}
			targets := targetsOf(ctx, f.view, p)
			if len(targets) == 0 {
				return nil
			}
			return unreachable(ctx, f.review, f.view, p, targets)
		})
}

// unreachable judges the policies in force for p's targets: the backend's
// namespace for ingress, the agents' namespace for their egress. The
// judgement compares them with no policy and reviews no policy, so every
// blocked path counts.
func unreachable(ctx context.Context, r *Review, v cluster.View, p protected, targets []target) []Result {
	layers := stackFor(ctx, r, v)
	inForce := func(ns string) *judgement {
		current, err := v.NetworkPolicies(ctx, ns)
		if err != nil || len(current) == 0 && layers.empty() {
			return nil
		}
		return &judgement{namespace: ns, before: noPolicies, after: layers.on(r.compiled.compile(ns, current))}
	}
	j := inForce(p.namespace)
	srcs := controlPlaneSources(ctx, r, v)
	if len(srcs.list) == 0 {
		if j == nil {
			return nil
		}
		return j.cannotVerify(ctx, v, []protected{p})
	}
	var out []Result
	if j != nil {
		if b, ok := j.blocked(ingressOf, srcs.list, targets); ok {
			out = append(out, b.result(p.what, srcs.model))
		}
	}
	if len(srcs.agents) > 0 {
		if j := inForce(r.controlPlane.AgentNamespace()); j != nil {
			if b, ok := j.blocked(egressOf, srcs.agents, targets); ok {
				res := b.result(p.what, srcs.model)
				res.Fix = "allow egress from the agents to that pod and port"
				out = append(out, res)
			}
		}
	}
	return out
}
