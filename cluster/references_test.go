package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// referrers are an APIService served from namespace a, validating webhooks
// served from a and b (and one by URL), a mutating webhook served from b, a
// CRD converted by a webhook in c, and a CRD without conversion webhook.
func referrers(suffix, a, b, c string) []client.Object {
	svc := func(ns, name string) *admissionregv1.ServiceReference {
		return &admissionregv1.ServiceReference{Namespace: ns, Name: name, Path: ptr.To("/validate"), Port: ptr.To[int32](9443)}
	}
	rules := []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create},
		Rule: admissionregv1.Rule{APIGroups: []string{"refs.example.com"}, APIVersions: []string{"*"}, Resources: []string{"widgets"}}}}
	vwh := func(name string, cc admissionregv1.WebhookClientConfig) admissionregv1.ValidatingWebhook {
		return admissionregv1.ValidatingWebhook{Name: name + ".refs.example.com", ClientConfig: cc, Rules: rules,
			FailurePolicy: ptr.To(admissionregv1.Ignore), SideEffects: ptr.To(admissionregv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"}}
	}
	group := "refs" + suffix + ".example.com"
	crd := func(plural string, conversion *apiextensionsv1.CustomResourceConversion) *apiextensionsv1.CustomResourceDefinition {
		return &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: group, Scope: apiextensionsv1.NamespaceScoped, Conversion: conversion,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Kind: "K" + plural, ListKind: "K" + plural + "List"},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object"}}}},
			},
		}
	}
	return []client.Object{
		&apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1beta1." + group}, Spec: apiregv1.APIServiceSpec{
			Group: group, Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100,
			Service: &apiregv1.ServiceReference{Namespace: a, Name: "adapter", Port: ptr.To[int32](443)}}},
		&admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "refs" + suffix}, Webhooks: []admissionregv1.ValidatingWebhook{
			vwh("va"+suffix, admissionregv1.WebhookClientConfig{Service: svc(a, "hooks")}),
			vwh("vb"+suffix, admissionregv1.WebhookClientConfig{Service: svc(b, "hooks")}),
			vwh("vurl"+suffix, admissionregv1.WebhookClientConfig{URL: ptr.To("https://hooks.example.com/validate")}),
		}},
		&admissionregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "refs" + suffix}, Webhooks: []admissionregv1.MutatingWebhook{{
			Name: "mb" + suffix + ".refs.example.com", ClientConfig: admissionregv1.WebhookClientConfig{Service: svc(b, "mutator")}, Rules: rules,
			FailurePolicy: ptr.To(admissionregv1.Ignore), SideEffects: ptr.To(admissionregv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"},
		}}},
		crd("converted", &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter, Webhook: &apiextensionsv1.WebhookConversion{
			ConversionReviewVersions: []string{"v1"},
			ClientConfig:             &apiextensionsv1.WebhookClientConfig{Service: &apiextensionsv1.ServiceReference{Namespace: c, Name: "converter", Port: ptr.To[int32](8443)}},
		}}),
		crd("plain", nil),
	}
}

// wantReferences are referrers' references in namespace ns ("" for all).
func wantReferences(suffix, a, b, c, ns string) []ServiceReference {
	group := "refs" + suffix + ".example.com"
	all := []ServiceReference{
		{Kind: KindAPIService, Name: "v1beta1." + group, Referrer: "v1beta1." + group, Namespace: a, Service: "adapter", Port: ptr.To[int32](443)},
		{Kind: KindValidatingWebhookConfiguration, Name: "va" + suffix + ".refs.example.com", Referrer: "refs" + suffix, Namespace: a, Service: "hooks", Port: ptr.To[int32](9443)},
		{Kind: KindValidatingWebhookConfiguration, Name: "vb" + suffix + ".refs.example.com", Referrer: "refs" + suffix, Namespace: b, Service: "hooks", Port: ptr.To[int32](9443)},
		{Kind: KindMutatingWebhookConfiguration, Name: "mb" + suffix + ".refs.example.com", Referrer: "refs" + suffix, Namespace: b, Service: "mutator", Port: ptr.To[int32](9443)},
		{Kind: KindCustomResourceDefinition, Name: "converted." + group, Referrer: "converted." + group, Namespace: c, Service: "converter", Port: ptr.To[int32](8443)},
	}
	return slices.DeleteFunc(all, func(r ServiceReference) bool { return ns != "" && r.Namespace != ns })
}

func TestStaticServiceReferences(t *testing.T) {
	s := newStatic()
	scheme := NewScheme()
	for _, o := range referrers("", "a", "b", "c") {
		gvks, _, err := scheme.ObjectKinds(o)
		if err != nil {
			t.Fatal(err)
		}
		s.Add(Loaded{Object: o, GVK: gvks[0], Source: "test"})
	}
	for _, ns := range []string{"", "a", "b", "c", "none"} {
		got, err := s.ServiceReferences(t.Context(), ns)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantReferences("", "a", "b", "c", ns), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ServiceReferences(%q) (-want +got):\n%s", ns, diff)
		}
	}
}

// TestLiveServiceReferences: by namespace through the index, and all of
// them, as Static answers for the same objects (up to order within a kind).
func TestLiveServiceReferences(t *testing.T) {
	cfg := envConfig(t)
	suffix := unique("")
	a, b, c := unique("refs-a"), unique("refs-b"), unique("refs-c")
	objs := referrers(suffix, a, b, c)
	create(t, adminClient(t, cfg), objs...)
	l := startLive(t, cfg, LiveOptions{})
	ctx := t.Context()
	for _, ns := range []string{a, b, c, unique("refs-none")} {
		got, err := l.ServiceReferences(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantReferences(suffix, a, b, c, ns), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ServiceReferences(%q) (-want +got):\n%s", ns, diff)
		}
	}
	all, err := l.ServiceReferences(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range wantReferences(suffix, a, b, c, "") {
		if !slices.ContainsFunc(all, func(r ServiceReference) bool { return cmp.Equal(r, want) }) {
			t.Errorf("ServiceReferences(\"\") lacks %+v", want)
		}
	}
	kinds := []string{KindAPIService, KindValidatingWebhookConfiguration, KindMutatingWebhookConfiguration, KindCustomResourceDefinition}
	if !slices.IsSortedFunc(all, func(x, y ServiceReference) int { return slices.Index(kinds, x.Kind) - slices.Index(kinds, y.Kind) }) {
		t.Errorf("ServiceReferences(\"\") is not in kind order: %+v", all)
	}
	// A deleted referrer leaves the index.
	if err := adminClient(t, cfg).Delete(ctx, objs[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool {
		got, _ := l.ServiceReferences(ctx, a)
		return len(got) == 1 && got[0].Kind == KindValidatingWebhookConfiguration
	})
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for range 100 {
		if cond() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("condition not met after 10s")
}
