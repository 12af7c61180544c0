package policies

import "apiservice-guard.io/apiservice-guard/certs"

// evaluation is the engine's state for one evaluation of one review: what
// the rules of a family share (cluster look-ups), the engine's caches and
// settings, and what rules leave to be done once the verdict is known. The
// engine makes a fresh one for every Evaluate and Mutate, so a reused Review
// starts afresh.
type evaluation struct {
	// memo holds look-ups computed once per evaluation (see memoize).
	memo map[any]any
	// certs caches parsed and verified certificates; nil caches nothing.
	certs *certs.Cache
	// compiled caches compiled NetworkPolicy sets; nil caches nothing.
	compiled *compiledSets
	// tiers caches the compiled ClusterNetworkPolicies; nil caches nothing.
	tiers *compiledTiers
	// cilium caches the compiled Cilium policies; nil caches nothing.
	cilium *compiledCilium
	// churn records caBundle replacements; nil records and reports none.
	churn *churnTracker
	// controlPlane says where the control plane connects from.
	controlPlane ControlPlane
	// onAllowed are run by the engine after evaluation when no finding
	// denies the write: what rules remember about writes that happened.
	onAllowed []func()
}

// memoize returns the value computed by fn for key, computing it once per
// evaluation, so rules of one family share the cluster look-ups they have in
// common.
func memoize[T any](r *Review, key any, fn func() T) T {
	if v, ok := r.memo[key]; ok {
		return v.(T)
	}
	if r.memo == nil {
		r.memo = map[any]any{}
	}
	v := fn()
	r.memo[key] = v
	return v
}
