package webhook

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// TestFieldManagerFromOptions: the write's field manager comes from the
// request's options when they name one; options without one are not
// decoded, and a field manager of the wrong type is the client's error.
func TestFieldManagerFromOptions(t *testing.T) {
	d := newDecoder(cluster.NewScheme())
	for _, c := range []struct {
		options, want string
		wantErr       bool
	}{
		{`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply"}`, "kubectl-client-side-apply", false},
		{`{"kind":"PatchOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"helm","force":true}`, "helm", false},
		{`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}`, "", false},
		{``, "", false},
		{`{"fieldManager":7}`, "", true},
	} {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: "ns", Name: "cm",
			Operation: admissionv1.Update, Options: runtime.RawExtension{Raw: []byte(c.options)},
			Object: runtime.RawExtension{Raw: []byte(`{}`)}, OldObject: runtime.RawExtension{Raw: []byte(`{}`)},
		}}
		r, err := d.review(req)
		if (err != nil) != c.wantErr {
			t.Fatalf("options %s: error %v, want error %v", c.options, err, c.wantErr)
		}
		if err == nil && r.FieldManager != c.want {
			t.Errorf("options %s: field manager %q, want %q", c.options, r.FieldManager, c.want)
		}
	}
}
