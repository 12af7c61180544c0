package webhook_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// TestHostileOutput: objects built to be large (60,000 except entries,
// 5,000 rules, a bundle of 512 certificates, 20,000 keys) are judged in
// time; text an attacker puts into an object (keys, values, names, PEM
// block types) comes back over TLS in denials and warnings with its
// terminal control characters escaped (ESC, BEL, CR, U+202E) and capped: a
// denial at 4 KiB, a warning at 256 bytes. A good review is answered
// afterwards.
func TestHostileOutput(t *testing.T) {
	srv := newServer(t)
	okCA, err := certs.NewCA("hostile-output", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const evil = "\x1b[2J\x1b]0;pwned\x07\r\u202Eevil"
	js := func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }
	// YAML forbids raw control characters, but its double-quoted keys
	// spell them as escapes: \e (ESC), \a (BEL), \r.
	manyUnknown := func(n int) string {
		var b strings.Builder
		b.WriteString("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n")
		for i := range n {
			fmt.Fprintf(&b, "  \"\\e[2J\\a\\r\u202Eevil%d\": 1\n", i)
		}
		return js(b.String())
	}
	netpol := func(spec string) []byte { return netpolCreate("shop", "p", spec) }
	except := exceptList(60000)
	var bundle strings.Builder
	for range certs.MaxBundleCertificates {
		bundle.Write(okCA.CertPEM())
	}
	manyKeys := make([]string, 20000)
	for i := range manyKeys {
		manyKeys[i] = fmt.Sprintf(`"key-%d":"value"`, i)
	}
	tests := []struct {
		name     string
		body     []byte
		allowed  bool
		wantText string
	}{
		{"a NetworkPolicy of 60,000 except entries",
			netpol(`{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":[` + strings.Join(except, ",") + `]}}]}]}`), true, ""},
		{"a NetworkPolicy of 5,000 ingress rules with a port range each",
			netpol(`{"podSelector":{},"ingress":[` + strings.TrimSuffix(strings.Repeat(`{"ports":[{"port":1000,"endPort":65000}]},`, 5000), ",") + `]}`), true, ""},
		{"a caBundle of as many certificates as a bundle may hold",
			apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString([]byte(bundle.String())), 1)), true, ""},
		{"a worker-config of 20,000 keys",
			k0sRequest("{"+strings.Join(manyKeys, ",")+"}", ""), true, ""},
		{"20,000 unknown ClusterConfig fields with control characters in their names",
			k0sRequest(`{"k0s.yaml":"`+manyUnknown(20000)+`"}`, ""), false, "k0s refuses unknown fields"},
		{"a worker-config konnectivity value with control characters",
			k0sRequest(`{"konnectivity":"`+js(evil)+`"}`, ""), false, "data[konnectivity]"},
		{"a caBundle whose PEM block type carries control characters",
			apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString([]byte("-----BEGIN "+evil+"-----\nAAAA\n-----END "+evil+"-----\n")), 1)), false, "[apiservice-cabundle-invalid]"},
		{"a Service name with control characters, in a warning",
			apiServiceRequest(`{"group":"external.metrics.k8s.io","version":"v1beta1","groupPriorityMinimum":100,"versionPriority":100,` +
				`"service":{"namespace":"keda","name":"` + js(evil) + strings.Repeat("x", 400) + `","port":443},"insecureSkipTLSVerify":true}`), true, ""},
		{"a ConfigMap key with control characters and a ClusterConfig that does not parse",
			k0sRequest(`{"`+js(evil)+`.yaml":"apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec: {\n"}`, ""), false, "not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, resp := post(t, srv, "application/json", tt.body)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("answered in %s", took)
			}
			if resp.Allowed != tt.allowed || !strings.Contains(resp.Result.Message, tt.wantText) {
				t.Fatalf("allowed=%v message %.300q; want allowed=%v with %q", resp.Allowed, resp.Result.Message, tt.allowed, tt.wantText)
			}
			if len(resp.Result.Message) > 4096 {
				t.Errorf("denial of %d bytes", len(resp.Result.Message))
			}
			texts := append([]string{resp.Result.Message}, resp.Warnings...)

			for _, s := range texts {
				if strings.ContainsAny(s, "\x1b\x07\r\u202E") {
					t.Errorf("control characters reach the answer: %.300q", s)
				}
			}
			for _, w := range resp.Warnings {
				if len(w) > 256 {
					t.Errorf("warning of %d bytes", len(w))
				}
			}
		})
	}
	if _, resp := post(t, srv, "application/json", apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString(okCA.CertPEM()), 1))); !resp.Allowed {
		t.Fatalf("a good review afterwards: %+v", resp.Result)
	}
}

// TestExpensivePoliciesWhereABackendRuns: large NetworkPolicies in the
// namespace of an aggregated API's backend (metrics-server, reached from the
// control plane's 192.0.2.0/24 on 10250) are compiled and judged, not only
// passed over, in time: 60,001 except entries with and without the control
// plane among them, and 5,000 ingress rules of port ranges that miss 10250.
// A good review is answered afterwards.
func TestExpensivePoliciesWhereABackendRuns(t *testing.T) {
	const dir = "../examples/networkpolicy-default-deny/"
	view, err := cluster.LoadStatic(dir + "backend.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := policies.Config{Mode: policies.ModeEnforce}
	cfg.ControlPlane.CIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	engine, err := policies.NewEngine(cfg, policies.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(webhook.Handler(webhook.NewValidator(webhook.Options{Engine: engine, View: view})))
	t.Cleanup(srv.Close)

	netpol := func(spec string) []byte { return netpolCreate("kube-system", "big", spec) }
	except := exceptList(60000)
	exceptAll := func(more string) []byte {
		return netpol(`{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"0.0.0.0/0","except":[` + strings.Join(except, ",") + more + `]}}]}]}`)
	}
	tests := []struct {
		name    string
		body    []byte
		allowed bool
	}{
		{"60,001 except entries, the control plane's among them", exceptAll(`,"192.0.2.0/24"`), false},
		{"60,001 except entries, the control plane's not among them", exceptAll(`,"10.255.255.255/32"`), true},
		{"5,000 ingress rules of port ranges that miss 10250",
			netpol(`{"podSelector":{},"ingress":[` + strings.TrimSuffix(strings.Repeat(`{"ports":[{"port":1000,"endPort":10249}]},`, 5000), ",") + `]}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, resp := post(t, srv, "application/json", tt.body)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("answered in %s", took)
			}
			if code != 200 || resp.Allowed != tt.allowed {
				t.Fatalf("HTTP %d allowed=%v %.300q, want allowed=%v", code, resp.Allowed, resp.Result.Message, tt.allowed)
			}
			if !tt.allowed && !strings.Contains(resp.Result.Message, "[networkpolicy-blocks-apiservice]") {
				t.Errorf("denial %.300q does not name the rule", resp.Result.Message)
			}
			if len(resp.Result.Message) > 4096 {
				t.Errorf("denial of %d bytes", len(resp.Result.Message))
			}
			for _, w := range resp.Warnings {
				if strings.Contains(w, "[review-budget]") {
					t.Errorf("not judged: %s", w)
				}
			}
		})
	}
	if _, resp := post(t, srv, "application/json", netpol(`{"podSelector":{"matchLabels":{"app":"other"}},"policyTypes":["Ingress"]}`)); !resp.Allowed {
		t.Fatalf("a good review afterwards: %+v", resp.Result)
	}
}

// netpolCreate is the AdmissionReview of a CREATE of NetworkPolicy
// namespace/name with spec (JSON), as a user writes it.
func netpolCreate(namespace, name, spec string) []byte {
	return review(`{"uid":"u3","kind":{"group":"networking.k8s.io","version":"v1","kind":"NetworkPolicy"},` +
		`"resource":{"group":"networking.k8s.io","version":"v1","resource":"networkpolicies"},"namespace":"` + namespace + `","name":"` + name + `","operation":"CREATE",` +
		`"userInfo":{"username":"mallory"},"object":{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"` + name + `","namespace":"` + namespace + `"},"spec":` + spec + `}}`)
}

// exceptList is n distinct /32 CIDRs in 10.0.0.0/8, as JSON strings.
func exceptList(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`"10.%d.%d.%d/32"`, i>>16, (i>>8)&255, i&255)
	}
	return out
}
