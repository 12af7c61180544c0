package policies

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// caBundlePreserveRule keeps a working caBundle that an UPDATE would empty.
// "Working" means it verifies the backend's serving certificate for
// <service>.<namespace>.svc, or, when no serving certificate can be found,
// that the aggregator reports the APIService Available with it. An UPDATE
// that also sets insecureSkipTLSVerify chose to stop verifying: it is left
// alone (apiservice-insecure-skip-tls speaks about it).
func caBundlePreserveRule() Rule {
	return Rule{
		Name: ruleCABundlePreserve, Default: Warn,
		Summary:    "(mutating) an UPDATE that empties a caBundle which verifies the backend keeps the old one, and names the field manager that tried",
		Kinds:      []schema.GroupKind{APIServiceKind},
		Operations: []Operation{Update},
		Mutate: func(ctx context.Context, r *Review, v cluster.View, obj runtime.Object) []Result {
			api, ok := obj.(*apiregv1.APIService)
			_, oldObj := r.Objects()
			old, _ := oldObj.(*apiregv1.APIService)
			if !ok || api == nil || old == nil || len(old.Spec.CABundle) == 0 ||
				len(api.Spec.CABundle) > 0 || api.Spec.InsecureSkipTLSVerify || api.Spec.Service == nil {
				return nil
			}
			f := factsFor(ctx, r, v)
			if f == nil {
				return nil
			}
			why, works := bundleWorks(ctx, f, old.Spec.CABundle)
			if !works {
				return nil
			}
			api.Spec.CABundle = old.Spec.CABundle
			return []Result{{
				Message: "caBundle kept: " + writerOf(r) + " tried to empty it, but it " + why,
				Fix:     "stop " + writerOf(r) + " from writing spec.caBundle, or give it the CA",
			}}
		},
	}
}

// bundleWorks reports whether bundle verifies the backend, and how that is known.
func bundleWorks(ctx context.Context, f *backendFacts, bundle []byte) (string, bool) {
	if sc := servingCertFor(ctx, f); sc.err == nil {
		roots, err := f.review.certs.ParseBundle(bundle)
		if err != nil {
			return "", false
		}
		if f.review.certs.VerifyServing(roots, sc.chain, f.dnsName, f.review.now()) != nil {
			return "", false
		}
		return "verifies the serving certificate of " + f.svcName(), true
	}
	if f.available() {
		return "is what APIService " + f.api.Name + " is Available with", true
	}
	return "", false
}

// writerOf names who made the write: its field manager, else its user.
func writerOf(r *Review) string {
	switch {
	case r.FieldManager != "":
		return "field manager " + r.FieldManager
	case r.User != "":
		return "user " + r.User
	default:
		return "the writer"
	}
}
