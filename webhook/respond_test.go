package webhook

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/policies"
)

func TestRespond(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes: multi-byte runes must not be cut in half
	tests := []struct {
		name        string
		findings    []policies.Finding
		wantAllowed bool
		wantCode    int32
		wantMsg     []string
		wantWarn    []string
		wantAudit   map[string]string
	}{
		{name: "no findings", wantAllowed: true, wantCode: 200},
		{
			name: "enforce denies with every reason and fix",
			findings: []policies.Finding{
				{Rule: "r1", Action: policies.Enforce, Message: "bad one", Fix: "do x"},
				{Rule: "r2", Action: policies.Enforce, Message: "bad two"},
				{Rule: "r3", Action: policies.Warn, Message: "meh"},
			},
			wantCode: 403,
			wantMsg:  []string{"[r1] bad one Fix: do x", "[r2] bad two"},
			wantWarn: []string{"[r3] meh"},
		},
		{
			name:        "warn allows with warnings; a long fix goes on its own line",
			findings:    []policies.Finding{{Rule: "r", Action: policies.Warn, Message: "short", Fix: long}},
			wantAllowed: true, wantCode: 200,
			wantWarn: []string{"[r] short", shorten.String("[r] Fix: "+long, maxWarningLength)},
		},
		{
			name:        "audit allows silently with an annotation per rule",
			findings:    []policies.Finding{{Rule: "r", Action: policies.Audit, Message: "m", Fix: "f"}},
			wantAllowed: true, wantCode: 200,
			wantAudit: map[string]string{"r": "[r] m Fix: f"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := respond(tt.findings)
			if resp.Allowed != tt.wantAllowed || resp.Result.Code != tt.wantCode {
				t.Fatalf("allowed=%v code=%d, want %v %d", resp.Allowed, resp.Result.Code, tt.wantAllowed, tt.wantCode)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(resp.Result.Message, m) {
					t.Errorf("denial %q lacks %q", resp.Result.Message, m)
				}
			}
			if diff := cmp.Diff(tt.wantWarn, []string(resp.Warnings)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantAudit, resp.AuditAnnotations); diff != "" {
				t.Errorf("audit annotations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarningNeverExceedsLimit(t *testing.T) {
	f := policies.Finding{Rule: "apiservice-x", Action: policies.Warn, Message: strings.Repeat("ü", 300)}
	lines := warningLines(f)
	if len(lines) != 1 {
		t.Fatalf("got %d lines for a finding without fix", len(lines))
	}
	w := lines[0]
	if len(w) > maxWarningLength {
		t.Fatalf("warning is %d bytes, limit %d", len(w), maxWarningLength)
	}
	if !strings.HasPrefix(w, "[apiservice-x] ") || !strings.HasSuffix(w, "...") {
		t.Errorf("warning %q should keep the rule and end in ...", w)
	}
	if !utf8Valid(w) {
		t.Errorf("warning cut inside a rune: %q", w)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
