package policies

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// CheckFunc is a rule's logic: a pure function of the review and the cluster
// view. It returns nothing when the write is fine.
type CheckFunc func(ctx context.Context, r *Review, v cluster.View) []Result

// MutateFunc is a mutating rule's logic. obj is a copy of the object the
// write will store, as the mutating rules before this one left it; the rule
// changes it in place and reports what it changed, or why it could not. A
// mutating rule never denies.
type MutateFunc func(ctx context.Context, r *Review, v cluster.View, obj runtime.Object) []Result

// Rule is one named check with its default action.
type Rule struct {
	// Name is the rule's stable identifier, used in config, warnings,
	// annotations and metrics, e.g. "apiservice-port-mismatch".
	Name string
	// Default is the action when the config does not name the rule.
	Default Action
	// Summary is a one-line description for documentation and help output.
	Summary string
	// Kinds are the object kinds the rule reviews.
	Kinds []schema.GroupKind
	// Operations are the operations the rule reviews; empty means all.
	Operations []Operation
	// Check is a validating rule's logic. A rule has Check or Mutate.
	Check CheckFunc
	// Mutate is a mutating rule's logic. Its findings are at most Warn; when
	// its action is Audit the change is reported and not made.
	Mutate MutateFunc
}

// applies reports whether the rule reviews this kind and operation.
func (r *Rule) applies(kind schema.GroupKind, op Operation) bool {
	return slices.Contains(r.Kinds, kind) && (len(r.Operations) == 0 || slices.Contains(r.Operations, op))
}

// DefaultRules returns the built-in rule catalogue.
func DefaultRules() []Rule {
	return slices.Concat(apiServiceRules(), caBundleMutatingRules(), networkPolicyRules(), k0sRules())
}
