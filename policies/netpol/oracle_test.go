package netpol_test

import (
	"slices"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// The oracle: github.com/mattfenwick/cyclonus/pkg/matcher, an independent
// NetworkPolicy model (MIT), used only from tests. This file adapts a case to
// its input model; each adaptation is listed in ambiguities
// (differential_test.go) with the reason.

// absentValue stands for "label not set" once labels are made total.
const absentValue = "__absent__"

// oracleResult is cyclonus's answer for one direction.
type oracleResult struct {
	allowed    bool
	isolatedBy []string // policies of every target selecting the pod, sorted
	allowers   []string // policies of the targets that allow the traffic, sorted
}

// oracle asks cyclonus about one direction of traffic under policies. With
// total set, labels are made total over keys and selectors rewritten to
// match (ambiguity "notin-absent-key").
func oracle(policies []*networkingv1.NetworkPolicy, t netpol.Traffic, egress, total bool, keys []string) oracleResult {
	var copies []*networkingv1.NetworkPolicy
	for _, p := range policies {
		c := p.DeepCopy()
		defaultPolicyTypes(&c.Spec)
		if total {
			rewriteSelectors(&c.Spec)
		}
		copies = append(copies, c)
	}
	model := matcher.BuildNetworkPolicies(false, copies)
	proto := protoOr(t.Protocol)
	traffic := &matcher.Traffic{
		Source:           oraclePeer(t.Source, total, keys),
		Destination:      oraclePeer(t.Destination, total, keys),
		ResolvedPort:     int(t.Port),
		ResolvedPortName: resolvedName(t.Destination, t.Port, proto),
		Protocol:         proto,
	}
	r := model.IsIngressOrEgressAllowed(traffic, !egress)
	out := oracleResult{allowed: r.IsAllowed()}
	for _, tg := range slices.Concat(r.AllowingTargets, r.DenyingTargets) {
		out.isolatedBy = append(out.isolatedBy, ruleNames(tg)...)
	}
	for _, tg := range r.AllowingTargets {
		out.allowers = append(out.allowers, ruleNames(tg)...)
	}
	slices.Sort(out.isolatedBy)
	slices.Sort(out.allowers)
	return out
}

func ruleNames(t *matcher.Target) []string {
	var out []string
	for _, p := range t.SourceRules {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

// defaultPolicyTypes applies the API server's defaulting, which cyclonus
// expects to have happened (ambiguity "policytypes-defaulting").
func defaultPolicyTypes(s *networkingv1.NetworkPolicySpec) {
	if len(s.PolicyTypes) == 0 {
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(s.Egress) > 0 {
			s.PolicyTypes = append(s.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
}

// rewriteSelectors turns Exists into NotIn [absent] and DoesNotExist into
// In [absent]: with total labels they mean the same, and cyclonus's NotIn
// then sees the key present with value absentValue, which is "not in" the
// list, as apimachinery decides for a missing key.
func rewriteSelectors(s *networkingv1.NetworkPolicySpec) {
	rewrite := func(ls *metav1.LabelSelector) {
		if ls == nil {
			return
		}
		for i := range ls.MatchExpressions {
			e := &ls.MatchExpressions[i]
			switch e.Operator {
			case metav1.LabelSelectorOpExists:
				e.Operator, e.Values = metav1.LabelSelectorOpNotIn, []string{absentValue}
			case metav1.LabelSelectorOpDoesNotExist:
				e.Operator, e.Values = metav1.LabelSelectorOpIn, []string{absentValue}
			}
		}
	}
	rewrite(&s.PodSelector)
	for _, r := range s.Ingress {
		for _, p := range r.From {
			rewrite(p.PodSelector)
			rewrite(p.NamespaceSelector)
		}
	}
	for _, r := range s.Egress {
		for _, p := range r.To {
			rewrite(p.PodSelector)
			rewrite(p.NamespaceSelector)
		}
	}
}

// oraclePeer: pod-network pods are internal peers; hostNetwork pods, nodes
// and external addresses are external peers at their IP (ambiguity
// "hostnetwork").
func oraclePeer(e netpol.Endpoint, total bool, keys []string) *matcher.TrafficPeer {
	ip := e.IP
	if !ip.IsValid() && e.Pod != nil && len(e.Pod.IPs) > 0 {
		ip = e.Pod.IPs[0]
	}
	p := &matcher.TrafficPeer{IP: ip.String()}
	if e.Pod != nil && !e.Pod.HostNetwork {
		p.Internal = &matcher.InternalPeer{
			Namespace:       e.Pod.Namespace,
			PodLabels:       totalLabels(e.Pod.Labels, total, keys),
			NamespaceLabels: totalLabels(e.Pod.NamespaceLabels, total, keys),
		}
	}
	return p
}

// totalLabels gives every key in keys a value, absentValue when unset.
func totalLabels(l map[string]string, total bool, keys []string) map[string]string {
	if !total {
		return l
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k] = absentValue
	}
	for k, v := range l {
		out[k] = v
	}
	return out
}

// resolvedName is the name of the destination's container port number/proto,
// "" when none or the destination is no pod-network pod.
func resolvedName(dst netpol.Endpoint, port int32, proto corev1.Protocol) string {
	if dst.Pod == nil || dst.Pod.HostNetwork {
		return ""
	}
	for _, cp := range dst.Pod.Ports {
		if cp.Port == port && protoOr(cp.Protocol) == proto {
			return cp.Name
		}
	}
	return ""
}
