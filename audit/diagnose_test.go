package audit

import (
	"errors"
	"strings"
	"testing"

	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// TestDiagnoseStatic: causes a test API server cannot produce for real,
// on a static view: a default-deny in front of metrics-server names the
// NetworkPolicy; with the fix in force nothing explains an outage, and
// diagnose says so, listing what it ruled out.
func TestDiagnoseStatic(t *testing.T) {
	const dir = "../examples/networkpolicy-default-deny/"
	diag := func(files ...string) Diagnosis {
		t.Helper()
		view, engine := loadExample(t, files...)
		api, err := view.APIService(t.Context(), "v1beta1.metrics.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		api = api.DeepCopy()
		api.Status.Conditions = []apiregv1.APIServiceCondition{{Type: apiregv1.Available, Status: apiregv1.ConditionFalse,
			Reason: "FailedDiscoveryCheck", Message: "failing or missing response from https://10.244.0.15:10250/apis/metrics.k8s.io/v1beta1: context deadline exceeded"}}
		return Diagnose(t.Context(), engine, view, nil, api)
	}
	d := diag(dir+"backend.yaml", dir+"broken.yaml")
	if d.Available || !strings.Contains(d.Cause, "cannot reach pod kube-system/metrics-server-demo on 10250/TCP") || !strings.Contains(d.Fix, "ipBlock") {
		t.Errorf("default-deny: cause %q, fix %q", d.Cause, d.Fix)
	}
	d = diag(dir+"backend.yaml", dir+"fixed.yaml")
	// The aggregator's timeout is all that is left: it is reported as its
	// own error, not as a policy.
	if !strings.HasPrefix(d.Cause, "timed out") || !strings.Contains(d.Cause, "the aggregator's own error") {
		t.Errorf("with the fix: cause %q", d.Cause)
	}
	for _, s := range d.Steps {
		if s.Name == "rules" && s.Outcome != StepOK {
			t.Errorf("with the fix, the rules step is %s: %s", s.Outcome, s.Evidence)
		}
	}
}

func TestClassifyProbe(t *testing.T) {
	api := &apiregv1.APIService{Spec: apiregv1.APIServiceSpec{Group: "metrics.k8s.io", Version: "v1beta1"}}
	tests := []struct {
		name    string
		status  int
		body    string
		err     error
		outcome Outcome
		cause   string
	}{
		{"ok", 200, `{"kind":"APIResourceList"}`, nil, StepOK, ""},
		{"refused", 503, `error trying to reach service: dial tcp 10.0.0.1:443: connect: connection refused`, nil, StepFailed, "connection refused"},
		{"timeout", 503, `error trying to reach service: dial tcp 10.0.0.1:443: i/o timeout`, nil, StepFailed, "timed out"},
		{"client deadline", 0, "", errors.New("context deadline exceeded"), StepFailed, "timed out"},
		{"forbidden", 403, `forbidden`, nil, StepFailed, "auth delegation"},
		{"unauthorized", 401, ``, nil, StepFailed, "auth delegation"},
		{"wrong group", 404, `404 page not found`, nil, StepFailed, "does not serve metrics.k8s.io/v1beta1"},
		{"no answer", 0, "", errors.New("EOF"), StepUnknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _, cause, fix := classifyProbe(api, tt.status, tt.body, tt.err)
			if o != tt.outcome || !strings.Contains(cause, tt.cause) || (cause != "") != (fix != "") {
				t.Errorf("classifyProbe() = %s, cause %q, fix %q; want %s, cause with %q", o, cause, fix, tt.outcome, tt.cause)
			}
		})
	}
}

func TestOtherRelease(t *testing.T) {
	rel := func(ns, name string) map[string]string {
		return map[string]string{helmReleaseName: name, helmReleaseNamespace: ns}
	}
	tests := []struct {
		name     string
		api, svc map[string]string
		want     string
	}{
		{"same release", rel("keda", "keda"), rel("keda", "keda"), ""},
		{"no release on one side", rel("keda", "keda"), nil, ""},
		{"two installations", rel("keda", "keda"), rel("autoscaling", "keda"), "APIService belongs to Helm release keda/keda, its Service to autoscaling/keda"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := otherRelease(tt.api, tt.svc)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("otherRelease() = %q, want %q", got, tt.want)
			}
		})
	}
}
