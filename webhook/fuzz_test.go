package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"apiservice-guard.io/apiservice-guard/webhook"
)

// FuzzReview sends arbitrary bodies to the validating handler: it must never
// panic (which would surface as a 500) and always answer an AdmissionReview.
func FuzzReview(f *testing.F) {
	f.Add(apiServiceRequest(`{"caBundle":"aGVsbG8="}`))
	f.Add(apiServiceRequest(`{"service":{"namespace":"a","name":"b","port":1},"insecureSkipTLSVerify":true}`))
	f.Add(review(`{"uid":"u","kind":{"group":"apiregistration.k8s.io","version":"v1","kind":"APIService"},"operation":"DELETE","oldObject":{}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`))
	f.Add(k0sRequest(`{"konnectivity":"{\"agentPort\":8132}"}`, ""))
	f.Add(k0sRequest(`{"k0s.yaml":"apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network: {provider: calico}\n"}`, ""))
	f.Add(k0sRequest("", `{"konnectivity":{"agentPort":8132,"adminPort":8132},"network":{"podCIDR":"10.244.0.0/16"}}`))
	h := webhook.Handler(webhook.NewValidator(emptyCluster(f)))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, webhook.ValidatePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		data, _ := io.ReadAll(rec.Body)
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(data, &ar); err != nil || ar.Response == nil {
			t.Fatalf("answer is not an AdmissionReview: %v: %s", err, data)
		}
		if ar.Response.Result != nil && ar.Response.Result.Code >= 500 {
			t.Fatalf("server error for %q: %s", body, ar.Response.Result.Message)
		}
	})
}
