package webhook

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Bounds of what one response carries: text from objects reaches the
// admin's terminal through kubectl, and the API server keeps denials and
// annotations in its audit log.
const (
	// maxWarningLength is the longest warning the guard sends; kubectl
	// prints it after "Warning: ".
	maxWarningLength = 256
	// maxWarnings is the most warnings one response carries; a last one
	// counts the rest.
	maxWarnings = 20
	// maxDenialLength bounds a denial's message; one reason is at most
	// maxReasonLength.
	maxDenialLength = 4096
	maxReasonLength = 1024
	// maxAnnotationLength bounds one audit annotation.
	maxAnnotationLength = 1024
)

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
			denials = append(denials, shorten.Printable(d, maxReasonLength))
		case policies.Warn:
			warnings = append(warnings, warningLines(f)...)
		case policies.Audit:
			audit[f.Rule] = shorten.Printable(f.String(), maxAnnotationLength)
		}
	}
	var resp admission.Response
	if len(denials) > 0 {
		resp = admission.Denied(denial(denials))
	} else {
		resp = admission.Allowed("")
	}
	if len(audit) > 0 {
		resp.AuditAnnotations = audit
	}
	if n := len(warnings); n > maxWarnings {
		warnings = append(warnings[:maxWarnings-1], fmt.Sprintf("apiservice-guard: ... and %d more warnings", n-maxWarnings+1))
	}
	return resp.WithWarnings(warnings...)
}

// denial joins the reasons, one per line, in at most maxDenialLength
// bytes; the reasons that do not fit are counted: "... and N more".
func denial(reasons []string) string {
	const prefix = "apiservice-guard: "
	return prefix + shorten.Join(reasons, "\n", "... and %d more", maxDenialLength-len(prefix))
}

// warningLines is "[rule] message Fix: fix" when it fits in
// maxWarningLength, else two lines, "[rule] message" and "[rule] Fix: fix",
// each cut to fit.
func warningLines(f policies.Finding) []string {
	if s := f.String(); len(s) <= maxWarningLength {
		return []string{shorten.Printable(s, maxWarningLength)}
	}
	lines := []string{shorten.Printable("["+f.Rule+"] "+f.Message, maxWarningLength)}
	if f.Fix != "" {
		lines = append(lines, shorten.Printable("["+f.Rule+"] Fix: "+f.Fix, maxWarningLength))
	}
	return lines
}
