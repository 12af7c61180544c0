package netpol

import (
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// Reason says why a Verdict came out as it did.
type Reason string

const (
	// NotPoliced: the policed end (the destination for ingress, the source for
	// egress) is no pod-network pod, so NetworkPolicy does not apply. Allowed.
	NotPoliced Reason = "NotPoliced"
	// NotIsolated: no policy selects the pod for this direction. Allowed.
	NotIsolated Reason = "NotIsolated"
	// AllowedByRule: the rule in Verdict.AllowedBy allows the traffic.
	AllowedByRule Reason = "AllowedByRule"
	// SameNode: no rule allows it, but ingress from the pod's own node is
	// always allowed. Allowed.
	SameNode Reason = "SameNode"
	// NoRuleAllows: the pod is isolated and no rule of an isolating policy
	// allows the traffic. Denied.
	NoRuleAllows Reason = "NoRuleAllows"
	// ClusterAccept: a ClusterNetworkPolicy rule (Verdict.DecidedBy)
	// accepts the traffic. Allowed.
	ClusterAccept Reason = "ClusterAccept"
	// ClusterDeny: a ClusterNetworkPolicy rule (Verdict.DecidedBy) denies
	// the traffic. Denied.
	ClusterDeny Reason = "ClusterDeny"
)

// maxNamed caps how many policies an explanation names.
const maxNamed = 3

// Verdict is the decision for one direction of a connection.
type Verdict struct {
	// Direction is Ingress (at the destination) or Egress (at the source).
	Direction networkingv1.PolicyType `json:"direction"`
	// Allowed is the decision.
	Allowed bool `json:"allowed"`
	// Isolated is true when at least one policy selects the pod for Direction.
	Isolated bool `json:"isolated"`
	// Reason says why.
	Reason Reason `json:"reason"`
	// IsolatedBy names the policies that isolate the pod, in input order.
	IsolatedBy []PolicyRef `json:"isolatedBy,omitempty"`
	// AllowedBy is the first rule (in input order) that allows the traffic;
	// nil unless Reason is AllowedByRule.
	AllowedBy *RuleRef `json:"allowedBy,omitempty"`
	// Issues are the invalid parts of the policies that took part: the
	// isolating ones, and those whose invalid podSelector selects nothing.
	Issues []Issue `json:"issues,omitempty"`
	// Tier is the layer that decided: the Admin or Baseline tier of
	// ClusterNetworkPolicies, or NetworkPolicy when a NetworkPolicy isolates
	// the pod; empty when nothing did (allowed by default).
	Tier Tier `json:"tier,omitempty"`
	// DecidedBy is the ClusterNetworkPolicy rule that decided, for
	// ClusterAccept and ClusterDeny.
	DecidedBy *ClusterRuleRef `json:"decidedBy,omitempty"`
	// PassedBy is the Admin tier rule that passed the traffic on to the
	// later layers (a Pass), if one did.
	PassedBy *ClusterRuleRef `json:"passedBy,omitempty"`
	// Explanation is a one-line, human-readable account of the decision.
	Explanation string `json:"explanation"`
}

// Path is the decision for both halves of a connection.
type Path struct {
	// Egress is the decision at the source.
	Egress Verdict `json:"egress"`
	// Ingress is the decision at the destination.
	Ingress Verdict `json:"ingress"`
}

// Allowed reports whether the connection succeeds: egress and ingress allowed.
func (p Path) Allowed() bool { return p.Egress.Allowed && p.Ingress.Allowed }

// Explanation explains the denying half (both when both deny), or the ingress
// half when the connection is allowed.
func (p Path) Explanation() string {
	switch {
	case !p.Egress.Allowed && !p.Ingress.Allowed:
		return p.Egress.Explanation + "; " + p.Ingress.Explanation
	case !p.Egress.Allowed:
		return p.Egress.Explanation
	}
	return p.Ingress.Explanation
}

// explain renders v's Explanation for traffic t.
func explain(v *Verdict, t *Traffic) string {
	var b strings.Builder
	dir, self := "ingress", "destination"
	if v.Direction == networkingv1.PolicyTypeEgress {
		dir, self = "egress", "source"
	}
	b.WriteString(dir + " from " + t.Source.String() + " to " + t.Destination.String() +
		" on " + portString(t.Port, protocolOr(t.Protocol)))
	switch v.Reason {
	case NotPoliced:
		b.WriteString(" allowed: NetworkPolicy does not apply, the " + self + " is no pod-network pod")
	case NotIsolated:
		b.WriteString(" allowed: no NetworkPolicy selects the " + self + " pod for " + dir)
	case AllowedByRule:
		b.WriteString(" allowed by " + v.AllowedBy.String())
	case SameNode:
		b.WriteString(" allowed only because the source is the pod's own node; no rule of ")
		writePolicies(&b, v.IsolatedBy)
		b.WriteString(" allows it")
	case NoRuleAllows:
		b.WriteString(" denied: isolated by ")
		writePolicies(&b, v.IsolatedBy)
		b.WriteString(", and no " + dir + " rule allows it")
	case ClusterAccept, CiliumAllowed:
		b.WriteString(" allowed by " + v.DecidedBy.String())
	case ClusterDeny, CiliumDenied:
		b.WriteString(" denied by " + v.DecidedBy.String())
	case CiliumDefaultDeny:
		b.WriteString(" denied: selected for " + dir + " by ")
		writePolicies(&b, v.IsolatedBy)
		b.WriteString(", and no " + dir + " rule allows it")
	}
	if v.PassedBy != nil {
		b.WriteString(" (passed on by " + v.PassedBy.String() + ")")
	}
	if n := len(v.Issues); n > 0 {
		b.WriteString(" (" + strconv.Itoa(n) + " invalid part(s) in these policies, first: " + v.Issues[0].String() + ")")
	}
	return b.String()
}

// writePolicies writes "a, b, c and 4 more".
func writePolicies(b *strings.Builder, refs []PolicyRef) {
	for i, r := range refs {
		if i == maxNamed {
			b.WriteString(" and " + strconv.Itoa(len(refs)-maxNamed) + " more")
			return
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
}
