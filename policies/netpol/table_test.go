package netpol_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// tcase is one hand-written case: traffic from -> to on port/proto under
// policies, decided for ingress (at to) or, with egress set, at from.
type tcase struct {
	name     string
	policies []*networkingv1.NetworkPolicy
	from, to netpol.Endpoint
	port     int32
	proto    corev1.Protocol
	egress   bool
	want     outcome
}

// outcome is the part of a Verdict the tables state.
type outcome struct {
	Allowed    bool
	Reason     netpol.Reason
	IsolatedBy []string
	AllowedBy  string
	Issues     []string // Issue.Field of each issue
}

func outcomeOf(v netpol.Verdict) outcome {
	o := outcome{Allowed: v.Allowed, Reason: v.Reason}
	for _, r := range v.IsolatedBy {
		o.IsolatedBy = append(o.IsolatedBy, r.String())
	}
	if v.AllowedBy != nil {
		o.AllowedBy = v.AllowedBy.String()
	}
	for _, is := range v.Issues {
		o.Issues = append(o.Issues, is.Policy.String()+" "+is.Field)
	}
	return o
}

// Outcome builders.

func notIsolated() outcome { return outcome{Allowed: true, Reason: netpol.NotIsolated} }

func notPoliced() outcome { return outcome{Allowed: true, Reason: netpol.NotPoliced} }

// allowed: rule is "ns/name ingress rule N"; isolatedBy lists every isolating policy.
func allowed(rule string, isolatedBy ...string) outcome {
	return outcome{Allowed: true, Reason: netpol.AllowedByRule, AllowedBy: rule, IsolatedBy: isolatedBy}
}

func sameNode(isolatedBy ...string) outcome {
	return outcome{Allowed: true, Reason: netpol.SameNode, IsolatedBy: isolatedBy}
}

func denied(isolatedBy ...string) outcome {
	return outcome{Reason: netpol.NoRuleAllows, IsolatedBy: isolatedBy}
}

// with adds expected issues ("ns/name field").
func (o outcome) with(issues ...string) outcome {
	o.Issues = issues
	return o
}

// runTable evaluates each case twice: through a compiled Set, and through
// Evaluate, which must agree.
func runTable(t *testing.T, cases []tcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port := tc.port
			if port == 0 {
				port = 6443
			}
			tr := netpol.Traffic{Source: tc.from, Destination: tc.to, Port: port, Protocol: tc.proto}
			set := netpol.Compile(tc.policies)
			v := set.Ingress(tr)
			path := netpol.Evaluate(tc.policies, tr)
			if tc.egress {
				v = set.Egress(tr)
				if diff := cmp.Diff(v, path.Egress); diff != "" {
					t.Errorf("Evaluate disagrees with Set.Egress (-set +Evaluate):\n%s", diff)
				}
			} else if diff := cmp.Diff(v, path.Ingress); diff != "" {
				t.Errorf("Evaluate disagrees with Set.Ingress (-set +Evaluate):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, outcomeOf(v)); diff != "" {
				t.Errorf("verdict (-want +got):\n%s\nexplanation: %s", diff, v.Explanation)
			}
		})
	}
}
