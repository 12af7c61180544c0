package webhook

import (
	"fmt"
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

// TestRespondHostileText: text from objects with terminal control
// characters, and findings by the thousand (one per ConfigMap key), give a
// response whose every string is printable and bounded: a denial of at
// most 4 KiB ending in "... and N more", at most 20 warnings of at most 256
// bytes, annotations of at most 1 KiB.
func TestRespondHostileText(t *testing.T) {
	const hostile = "key\x1b[2J\x1b]0;owned\x07\rline2\u202Edrocer"
	var findings []policies.Finding
	for i := range 20000 {
		findings = append(findings,
			policies.Finding{Rule: "k0s-x", Action: policies.Enforce, Message: fmt.Sprintf("data[%s-%d] is wrong", hostile, i), Fix: hostile, Detail: hostile},
			policies.Finding{Rule: fmt.Sprintf("w%d", i), Action: policies.Warn, Message: hostile + strings.Repeat("x", i%400)},
			policies.Finding{Rule: fmt.Sprintf("a%d", i%5), Action: policies.Audit, Message: hostile + strings.Repeat("y", 5000)},
		)
	}
	resp := respond(findings)
	msg := resp.Result.Message
	if resp.Allowed || len(msg) > maxDenialLength || !strings.Contains(msg, "... and ") || !strings.HasPrefix(msg, "apiservice-guard: [k0s-x] data[key?[2J") {
		t.Errorf("denial of %d bytes: %.300q ... %q", len(msg), msg, msg[max(0, len(msg)-40):])
	}
	if n := strings.Count(msg, "\n"); n < 2 {
		t.Errorf("denial has %d reasons, want several", n+1)
	}
	strs := append([]string{strings.ReplaceAll(msg, "\n", "")}, resp.Warnings...)
	for _, v := range resp.AuditAnnotations {
		if len(v) > maxAnnotationLength {
			t.Errorf("annotation of %d bytes", len(v))
		}
		strs = append(strs, v)
	}
	if len(resp.Warnings) != maxWarnings || !strings.Contains(resp.Warnings[maxWarnings-1], "and 19981 more warnings") {
		t.Errorf("%d warnings, the last %q", len(resp.Warnings), resp.Warnings[len(resp.Warnings)-1])
	}
	for _, s := range strs {
		if strings.ContainsAny(s, "\x1b\x07\r\u202E") {
			t.Errorf("control characters reach the response: %q", s)
		}
	}
	for _, w := range resp.Warnings {
		if len(w) > maxWarningLength {
			t.Errorf("warning of %d bytes", len(w))
		}
	}
}

// FuzzRespond: whatever text findings carry, and however many there are,
// the response keeps its budget: a denial of at most maxDenialLength
// bytes, at most maxWarnings warnings of maxWarningLength, annotations of
// maxAnnotationLength, and nothing a terminal would interpret.
func FuzzRespond(f *testing.F) {
	f.Add("message\x1b[31m\u202e", "fix\r\n", "detail", uint8(3), uint16(1))
	f.Add(strings.Repeat("m", 5000), strings.Repeat("f", 300), "", uint8(0), uint16(5000))
	f.Add("\xff\xfe", "", "\x00", uint8(1), uint16(40))
	f.Fuzz(func(t *testing.T, message, fix, detail string, actions uint8, n uint16) {
		n %= 64 // past every count bound (20 warnings, a 4 KiB denial)
		findings := make([]policies.Finding, n)
		for i := range findings {
			findings[i] = policies.Finding{
				Rule:   "rule",
				Action: []policies.Action{policies.Enforce, policies.Warn, policies.Audit}[(int(actions)+i)%3],
				// Distinct messages, so no reason collapses into another.
				Message: fmt.Sprintf("%s %d", message, i), Fix: fix, Detail: detail,
			}
		}
		resp := respond(findings)
		printable := func(what, s string, limit int) {
			if len(s) > limit {
				t.Fatalf("%s of %d bytes, limit %d", what, len(s), limit)
			}
			if s != shorten.Printable(s, limit) {
				t.Fatalf("%s is not printable: %q", what, s)
			}
		}
		if resp.Result != nil {
			// Reasons are joined by newlines, the one control character a
			// denial may hold.
			for _, line := range strings.Split(resp.Result.Message, "\n") {
				printable("a denial's line", line, maxDenialLength)
			}
			if len(resp.Result.Message) > maxDenialLength {
				t.Fatalf("denial of %d bytes", len(resp.Result.Message))
			}
		}
		if len(resp.Warnings) > maxWarnings {
			t.Fatalf("%d warnings", len(resp.Warnings))
		}
		for _, w := range resp.Warnings {
			printable("a warning", w, maxWarningLength)
		}
		for _, a := range resp.AuditAnnotations {
			printable("an audit annotation", a, maxAnnotationLength)
		}
	})
}
