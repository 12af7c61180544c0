package policies

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

const ruleInvalidPolicy = "networkpolicy-invalid"

// maxInvalidParts bounds the findings about one policy's invalid parts; the
// last one says how many more there are.
const maxInvalidParts = 5

// invalidPolicyRule reports the parts of a NetworkPolicy that the API
// server's validation would reject: an unparsable or non-canonical ipBlock
// CIDR, an except outside its cidr, an endPort below its port, an invalid
// selector. An API server never sends such a policy to a validating webhook
// (validation runs first), so this speaks to the offline check only: a
// validated review skips it, and does not decode its object for it. The
// evaluator decides that such a part matches nothing (see policies/netpol),
// and each issue says so.
func invalidPolicyRule() Rule {
	return Rule{
		Name: ruleInvalidPolicy, Default: Warn,
		Summary: "(offline) a part of the policy the API server would reject: an unparsable CIDR, an `except` outside its `cidr`, `endPort` below `port`, an invalid selector",
		Kinds:   []schema.GroupKind{NetworkPolicyKind},
		Check: func(_ context.Context, r *Review, _ cluster.View) []Result {
			if r.Validated {
				return nil
			}
			obj, _ := r.Objects()
			np, _ := obj.(*networkingv1.NetworkPolicy)
			if np == nil {
				return nil
			}
			return invalidParts(netpol.Compile([]*networkingv1.NetworkPolicy{np}).Issues())
		},
	}
}

// invalidParts turns issues into results, at most maxInvalidParts.
func invalidParts(issues []netpol.Issue) []Result {
	var out []Result
	for i, is := range issues {
		if i == maxInvalidParts-1 && len(issues) > maxInvalidParts {
			out = append(out, Result{Message: fmt.Sprintf("%d more invalid parts", len(issues)-i),
				Fix: "the API server will reject the policy as it is", Advisory: true})
			break
		}
		out = append(out, Result{
			Message:  is.Field + ": " + is.Detail,
			Fix:      "fix " + is.Field + "; the API server will reject the policy as it is",
			Advisory: true,
		})
	}
	return out
}
