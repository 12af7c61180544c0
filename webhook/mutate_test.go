package webhook_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	jsonpatch "gomodules.xyz/jsonpatch/v2"
	jsonpatchv4 "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// TestMutatorPatch: the mutator's JSON patch, applied to the object as the
// API server sent it, sets the injected caBundle and clears
// insecureSkipTLSVerify, and touches nothing else; a second call, on the
// patched object, answers without a patch.
func TestMutatorPatch(t *testing.T) {
	ca, err := certs.NewCA("keda-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "keda", Name: "ca",
			Annotations: map[string]string{cmapi.AllowsInjectionFromSecretAnnotation: "true"}},
		Data: map[string][]byte{"ca.crt": ca.CertPEM()},
	}
	engine, view := enforcing(t, secret)
	m := webhook.NewMutator(webhook.Options{Engine: engine, View: view})

	// As a client would write it: fields in its own order, an unknown
	// (future) field the guard's types do not know, insecureSkipTLSVerify.
	raw := []byte(`{"kind":"APIService","apiVersion":"apiregistration.k8s.io/v1",` +
		`"metadata":{"name":"v1beta1.external.metrics.k8s.io","annotations":{"cert-manager.io/inject-ca-from-secret":"keda/ca"}},` +
		`"spec":{"service":{"namespace":"keda","name":"keda-operator-metrics-apiserver","port":443},"group":"external.metrics.k8s.io",` +
		`"version":"v1beta1","insecureSkipTLSVerify":true,"groupPriorityMinimum":100,"versionPriority":100,"futureField":"kept"}}`)
	resp := m.Handle(t.Context(), apiServiceAdmission(raw, nil))
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("allowed=%v patches=%v result=%+v, want a patch", resp.Allowed, resp.Patches, resp.Result)
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "[apiservice-cabundle-inject] caBundle set from ca.crt of Secret keda/ca; insecureSkipTLSVerify cleared") {
		t.Errorf("warnings %q, want the injection said", resp.Warnings)
	}
	patched := applyPatch(t, raw, resp.Patches)
	var got map[string]any
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	spec := got["spec"].(map[string]any)
	if spec["futureField"] != "kept" || spec["groupPriorityMinimum"] != float64(100) {
		t.Errorf("patch touched other fields: %s", patched)
	}
	if v, set := spec["insecureSkipTLSVerify"]; set && v != false {
		t.Errorf("insecureSkipTLSVerify = %v after the patch", v)
	}
	var api apiregv1.APIService
	if err := json.Unmarshal(patched, &api); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(api.Spec.CABundle, ca.CertPEM()) {
		t.Errorf("caBundle after the patch:\n%s\nwant:\n%s", api.Spec.CABundle, ca.CertPEM())
	}

	// Reinvoked on its own result (reinvocationPolicy: IfNeeded): no patch.
	again := m.Handle(t.Context(), apiServiceAdmission(patched, nil))
	if !again.Allowed || len(again.Patches) > 0 || len(again.Warnings) > 0 {
		t.Errorf("second call: allowed=%v patches=%v warnings=%q, want a silent no-op", again.Allowed, again.Patches, again.Warnings)
	}

	// A malformed object is a 400, not a patch.
	bad := m.Handle(t.Context(), apiServiceAdmission([]byte(`{"kind":"APIService","apiVersion":"apiregistration.k8s.io/v1","metadata":{"name":"x"},"spec":{"caBundle":7}}`), nil))
	if bad.Allowed || bad.Result == nil || bad.Result.Code != 400 {
		t.Errorf("malformed object: allowed=%v result=%+v, want 400", bad.Allowed, bad.Result)
	}
}

// TestMutatorNamesFieldManager: the request's field manager (from its
// options) is who apiservice-cabundle-preserve names.
func TestMutatorNamesFieldManager(t *testing.T) {
	engine, view := enforcing(t)
	m := webhook.NewMutator(webhook.Options{Engine: engine, View: view})
	ca, err := certs.NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	old := &apiregv1.APIService{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService"},
		ObjectMeta: metav1.ObjectMeta{Name: "v1beta1.metrics.k8s.io"},
		Spec: apiregv1.APIServiceSpec{Service: &apiregv1.ServiceReference{Namespace: "kube-system", Name: "metrics-server"},
			Group: "metrics.k8s.io", Version: "v1beta1", CABundle: ca.CertPEM(), GroupPriorityMinimum: 100, VersionPriority: 100},
		Status: apiregv1.APIServiceStatus{Conditions: []apiregv1.APIServiceCondition{{Type: apiregv1.Available, Status: apiregv1.ConditionTrue}}},
	}
	emptied := old.DeepCopy()
	emptied.Spec.CABundle = nil
	req := apiServiceAdmission(mustJSON(t, emptied), mustJSON(t, old))
	req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"PatchOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"argocd-controller"}`)}
	resp := m.Handle(t.Context(), req)
	if len(resp.Patches) == 0 || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "field manager argocd-controller tried to empty it") {
		t.Errorf("patches=%v warnings=%q, want the caBundle kept and argocd-controller named", resp.Patches, resp.Warnings)
	}
}

func apiServiceAdmission(obj, old []byte) admission.Request {
	op := admissionv1.Create
	if old != nil {
		op = admissionv1.Update
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "u",
		Kind:      metav1.GroupVersionKind{Group: "apiregistration.k8s.io", Version: "v1", Kind: "APIService"},
		Resource:  metav1.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"},
		Name:      "v1beta1.external.metrics.k8s.io",
		Operation: op,
		Object:    runtime.RawExtension{Raw: obj},
		OldObject: runtime.RawExtension{Raw: old},
	}}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyPatch applies JSON patch operations to doc with the library the API
// server applies webhook patches with.
func applyPatch(t *testing.T, doc []byte, ops []jsonpatch.JsonPatchOperation) []byte {
	t.Helper()
	p, err := jsonpatchv4.DecodePatch(mustJSON(t, ops))
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("applying %s: %v", mustJSON(t, ops), err)
	}
	return out
}
