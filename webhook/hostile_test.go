package webhook_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// newServer serves a validator over TLS on 127.0.0.1, with an empty cluster.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	return newServerWith(t, webhook.Options{})
}

// emptyCluster is validator options with an empty static view and an
// engine of every default rule, plus extra rules, in enforce mode.
func emptyCluster(tb testing.TB, extra ...policies.Rule) webhook.Options {
	tb.Helper()
	view, err := cluster.LoadStatic()
	if err != nil {
		tb.Fatal(err)
	}
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, append(policies.DefaultRules(), extra...))
	if err != nil {
		tb.Fatal(err)
	}
	return webhook.Options{Engine: engine, View: view}
}

// newServerWith is newServer with options (Engine and View are set).
func newServerWith(t *testing.T, o webhook.Options) *httptest.Server {
	t.Helper()
	c := emptyCluster(t)
	o.Engine, o.View = c.Engine, c.View
	srv := httptest.NewTLSServer(webhook.Handler(webhook.NewValidator(o)))
	t.Cleanup(srv.Close)
	return srv
}

// post sends body and decodes the AdmissionReview answer.
func post(t *testing.T, srv *httptest.Server, contentType string, body []byte) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	return postTo(t, srv, webhook.ValidatePath, contentType, body)
}

// postTo is post to path, which may carry a query.
func postTo(t *testing.T, srv *httptest.Server, path, contentType string, body []byte) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		t.Fatalf("answer is not an AdmissionReview (HTTP %d): %v", resp.StatusCode, err)
	}
	if ar.Response == nil {
		t.Fatalf("AdmissionReview without response (HTTP %d)", resp.StatusCode)
	}
	return resp.StatusCode, ar.Response
}

// review wraps a request JSON fragment in an AdmissionReview envelope.
func review(request string) []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":` + request + `}`)
}

// apiServiceRequest is a CREATE of an APIService with the given spec JSON.
func apiServiceRequest(spec string) []byte {
	return review(`{"uid":"u1","kind":{"group":"apiregistration.k8s.io","version":"v1","kind":"APIService"},
		"resource":{"group":"apiregistration.k8s.io","version":"v1","resource":"apiservices"},
		"name":"v1beta1.external.metrics.k8s.io","operation":"CREATE","userInfo":{"username":"mallory"},
		"object":{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1beta1.external.metrics.k8s.io"},"spec":` + spec + `}}`)
}

// k0sRequest is a CREATE in kube-system of a ConfigMap with data, or (data
// "") of the ClusterConfig "k0s" with spec.
func k0sRequest(data, spec string) []byte {
	kind := `"kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"}`
	obj := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"worker-config-default-1.37","namespace":"kube-system"},"data":` + data + `}`
	if data == "" {
		kind = `"kind":{"group":"k0s.k0sproject.io","version":"v1beta1","kind":"ClusterConfig"},"resource":{"group":"k0s.k0sproject.io","version":"v1beta1","resource":"clusterconfigs"}`
		obj = `{"apiVersion":"k0s.k0sproject.io/v1beta1","kind":"ClusterConfig","metadata":{"name":"k0s","namespace":"kube-system"},"spec":` + spec + `}`
	}
	return review(`{"uid":"u2",` + kind + `,"namespace":"kube-system","operation":"CREATE","userInfo":{"username":"mallory"},"object":` + obj + `}`)
}

const okSpec = `{"group":"external.metrics.k8s.io","version":"v1beta1","groupPriorityMinimum":100,"versionPriority":100,` +
	`"service":{"namespace":"keda","name":"keda-operator-metrics-apiserver","port":443},"caBundle":"%s"}`

// aliasBomb is a YAML document whose aliases expand a billion-fold, as a
// JSON string's contents.
var aliasBomb = func() string {
	lines := []string{`a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]`}
	for i := 1; i < 9; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 9), ",")
		lines = append(lines, fmt.Sprintf("a%d: &a%d [%s]", i, i, refs))
	}
	return strings.Join(append(lines, "kind: ClusterConfig # k0s.k0sproject.io/v1beta1"), `\n`)
}()

func TestHostileRequests(t *testing.T) {
	srv := newServer(t)
	ca, err := certs.NewCA("hostile-test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	validBundle := base64.StdEncoding.EncodeToString(ca.CertPEM())
	keyBundle := base64.StdEncoding.EncodeToString(append(ca.CertPEM(), ca.KeyPEM()...))
	garbage := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"))
	apiKind := `"kind":{"group":"apiregistration.k8s.io","version":"v1","kind":"APIService"}`
	tooMany := base64.StdEncoding.EncodeToString(bytes.Repeat(ca.CertPEM(), certs.MaxBundleCertificates+1))
	tests := []struct {
		name        string
		contentType string
		body        []byte
		wantCode    int32  // expected result code; 403 is a denial
		wantText    string // must appear in the result message
	}{
		{"not JSON", "", []byte("this is not json"), 400, "not a JSON AdmissionReview"},
		{"JSON array", "", []byte(`[1,2,3]`), 400, "not a JSON AdmissionReview"},
		{"empty object", "", []byte(`{}`), 400, "want an admission.k8s.io/v1 AdmissionReview"},
		{"a Pod instead of a review", "", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`), 400, "unknown field"},
		{"review without request", "", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "has no request"},
		{"request without uid", "", review(`{` + apiKind + `,"operation":"CREATE"}`), 400, "has no uid"},
		{"unknown envelope field", "", review(`{"uid":"u","bogus":true}`), 400, `unknown field "request.bogus"`},
		{"duplicate field", "", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","kind":"AdmissionReview","request":{"uid":"u"}}`), 400, "duplicate field"},
		{"duplicate field inside the object", "", review(`{"uid":"u",` + apiKind + `,"operation":"CREATE","object":{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","spec":{},"spec":{}}}`), 400, `duplicate field "request.object.spec"`},
		{"wrong content type", "text/plain", apiServiceRequest(strings.Replace(okSpec, "%s", validBundle, 1)), 400, "expected application/json"},
		{"body over the size limit", "", append(review(`{"uid":"u","name":"`), bytes.Repeat([]byte("a"), 8<<20)...), 413, "too large"},
		{"kind not reviewed", "", review(`{"uid":"u","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}}}`), 400, "does not review Deployment.apps"},
		{"no kind", "", review(`{"uid":"u","operation":"CREATE"}`), 400, "no kind"},
		{"CREATE without object", "", review(`{"uid":"u",` + apiKind + `,"operation":"CREATE"}`), 400, "no object"},
		{"DELETE without oldObject", "", review(`{"uid":"u",` + apiKind + `,"operation":"DELETE"}`), 400, "no oldObject"},
		{"CONNECT", "", review(`{"uid":"u",` + apiKind + `,"operation":"CONNECT"}`), 400, "not reviewed"},
		{"object of another kind", "", review(`{"uid":"u",` + apiKind + `,"operation":"CREATE","object":{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"n"}}}`), 400, "is a NetworkPolicy.networking.k8s.io"},
		{"object without apiVersion", "", review(`{"uid":"u",` + apiKind + `,"operation":"CREATE","object":{"metadata":{"name":"n"}}}`), 400, "decoding object"},
		{"object is a string", "", review(`{"uid":"u",` + apiKind + `,"operation":"CREATE","object":"hello"}`), 400, "decoding object"},
		{"object with wrong field types", "", apiServiceRequest(`{"service":{"port":"four-four-three"}}`), 400, "decoding object"},
		{"garbage PEM caBundle", "", apiServiceRequest(strings.Replace(okSpec, "%s", garbage, 1)), 403, "[apiservice-cabundle-invalid]"},
		{"caBundle that is not PEM", "", apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString([]byte("hello")), 1)), 403, "not PEM"},
		{"caBundle of more certificates than a bundle holds", "", apiServiceRequest(strings.Replace(okSpec, "%s", tooMany, 1)), 403, "more than 512 PEM blocks: not parsed"},
		{"private key in caBundle", "", apiServiceRequest(strings.Replace(okSpec, "%s", keyBundle, 1)), 403, "PRIVATE KEY"},
		{"empty caBundle, insecureSkipTLSVerify false", "", apiServiceRequest(strings.Replace(okSpec, `,"caBundle":"%s"`, `,"insecureSkipTLSVerify":false`, 1)), 403, "caBundle is empty"},
		// k0s configuration: what is wrong inside is a finding naming the
		// field, whatever the text holds.
		{"k0s: ClusterConfig spec of wrong types", "", k0sRequest("", `{"network":{"podCIDR":12}}`), 403, "spec.network.podCIDR: Invalid value: must be a string, not a number"},
		{"k0s: ClusterConfig spec a string", "", k0sRequest("", `"hello"`), 403, "spec: Invalid value: must be an object, not a string"},
		{"k0s: konnectivity not JSON", "", k0sRequest(`{"konnectivity":"not json {"}`, ""), 403, "data[konnectivity]"},
		{"k0s: ClusterConfig value not YAML", "", k0sRequest(`{"k0s.yaml":"apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec: {\n"}`, ""), 403, "data[k0s.yaml]: not valid YAML"},
		{"k0s: YAML alias bomb", "", k0sRequest(`{"k0s.yaml":"`+aliasBomb+`"}`, ""), 403, "excessive aliasing"},
		{"k0s: thousands of values naming a ClusterConfig, each an alias bomb", "", expensiveConfigMap(), 403, "more values name a ClusterConfig and were not parsed"},
		{"k0s: huge value", "", k0sRequest(`{"k0s.yaml":"kind: ClusterConfig # k0s.k0sproject.io `+strings.Repeat("x", 1<<20)+`"}`, ""), 403, "not parsed"},
		{"k0s: ConfigMap data of wrong type", "", k0sRequest(`{"konnectivity":1}`, ""), 400, "decoding object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			start := time.Now()
			_, resp := post(t, srv, ct, tt.body)
			// Well within the review budget (4 s), on a loaded 2-core machine.
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("answered in %s", took)
			}
			if len(resp.Result.Message) > 4096 {
				t.Errorf("message of %d bytes", len(resp.Result.Message))
			}
			if resp.Allowed {
				t.Fatalf("request was allowed; want code %d", tt.wantCode)
			}
			if resp.Result == nil || resp.Result.Code != tt.wantCode {
				t.Fatalf("result %+v, want code %d", resp.Result, tt.wantCode)
			}
			if !strings.Contains(resp.Result.Message, tt.wantText) {
				t.Errorf("message %q does not contain %q", resp.Result.Message, tt.wantText)
			}
		})
	}
	// The server is still serving: a well-formed review is answered (allowed
	// with a warning, since the backend Service is absent from the empty view).
	_, resp := post(t, srv, "application/json", apiServiceRequest(strings.Replace(okSpec, "%s", validBundle, 1)))
	if !resp.Allowed || resp.UID != "u1" {
		t.Fatalf("well-formed request after the hostile ones: allowed=%v uid=%q result=%+v", resp.Allowed, resp.UID, resp.Result)
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "[apiservice-backend-missing]") {
		t.Errorf("want the backend-missing warning, got %q", resp.Warnings)
	}
}

// An error answer names what is wrong with the request, with text from it
// (here an unknown field's name of 200 KB holding terminal escapes): made
// printable and capped.
func TestErrorAnswerTextIsPrintableAndCapped(t *testing.T) {
	srv := newServer(t)
	name := strings.Repeat(`a\u001b[31m`, 20000)
	for _, body := range [][]byte{
		review(`{"uid":"u","` + name + `":1}`),
		review(`{"uid":"u","kind":{"group":"` + name + `","version":"v1","kind":"Thing"},"operation":"CREATE","object":{}}`),
	} {
		code, resp := post(t, srv, "application/json", body)
		if code != 200 || resp.Allowed || resp.Result == nil || resp.Result.Code != 400 {
			t.Fatalf("HTTP %d, answer %+v; want a 400 answer", code, resp)
		}
		msg := resp.Result.Message
		if len(msg) > 1000 || strings.ContainsRune(msg, 0x1b) {
			t.Errorf("message of %d bytes, escape included: %v; want printable, at most 1,000", len(msg), strings.ContainsRune(msg, 0x1b))
		}
	}
}
