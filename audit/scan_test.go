package audit

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// loadExample loads files into a static view, with an engine whose
// control plane is at 192.0.2.0/24, as the examples expect.
func loadExample(t *testing.T, files ...string) (*cluster.Static, *policies.Engine) {
	t.Helper()
	view, err := cluster.LoadStatic(files...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := policies.Config{Mode: policies.ModeEnforce}
	cfg.ControlPlane.CIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	engine, err := policies.NewEngine(cfg, policies.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return view, engine
}

// staticScan loads files and reviews every APIService and NetworkPolicy in
// them as the audit does (see loadExample).
func staticScan(t *testing.T, files ...string) map[string]Verdict {
	t.Helper()
	view, engine := loadExample(t, files...)
	out := map[string]Verdict{}
	for _, l := range view.Documents() {
		kind := l.GVK.GroupKind()
		if kind != policies.APIServiceKind && kind != policies.NetworkPolicyKind {
			continue
		}
		obj := l.Object.DeepCopyObject()
		v, err := Review(t.Context(), engine, view, kind, obj)
		if err != nil {
			t.Fatalf("Review(%s): %v", l.Source, err)
		}
		out[kind.Kind+"/"+v.Object.Name] = v
	}
	return out
}

func rulesOf(fs []policies.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule+"="+string(f.Action))
	}
	return out
}

// TestReviewJudgesTheState: an existing default-deny in front of
// metrics-server is a finding on the policy (the set in force blocks the
// control plane) and on the APIService (unreachable now); with the fix in
// force, both pass. Every enabled rule that found nothing is a pass.
func TestReviewJudgesTheState(t *testing.T) {
	const dir = "../examples/networkpolicy-default-deny/"
	broken := staticScan(t, dir+"backend.yaml", dir+"broken.yaml")
	np := broken["NetworkPolicy/default-deny-ingress"]
	if diff := cmp.Diff([]string{"networkpolicy-blocks-apiservice=Enforce"}, rulesOf(np.Findings)); diff != "" {
		t.Errorf("default-deny findings (-want +got):\n%s", diff)
	}
	api := broken["APIService/v1beta1.metrics.k8s.io"]
	if !strings.Contains(strings.Join(rulesOf(api.Findings), ","), "apiservice-unreachable=Warn") {
		t.Errorf("APIService findings %v: want apiservice-unreachable", rulesOf(api.Findings))
	}
	for _, v := range []Verdict{np, api} {
		for _, p := range v.Passed {
			for _, f := range v.Findings {
				if f.Rule == p.Name {
					t.Errorf("%s: rule %s both passed and found %q", v.Object.Name, p.Name, f.Message)
				}
			}
		}
		if v.Object.UID != "" || v.Object.APIVersion == "" {
			t.Errorf("object reference %+v: want the apiVersion (static objects have no UID)", v.Object)
		}
	}
	if len(api.Passed) == 0 {
		t.Error("APIService: no rule passed")
	}

	fixed := staticScan(t, dir+"backend.yaml", dir+"fixed.yaml")
	for key, v := range fixed {
		for _, f := range v.Findings {
			if f.Rule == "networkpolicy-blocks-apiservice" || f.Rule == "apiservice-unreachable" {
				t.Errorf("%s with the fix: %s %s", key, f.Rule, f.Message)
			}
		}
	}
}

// TestContentAndReport: findings come first (fail for Enforce, warn for
// Warn and Audit) with the fix in properties, then a pass per silent rule;
// the maximum counts the rest; both APIs get the same results, OpenReports
// with a top-level source, each in its kind for the object's scope.
func TestContentAndReport(t *testing.T) {
	obj := corev1.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: "keda", Name: "deny", UID: types.UID("u-1")}
	v := Verdict{
		Object: obj,
		Findings: []policies.Finding{
			{Rule: "networkpolicy-blocks-apiservice", Action: policies.Enforce, Message: "blocks", Fix: "allow 6443"},
			{Rule: "networkpolicy-blocks-webhook", Action: policies.Audit, Message: "blocks a webhook", Detail: "more"},
		},
		Passed: []policies.EnabledRule{{Name: "networkpolicy-blocks-konnectivity", Action: policies.Warn}, {Name: "networkpolicy-invalid", Action: policies.Warn}},
	}
	sev := severities(policies.DefaultRules())
	c := contentOf(v, sev, 0)
	type row struct{ Rule, Result, Severity, Category, Message, Fix string }
	var got []row
	for _, r := range c.results {
		got = append(got, row{r.Rule, string(r.Result), string(r.Severity), r.Category, r.Description, r.Properties["fix"]})
	}
	want := []row{
		{"networkpolicy-blocks-apiservice", "fail", "high", "NetworkPolicy", "blocks", "allow 6443"},
		{"networkpolicy-blocks-webhook", "warn", "medium", "NetworkPolicy", "blocks a webhook", ""},
		{"networkpolicy-blocks-konnectivity", "pass", "medium", "NetworkPolicy", "", ""},
		{"networkpolicy-invalid", "pass", "medium", "NetworkPolicy", "", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if s := c.summary(); s != (openreports.ReportSummary{Pass: 2, Fail: 1, Warn: 1}) {
		t.Errorf("summary = %+v", s)
	}
	if c.results[1].Properties["detail"] != "more" || c.results[1].Properties["action"] != "Audit" {
		t.Errorf("properties = %v", c.results[1].Properties)
	}

	capped := contentOf(v, sev, 3)
	if len(capped.results) != 3 || capped.omitted != 1 || capped.hash() == c.hash() {
		t.Errorf("capped at 3: %d results, %d omitted", len(capped.results), capped.omitted)
	}
	if contentOf(v, sev, 0).hash() != c.hash() {
		t.Error("the same verdict hashes differently")
	}

	stamps := make([]metav1.Timestamp, len(c.results))
	for api, wantKind := range map[API]string{APIOpenReports: "openreports.io/v1alpha1/Report", APIWGPolicy: "wgpolicyk8s.io/v1alpha2/PolicyReport"} {
		u, err := buildReport(api, obj, c, stamps)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.GetAPIVersion() + "/" + u.GetKind(); got != wantKind {
			t.Errorf("%s: kind %s, want %s", api, got, wantKind)
		}
		if u.GetName() != "u-1" || u.GetNamespace() != "keda" || u.GetLabels()[LabelManagedBy] != "apiservice-guard" {
			t.Errorf("%s: metadata %s/%s %v", api, u.GetNamespace(), u.GetName(), u.GetLabels())
		}
		if refs := u.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "u-1" || refs[0].Kind != "NetworkPolicy" {
			t.Errorf("%s: owner references %v", api, refs)
		}
		src, hasSource, _ := unstructured.NestedString(u.Object, "source")
		if hasSource != (api == APIOpenReports) || (hasSource && src != Source) {
			t.Errorf("%s: top-level source %q (present %v)", api, src, hasSource)
		}
		results, _, _ := unstructured.NestedSlice(u.Object, "results")
		if len(results) != 4 {
			t.Errorf("%s: %d results", api, len(results))
		}
		if fail, _, _ := unstructured.NestedInt64(u.Object, "summary", "fail"); fail != 1 {
			t.Errorf("%s: summary.fail = %d", api, fail)
		}
	}
	clusterObj := corev1.ObjectReference{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: "v1beta1.metrics.k8s.io", UID: "u-2"}
	u, err := buildReport(APIWGPolicy, clusterObj, content{}, nil)
	if err != nil || u.GetKind() != "ClusterPolicyReport" || u.GetNamespace() != "" {
		t.Errorf("APIService report: %v, kind %s namespace %q", err, u.GetKind(), u.GetNamespace())
	}
}

func TestParseAPI(t *testing.T) {
	for _, s := range []string{"auto", "openreports", "wgpolicyk8s", "none"} {
		if a, err := ParseAPI(s); err != nil || string(a) != s {
			t.Errorf("ParseAPI(%q) = %q, %v", s, a, err)
		}
	}
	if _, err := ParseAPI("policyreport"); err == nil || !strings.Contains(err.Error(), "want auto, openreports, wgpolicyk8s or none") {
		t.Errorf("ParseAPI(policyreport) error = %v", err)
	}
}

// TestContentIsPrintable: text from objects reaches kubectl describe and
// report UIs printable and capped.
func TestContentIsPrintable(t *testing.T) {
	v := Verdict{Findings: []policies.Finding{{Rule: "apiservice-port-mismatch", Action: policies.Enforce,
		Message: "name \x1b[2J" + strings.Repeat("x", 3000), Fix: "fix\r\n"}}}
	r := contentOf(v, nil, 0).results[0]
	if strings.ContainsAny(r.Description+r.Properties["fix"], "\x1b\r\n") || len(r.Description) > maxResultText {
		t.Errorf("result text not made printable and capped: %q, %q", r.Description[:20], r.Properties["fix"])
	}
}
