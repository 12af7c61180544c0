package policies

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/k0s"
)

// Engine evaluates every enabled rule for a review. It is safe for concurrent
// use: besides its configuration it holds only content-addressed caches,
// which never change an answer: parsed and verified certificates, and the
// compiled NetworkPolicies of recently written namespaces. The one piece of
// history that does change answers is the bounded record of recent caBundle
// replacements that apiservice-cabundle-churn keeps.
type Engine struct {
	config   Config
	rules    []Rule
	byKind   map[schema.GroupKind][]boundRule // validating rules
	mutators map[schema.GroupKind][]boundRule
	certs    *certs.Cache
	compiled *compiledSets
	tiers    *compiledTiers
	cilium   *compiledCilium
	churn    *churnTracker
}

type boundRule struct {
	rule   *Rule
	action Action
}

// NewEngine builds an engine running rules with the actions from config. The
// config must have been validated against the same rules (ParseConfig does).
func NewEngine(config Config, rules []Rule) (*Engine, error) {
	churn, err := config.CABundleChurn.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{config: config, rules: rules, byKind: map[schema.GroupKind][]boundRule{},
		mutators: map[schema.GroupKind][]boundRule{},
		certs:    certs.NewCache(certs.CacheOptions{}), compiled: newCompiledSets(), tiers: newCompiledTiers(), cilium: newCompiledCilium(),
		churn: newChurnTracker(churn, churnTrackedAPIServices)}
	for i := range rules {
		rule := &rules[i]
		if rule.Name == "" || (rule.Check == nil) == (rule.Mutate == nil) || len(rule.Kinds) == 0 {
			return nil, fmt.Errorf("rule %d (%q) needs a name, either a check or a mutation, and at least one kind", i, rule.Name)
		}
		action := config.actionFor(rule)
		if action == Off {
			continue
		}
		into := e.byKind
		if rule.Mutate != nil {
			into = e.mutators
		}
		for _, k := range rule.Kinds {
			into[k] = append(into[k], boundRule{rule: rule, action: action})
		}
	}
	return e, nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.config }

// Rules returns the catalogue the engine was built with, enabled or not.
func (e *Engine) Rules() []Rule { return e.rules }

// Handles reports whether any enabled validating rule reviews kind.
func (e *Engine) Handles(kind schema.GroupKind) bool { return len(e.byKind[kind]) > 0 }

// Mutates reports whether any enabled mutating rule reviews kind.
func (e *Engine) Mutates(kind schema.GroupKind) bool { return len(e.mutators[kind]) > 0 }

// EnabledRule is a validating rule the engine runs, with its action.
type EnabledRule struct {
	Name string
	// Action is the rule's action with the global mode applied: in audit
	// mode an Enforce rule is Audit.
	Action Action
}

// Enabled returns the enabled validating rules that review kind for op, in
// catalogue order: the rules whose silence is a pass for an object of kind
// (the audit reports each of them).
func (e *Engine) Enabled(kind schema.GroupKind, op Operation) []EnabledRule {
	var out []EnabledRule
	for _, br := range e.byKind[kind] {
		if br.rule.applies(kind, op) {
			out = append(out, EnabledRule{Name: br.rule.Name, Action: e.config.effective(br.action, false)})
		}
	}
	return out
}

// Evaluate runs every enabled rule that applies to the review and returns all
// findings, in catalogue order. Nothing is returned for exempt namespaces.
func (e *Engine) Evaluate(ctx context.Context, r *Review, v cluster.View) []Finding {
	if e.exempt(r) {
		return nil
	}
	e.prepare(r)
	var findings []Finding
	var ref ObjectRef
	for _, br := range e.byKind[r.Kind] {
		if ctx.Err() != nil {
			// The review is out of its budget and its answer already
			// given: the rules left would be work for no one.
			break
		}
		if !br.rule.applies(r.Kind, r.Operation) {
			continue
		}
		for _, res := range br.rule.Check(ctx, r, v) {
			if len(findings) == 0 {
				ref = objectRef(r)
			}
			findings = append(findings, Finding{
				Rule:    br.rule.Name,
				Action:  e.config.effective(br.action, res.Advisory),
				Object:  ref,
				Message: res.Message,
				Fix:     res.Fix,
				Detail:  res.Detail,
				Ahead:   res.Ahead,
			})
		}
	}
	if !slices.ContainsFunc(findings, func(f Finding) bool { return f.Action == Enforce }) {
		for _, remember := range r.onAllowed {
			remember()
		}
	}
	return findings
}

// prepare gives a review a fresh evaluation holding the engine's caches and
// settings.
func (e *Engine) prepare(r *Review) {
	r.now()
	r.evaluation = &evaluation{certs: e.certs, compiled: e.compiled, tiers: e.tiers, cilium: e.cilium, churn: e.churn, controlPlane: e.config.ControlPlane}
}

// Mutate runs every enabled mutating rule that applies to the review, in
// catalogue order, on a copy of the review's object. It returns that copy
// with the changes made (nil when the review has no object or is exempt) and
// the findings, each at most Warn. A rule whose action is Audit reports what
// it would change and changes nothing. The caller compares the copy with the
// object to know whether anything changed.
func (e *Engine) Mutate(ctx context.Context, r *Review, v cluster.View) (runtime.Object, []Finding) {
	obj, _ := r.Objects()
	if obj == nil || e.exempt(r) {
		return nil, nil
	}
	e.prepare(r)
	out := obj.DeepCopyObject()
	var findings []Finding
	for _, br := range e.mutators[r.Kind] {
		if !br.rule.applies(r.Kind, r.Operation) {
			continue
		}
		action := e.config.effective(br.action, true)
		target := out
		if action == Audit {
			target = out.DeepCopyObject() // report, do not change
		}
		for _, res := range br.rule.Mutate(ctx, r, v, target) {
			findings = append(findings, Finding{Rule: br.rule.Name, Action: action, Object: objectRef(r),
				Message: res.Message, Fix: res.Fix, Detail: res.Detail})
		}
	}
	return out, findings
}

// Exempt reports whether the config exempts what r reviews: Evaluate
// returns nothing for it.
func (e *Engine) Exempt(r *Review) bool { return e.exempt(r) }

// exempt reports whether the review concerns an exempt namespace: the object's
// own, or for an APIService the namespace of its backend Service.
func (e *Engine) exempt(r *Review) bool {
	if len(e.config.ExemptNamespaces) == 0 {
		return false
	}
	ns := r.Namespace
	if svc := apiServiceBackend(r); svc != nil {
		ns = svc.Namespace
	}
	return ns != "" && slices.Contains(e.config.ExemptNamespaces, ns)
}

// apiServiceBackend returns the backend reference of the reviewed APIService
// (new object, else old), or nil.
func apiServiceBackend(r *Review) *apiregv1.ServiceReference {
	if r.Kind != APIServiceKind {
		return nil // decoding another kind's objects would find nothing
	}
	obj, old := r.Objects()
	for _, obj := range []any{obj, old} {
		if as, ok := obj.(*apiregv1.APIService); ok && as != nil && as.Spec.Service != nil {
			return as.Spec.Service
		}
	}
	return nil
}

// objectRef names the reviewed object.
func objectRef(r *Review) ObjectRef {
	ref := ObjectRef{Kind: r.Kind.Kind, Namespace: r.Namespace, Name: r.Name}
	obj, old := r.Objects()
	for _, obj := range []any{obj, old} {
		if o, ok := obj.(interface {
			GetObjectKind() schema.ObjectKind
		}); ok && o != nil {
			if gvk := o.GetObjectKind().GroupVersionKind(); gvk.Version != "" {
				ref.APIVersion = gvk.GroupVersion().String()
				break
			}
		}
	}
	if ref.APIVersion == "" {
		ref.APIVersion = defaultVersions[r.Kind].String()
	}
	return ref
}

// defaultVersions fills ObjectRef.APIVersion when a typed object arrived
// without TypeMeta (the API machinery strips it when decoding into Go types).
var defaultVersions = map[schema.GroupKind]schema.GroupVersion{
	APIServiceKind:        apiregv1.SchemeGroupVersion,
	NetworkPolicyKind:     networkingv1.SchemeGroupVersion,
	ConfigMapKind:         corev1.SchemeGroupVersion,
	k0s.ClusterConfigKind: k0s.SchemeGroupVersion,
}
