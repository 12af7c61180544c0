package policies

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// invalidParts reports the parts of a written NetworkPolicy that the API
// server's validation would reject: an unparsable or non-canonical ipBlock
// CIDR, an except outside its cidr, an endPort below its port, an invalid
// selector. An API server never sends such a policy to a validating webhook
// (validation runs first), so this speaks to the offline check only: a
// validated review skips it, and does not decode its object for it.
// The evaluator decides that such a part matches nothing (see policies/netpol);
// saying so is better than a silent "blocked".
func invalidParts(r *Review) []Result {
	if r.Validated {
		return nil
	}
	obj, _ := r.Objects()
	np, _ := obj.(*networkingv1.NetworkPolicy)
	if np == nil {
		return nil
	}
	issues := netpol.Compile([]*networkingv1.NetworkPolicy{np}).Issues()
	if len(issues) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s: %s (it matches nothing here)", issues[0].Field, issues[0].Detail)
	if n := len(issues) - 1; n > 0 {
		msg += fmt.Sprintf(", and %d more invalid part(s)", n)
	}
	return []Result{{Message: msg, Fix: "fix " + issues[0].Field + "; the API server will reject the policy as it is", Advisory: true}}
}
