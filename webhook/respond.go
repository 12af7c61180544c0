package webhook

import (
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/policies"
)

// maxWarningLength is the longest warning the guard sends; kubectl prints it
// after "Warning: ".
const maxWarningLength = 256

// respond turns findings into the admission response: any Enforce finding
// denies with every reason and fix; Warn findings become warnings; Audit
// findings become audit annotations keyed by rule name (the API server prefixes
// the webhook's name).
func respond(findings []policies.Finding) admission.Response {
	var denials, warnings []string
	audit := map[string]string{}
	for _, f := range findings {
		switch f.Action {
		case policies.Enforce:
			d := f.String()
			if f.Detail != "" {
				d += " (" + f.Detail + ")"
			}
			denials = append(denials, d)
		case policies.Warn:
			warnings = append(warnings, warningLines(f)...)
		case policies.Audit:
			audit[f.Rule] = shorten.Printable(f.String(), 1024)
		}
	}
	var resp admission.Response
	if len(denials) > 0 {
		resp = admission.Denied("apiservice-guard: " + strings.Join(denials, "\n"))
	} else {
		resp = admission.Allowed("")
	}
	if len(audit) > 0 {
		resp.AuditAnnotations = audit
	}
	return resp.WithWarnings(warnings...)
}

// warningLines is "[rule] message Fix: fix" when it fits in
// maxWarningLength, else two lines, "[rule] message" and "[rule] Fix: fix",
// each cut to fit.
func warningLines(f policies.Finding) []string {
	if s := f.String(); len(s) <= maxWarningLength {
		return []string{s}
	}
	lines := []string{shorten.Printable("["+f.Rule+"] "+f.Message, maxWarningLength)}
	if f.Fix != "" {
		lines = append(lines, shorten.Printable("["+f.Rule+"] Fix: "+f.Fix, maxWarningLength))
	}
	return lines
}
