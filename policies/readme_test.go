package policies

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestREADMERuleTable keeps the README's rule table true: every rule of the
// catalogue is listed once, with its default action, and nothing else.
func TestREADMERuleTable(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	begin, end := strings.Index(text, "<!-- rules:begin"), strings.Index(text, "<!-- rules:end -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no rules:begin/rules:end markers")
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\| (Enforce|Warn|Audit|Off) \\|")
	got := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(text[begin:end], -1) {
		if _, dup := got[m[1]]; dup {
			t.Errorf("rule %s listed twice", m[1])
		}
		got[m[1]] = m[2]
	}
	want := map[string]string{}
	for _, r := range DefaultRules() {
		want[r.Name] = string(r.Default)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("README rule table differs from DefaultRules (-want +got):\n%s", diff)
	}
}
