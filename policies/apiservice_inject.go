package policies

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
)

// Mutating rule names.
const (
	ruleCABundleInject   = "apiservice-cabundle-inject"
	ruleCABundlePreserve = "apiservice-cabundle-preserve"
)

// caBundleMutatingRules are the mutating rules, in the order they run.
func caBundleMutatingRules() []Rule {
	return []Rule{caBundleInjectRule(), caBundlePreserveRule()}
}

// caBundleInjectRule sets caBundle from the source that cert-manager's
// annotations name, as cainjector would, and clears insecureSkipTLSVerify in
// the same patch (the API server refuses both set). A missing or unreadable
// source leaves the object as it is and says which object is missing.
func caBundleInjectRule() Rule {
	return Rule{
		Name: ruleCABundleInject, Default: Warn,
		Summary:    "(mutating) sets caBundle from cert-manager.io/inject-ca-from or inject-ca-from-secret and clears insecureSkipTLSVerify; warns when the source is missing",
		Kinds:      []schema.GroupKind{APIServiceKind},
		Operations: []Operation{Create, Update},
		Mutate: func(ctx context.Context, r *Review, v cluster.View, obj runtime.Object) []Result {
			api, ok := obj.(*apiregv1.APIService)
			if !ok || api == nil {
				return nil
			}
			src, declared, err := certs.CASourceOf(api.Annotations)
			if !declared {
				return nil
			}
			if err != nil {
				return []Result{{Message: "caBundle not injected: " + err.Error(), Fix: "set " + src.Annotation + " to <namespace>/<name>"}}
			}
			ca, err := certs.ReadCA(ctx, v, src)
			if err != nil {
				return []Result{{Message: "caBundle not injected from " + src.String() + ": " + missingReason(ctx, v, src, err),
					Fix: "create it, or correct " + src.Annotation}}
			}
			bundle, changed := certs.MergeCA(api.Spec.CABundle, ca.Certs, r.now())
			insecure := api.Spec.InsecureSkipTLSVerify
			if !changed && !insecure {
				return nil // already trusts the source's CA: nothing to do, nothing to say
			}
			api.Spec.CABundle, api.Spec.InsecureSkipTLSVerify = bundle, false
			msg := "caBundle set from ca.crt of Secret " + ca.Secret
			if !changed {
				msg = "caBundle already holds the CA of Secret " + ca.Secret
			}
			if insecure {
				msg += "; insecureSkipTLSVerify cleared"
			}
			return []Result{{Message: msg}}
		},
	}
}

// missingReason words why a source could not be read; a namespace that does
// not exist is named as such.
func missingReason(ctx context.Context, v cluster.View, src certs.CASource, err error) string {
	if _, nsErr := v.Namespace(ctx, src.Namespace); apierrors.IsNotFound(nsErr) {
		return "namespace " + src.Namespace + " does not exist"
	}
	if errors.Is(err, certs.ErrNoCA) {
		return err.Error()
	}
	return "cannot read it: " + err.Error()
}
