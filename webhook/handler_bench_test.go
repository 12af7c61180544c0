package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"apiservice-guard.io/apiservice-guard/webhook"
)

// ordinaryReview is an AdmissionReview of a NetworkPolicy CREATE in a
// namespace where no backend runs: most reviews in a cluster.
const ordinaryReview = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b1",` +
	`"kind":{"group":"networking.k8s.io","version":"v1","kind":"NetworkPolicy"},` +
	`"resource":{"group":"networking.k8s.io","version":"v1","resource":"networkpolicies"},` +
	`"namespace":"shop","name":"deny","operation":"CREATE","userInfo":{"username":"bench","groups":["system:masters","system:authenticated"]},` +
	`"object":{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"shop",` +
	`"uid":"0b5e7f5c-4c9e-4b36-9d0e-3f5d2b8f3c11","creationTimestamp":"2026-12-03T10:00:00Z","managedFields":[{"manager":"kubectl","operation":"Update",` +
	`"apiVersion":"networking.k8s.io/v1","time":"2026-12-03T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:podSelector":{},"f:policyTypes":{}}}}]},` +
	`"spec":{"podSelector":{},"policyTypes":["Ingress"]}},"oldObject":null,"dryRun":false,` +
	`"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions","fieldManager":"kubectl"}}}`

// BenchmarkHandler is the handler as the API server calls it (envelope
// check, decoding, review, response), without TLS and network: the
// in-process cost of an ordinary-namespace NetworkPolicy review.
func BenchmarkHandler(b *testing.B) {
	engine, view := enforcing(b, kedaAPIService())
	h := webhook.Handler(webhook.NewValidator(webhook.Options{Engine: engine, View: view}))
	body := []byte(ordinaryReview)
	post := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, webhook.ValidatePath+"?timeout=10s", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(); rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"allowed":true`)) {
		b.Fatalf("HTTP %d: %s", rec.Code, rec.Body.Bytes())
	}
	b.ReportAllocs()
	for b.Loop() {
		post()
	}
}
