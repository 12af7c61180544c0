package webhook

import (
	"bytes"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// checkEncoding fails unless encodeReview gives json.Marshal's bytes.
func checkEncoding(t *testing.T, apiVersion string, resp *admissionv1.AdmissionResponse) {
	t.Helper()
	got, err := encodeReview(apiVersion, resp)
	if err != nil {
		t.Fatal(err)
	}
	out := admissionv1.AdmissionReview{Response: resp}
	out.APIVersion, out.Kind = apiVersion, "AdmissionReview"
	want, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeReview:\n%s\njson.Marshal:\n%s", got, want)
	}
}

// TestEncodeReview: every answer the handlers give, and the ones that
// take json.Marshal's path, encode as json.Marshal encodes them.
func TestEncodeReview(t *testing.T) {
	patch := admissionv1.PatchTypeJSONPatch
	hostile := "a\"b\\c\x00\x1f\b\f\n\r\t<>&\u2028\u2029\xff\xfe\u00e9\U0001F600\x7f"
	for name, resp := range map[string]*admissionv1.AdmissionResponse{
		"allowed":   {UID: "u1", Allowed: true, Result: &metav1.Status{Code: 200}},
		"no status": {UID: "u1", Allowed: true},
		"denied": {UID: "u2", Result: &metav1.Status{Code: 403, Reason: metav1.StatusReasonForbidden,
			Message: "apiservice-guard: [rule] it breaks\nthe other reason"}},
		"warnings": {UID: "u3", Allowed: true, Result: &metav1.Status{Code: 200}, Warnings: []string{"[a] one", "[b] two"}},
		"hostile":  {UID: types.UID(hostile), Result: &metav1.Status{Status: hostile, Message: hostile, Reason: metav1.StatusReason(hostile), Code: -1}, Warnings: []string{hostile, ""}},
		"errored":  {UID: "u4", Result: &metav1.Status{Code: 500, Message: "panic: x [recovered]"}},
		// json.Marshal's path:
		"patch":    {UID: "u5", Allowed: true, Patch: []byte(`[{"op":"add"}]`), PatchType: &patch},
		"audit":    {UID: "u6", Allowed: true, AuditAnnotations: map[string]string{"b": "2", "a": "1"}},
		"details":  {UID: "u7", Result: &metav1.Status{Code: 400, Details: &metav1.StatusDetails{Name: "x"}}},
		"typemeta": {UID: "u8", Result: &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status"}, Code: 400}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, v := range []string{"admission.k8s.io/v1", "admission.k8s.io/v1beta1", ""} {
				checkEncoding(t, v, resp)
			}
		})
	}
}

// FuzzEncodeReview: any text in any field encodes as json.Marshal encodes
// it.
func FuzzEncodeReview(f *testing.F) {
	f.Add("uid", "Failure", "message", "Forbidden", "warning", "\xff<\u2028>", int32(403), true, uint8(0))
	f.Add("\x00", "", "", "", "", "", int32(0), false, uint8(7))
	f.Fuzz(func(t *testing.T, uid, status, message, reason, w1, w2 string, code int32, allowed bool, shape uint8) {
		resp := &admissionv1.AdmissionResponse{UID: types.UID(uid), Allowed: allowed}
		if shape&1 == 0 {
			resp.Result = &metav1.Status{Status: status, Message: message, Reason: metav1.StatusReason(reason), Code: code}
		}
		if shape&2 == 0 {
			resp.Warnings = []string{w1, w2}
		}
		if shape&4 != 0 {
			resp.AuditAnnotations = map[string]string{w1: w2}
		}
		checkEncoding(t, reason, resp)
	})
}

// BenchmarkEncodeReview compares encodeReview with json.Marshal on an
// allowed answer with two warnings, in one run.
func BenchmarkEncodeReview(b *testing.B) {
	resp := &admissionv1.AdmissionResponse{UID: "0b3f6c1e-5a7d-4e0c-9c1a-2f4d5e6a7b8c", Allowed: true, Result: &metav1.Status{Code: 200},
		Warnings: []string{"[apiservice-insecure-skip-tls] APIService v1beta1.metrics.k8s.io skips TLS verification", "[x] y"}}
	b.Run("encodeReview", func(b *testing.B) {
		for b.Loop() {
			_, _ = encodeReview("admission.k8s.io/v1", resp)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			out := admissionv1.AdmissionReview{Response: resp}
			out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
			_, _ = json.Marshal(out)
		}
	})
}
