// Package audit is the guard's second enforcement point: a background scan
// of the objects that already exist, reviewed by the same policies.Engine and
// cluster.View as admission, with results written as policy reports (see
// DESIGN, "What already exists").
package audit

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Verdict is the audit of one existing object: what the rules that review
// its kind found, and the rules that found nothing.
type Verdict struct {
	// Object names the audited object; its UID names its report.
	Object corev1.ObjectReference
	// Findings are the rules' findings, in catalogue order.
	Findings []policies.Finding
	// Passed are the enabled rules that review the object and found
	// nothing, in catalogue order.
	Passed []policies.EnabledRule
}

// errExempt is Review's answer for an object in an exempt namespace: it gets
// no report, as it gets no admission review.
var errExempt = errors.New("exempt by the config")

// Review audits obj, an existing object of kind, as a rule sees an object
// in the cluster: the question is "is it in a bad state now", so rules judge
// the state (policies.JudgeState) and not a change; the object was validated
// by the API server; and nothing is recorded (a dry run), since no write
// happens. obj must carry its apiVersion and kind.
func Review(ctx context.Context, engine *policies.Engine, view cluster.View, kind schema.GroupKind, obj runtime.Object) (Verdict, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return Verdict{}, err
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	v := Verdict{Object: corev1.ObjectReference{
		APIVersion: gvk.GroupVersion().String(), Kind: kind.Kind,
		Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUID(),
	}}
	r := &policies.Review{
		Operation: policies.Create, Judge: policies.JudgeState, Validated: true, DryRun: true,
		Kind: kind, Object: obj, Namespace: m.GetNamespace(), Name: m.GetName(),
	}
	if engine.Exempt(r) {
		return Verdict{}, errExempt
	}
	v.Findings = engine.Evaluate(ctx, r, view)
	if err := ctx.Err(); err != nil {
		// The engine stops between rules once ctx ends: what it found is
		// not a verdict.
		return Verdict{}, err
	}
	for _, rule := range engine.Enabled(kind, policies.Create) {
		found := false
		for _, f := range v.Findings {
			if f.Rule == rule.Name {
				found = true
				break
			}
		}
		if !found {
			v.Passed = append(v.Passed, rule)
		}
	}
	return v, nil
}
