package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/policies"
)

// API is the report API the audit writes.
type API string

// The report APIs, and the values of --report-api.
const (
	// APIAuto picks OpenReports when its CRD is installed, else wgpolicyk8s
	// when that one is, else none.
	APIAuto        API = "auto"
	APIOpenReports API = "openreports"
	APIWGPolicy    API = "wgpolicyk8s"
	APINone        API = "none"
)

// ParseAPI checks a --report-api value.
func ParseAPI(s string) (API, error) {
	switch a := API(s); a {
	case APIAuto, APIOpenReports, APIWGPolicy, APINone:
		return a, nil
	}
	return "", fmt.Errorf("report API %q: want auto, openreports, wgpolicyk8s or none", s)
}

// Report kinds, by API and scope.
var (
	wgPolicyGroupVersion = schema.GroupVersion{Group: "wgpolicyk8s.io", Version: "v1alpha2"}

	reportKinds = map[API]struct{ namespaced, cluster schema.GroupVersionKind }{
		APIOpenReports: {openreports.SchemeGroupVersion.WithKind("Report"), openreports.SchemeGroupVersion.WithKind("ClusterReport")},
		APIWGPolicy:    {wgPolicyGroupVersion.WithKind("PolicyReport"), wgPolicyGroupVersion.WithKind("ClusterPolicyReport")},
	}
)

// reportKind is the kind of the report for an object in namespace ("" for
// a cluster-scoped object).
func reportKind(api API, namespace string) schema.GroupVersionKind {
	if namespace == "" {
		return reportKinds[api].cluster
	}
	return reportKinds[api].namespaced
}

// What every report and result says of its writer.
const (
	// Source is the report's and each result's source.
	Source = "apiservice-guard"
	// Policy is each result's policy; the rule names the check.
	Policy = "apiservice-guard"
	// LabelManagedBy marks the reports the guard writes, which it lists,
	// rewrites and deletes; it touches no other report.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "apiservice-guard"
	// AnnotationOmitted counts the results left out of a report beyond
	// the maximum (--audit-max-results).
	AnnotationOmitted = "apiservice-guard.io/results-omitted"
)

// maxResultText caps a result's message and fix.
const maxResultText = 1024

// Result values (the CRDs' enum).
const (
	resultPass = "pass"
	resultFail = "fail"
	resultWarn = "warn"
)

// content is what a report says, without timestamps: what decides whether
// it must be rewritten.
type content struct {
	results []openreports.ReportResult // Timestamp unset
	omitted int
}

// severities maps rule names to a result's severity: high for a rule that
// enforces by default, medium for one that warns.
func severities(rules []policies.Rule) map[string]openreports.ResultSeverity {
	out := make(map[string]openreports.ResultSeverity, len(rules))
	for _, r := range rules {
		out[r.Name] = "medium"
		if r.Default == policies.Enforce {
			out[r.Name] = "high"
		}
	}
	return out
}

// category is a rule's family, from its name: "APIService",
// "NetworkPolicy", "k0s".
func category(rule string) string {
	switch {
	case strings.HasPrefix(rule, "apiservice-"):
		return "APIService"
	case strings.HasPrefix(rule, "networkpolicy-"):
		return "NetworkPolicy"
	case strings.HasPrefix(rule, "k0s-"):
		return "k0s"
	}
	return ""
}

// contentOf turns a verdict into results: findings first (fail for Enforce,
// warn for Warn and Audit), then a pass for each rule that found nothing;
// at most max results, the rest counted.
func contentOf(v Verdict, severity map[string]openreports.ResultSeverity, max int) content {
	result := func(rule, outcome string) openreports.ReportResult {
		return openreports.ReportResult{
			Source: Source, Policy: Policy, Rule: rule, Category: category(rule),
			Severity: severity[rule], Result: openreports.Result(outcome), Scored: true,
			Subjects: []corev1.ObjectReference{v.Object},
		}
	}
	var c content
	for _, f := range v.Findings {
		r := result(f.Rule, resultWarn)
		if f.Action == policies.Enforce {
			r.Result = resultFail
		}
		// Shown by kubectl describe and report UIs: printable, capped.
		r.Description = shorten.Printable(f.Message, maxResultText)
		r.Properties = map[string]string{"action": string(f.Action), "fix": shorten.Printable(f.Fix, maxResultText)}
		if f.Detail != "" {
			r.Properties["detail"] = shorten.Printable(f.Detail, 2*maxResultText)
		}
		c.results = append(c.results, r)
	}
	for _, rule := range v.Passed {
		c.results = append(c.results, result(rule.Name, resultPass))
	}
	if max > 0 && len(c.results) > max {
		c.omitted = len(c.results) - max
		c.results = c.results[:max]
	}
	return c
}

// hash identifies a content: equal hashes, equal reports.
func (c content) hash() string {
	js, _ := json.Marshal(struct {
		R []openreports.ReportResult
		O int
	}{c.results, c.omitted})
	sum := sha256.Sum256(js)
	return hex.EncodeToString(sum[:])
}

// summary counts the results by outcome.
func (c content) summary() openreports.ReportSummary {
	var s openreports.ReportSummary
	for _, r := range c.results {
		switch r.Result {
		case resultPass:
			s.Pass++
		case resultFail:
			s.Fail++
		case resultWarn:
			s.Warn++
		}
	}
	return s
}

// reportName is the name of an object's report: its UID, as Kyverno names
// them, so that a report outlives no object of the same name.
func reportName(obj corev1.ObjectReference) string { return string(obj.UID) }

// buildReport renders the report of obj in api's kind, with timestamps:
// stamps[i] for results[i].
func buildReport(api API, obj corev1.ObjectReference, c content, stamps []metav1.Timestamp) (*unstructured.Unstructured, error) {
	gvk := reportKind(api, obj.Namespace)
	results := make([]openreports.ReportResult, len(c.results))
	for i, r := range c.results {
		r.Timestamp = stamps[i]
		results[i] = r
	}
	rep := openreports.Report{
		ObjectMeta: metav1.ObjectMeta{
			Name: reportName(obj), Namespace: obj.Namespace,
			Labels: map[string]string{LabelManagedBy: managedBy},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: obj.APIVersion, Kind: obj.Kind, Name: obj.Name, UID: obj.UID,
			}},
		},
		Source:  Source,
		Scope:   &obj,
		Summary: c.summary(),
		Results: results,
	}
	if c.omitted > 0 {
		rep.Annotations = map[string]string{AnnotationOmitted: fmt.Sprint(c.omitted)}
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&rep)
	if err != nil {
		return nil, err
	}
	if api == APIWGPolicy {
		delete(m, "source") // a PolicyReport has a source per result only
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}
