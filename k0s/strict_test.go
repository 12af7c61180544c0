package k0s_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/k0s"
)

// strictDoc is a k0s.yaml with spec (YAML, indented by 2) from line 5.
func strictDoc(spec string) string {
	return "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\nspec:\n" + spec
}

// TestCheckStrict: what k0s's strict reading of its config file refuses,
// named by line and field; what it lets pass (legacy fields, sections it
// reads tolerantly, field names in another case) is not an error.
func TestCheckStrict(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		firstLine int
		at        string
		want      []string // "line: field: detail"
	}{
		{name: "clean", text: strictDoc("  network: {provider: calico}\n  konnectivity: {agentPort: 8132}\n")},
		{name: "misspelt section", text: strictDoc("  netwrok: {provider: calico}\n"),
			want: []string{"line 6: spec.netwrok: unknown field"}},
		{name: "field of the wrong section", text: strictDoc("  podCIDRs: [10.244.0.0/16]\n"),
			want: []string{"line 6: spec.podCIDRs: unknown field"}},
		{name: "top level and metadata", text: "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  lables: {a: b}\nspecs: {}\n",
			want: []string{"line 4: metadata.lables: unknown field", "line 5: specs: unknown field"}},
		{name: "deep in a checked section", text: strictDoc("  extensions:\n    helm:\n      charts:\n        - name: a\n          chartName: b\n          valuez: {}\n"),
			want: []string{"line 11: spec.extensions.helm.charts[0].valuez: unknown field"}},
		{name: "sections k0s reads tolerantly", text: strictDoc("  network: {podCIDRs: [a], kuberouter: {mtu2: 1}}\n  api: {sans2: []}\n  storage: {etcd2: {}}\n  images: {x: 1}\n")},
		{name: "free values", text: strictDoc("  workerProfiles:\n    - name: p\n      values: {anything: {at: all}}\n  controllerManager: {extraArgs: {x: y}}\n")},
		{name: "names match in any case", text: strictDoc("  Network: {}\n  KONNECTIVITY: {AgentPort: 8132}\n")},
		{name: "a legacy field alone passes", text: strictDoc("  podSecurityPolicy: {defaultPolicy: 00-k0s-privileged}\n  telemetry: {interval: 10m}\n")},
		// k0s meets keys sorted and keeps the first unknown one: when that
		// is a legacy field, it accepts the document.
		{name: "a legacy field met first hides later ones", text: strictDoc("  podSecurityPolicy: {}\n  zzz: 1\n")},
		{name: "a legacy field met later does not", text: strictDoc("  aaa: 1\n  podSecurityPolicy: {}\n"),
			want: []string{"line 6: spec.aaa: unknown field"}},
		{name: "duplicate key", text: strictDoc("  konnectivity:\n    agentPort: 8132\n    agentPort: 8133\n"),
			want: []string{"line 8: spec.konnectivity.agentPort: duplicate key (first at line 7)"}},
		{name: "duplicate key in a tolerant section", text: strictDoc("  network:\n    provider: calico\n    provider: kuberouter\n"),
			want: []string{"line 8: spec.network.provider: duplicate key (first at line 7)"}},
		{name: "duplicate key by a merge", text: "base: &b {provider: calico}\n" + strictDoc("  network:\n    <<: *b\n    provider: kuberouter\n"),
			want: []string{"line 1: base: unknown field", "line 9: spec.network.provider: duplicate key (first at line 1)"}},
		{name: "case-different keys are not duplicates", text: strictDoc("  network: {}\n  Network: {}\n")},
		{name: "JSON", text: `{"apiVersion":"k0s.k0sproject.io/v1beta1","kind":"ClusterConfig","spec":{"netwrok":{}}}`,
			want: []string{"line 1: spec.netwrok: unknown field"}},
		{name: "lines counted from where the document starts", text: strictDoc("  netwrok: {}\n"), firstLine: 11,
			want: []string{"line 16: spec.netwrok: unknown field"}},
		{name: "k0sctl.yaml", at: k0s.K0sctlConfigPath,
			text: "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nspec:\n  hosts: []\n  k0s:\n    config:\n      spec:\n        netwrok: {}\n",
			want: []string{"line 8: spec.netwrok: unknown field"}},
		{name: "k0sctl.yaml without a config", at: k0s.K0sctlConfigPath, text: "kind: Cluster\nspec: {k0s: {version: v1.33.1+k0s.0}}\n"},
		{name: "not YAML is left to the decoder", text: "spec: {\n"},
		// A key read as a path would be ambiguous or empty: it is quoted.
		{name: "empty and dotted keys", text: "\"\": 1\n" + strictDoc("  \"a.b\": 1\n  \"\": 2\n"),
			want: []string{`line 1: "": unknown field`, `line 7: spec."a.b": unknown field`, `line 8: spec."": unknown field`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.firstLine
			if first == 0 {
				first = 1
			}
			err := k0s.CheckStrict([]byte(tt.text), first, tt.at)
			var got []string
			var errs k0s.StrictErrors
			switch {
			case err == nil:
			case errors.As(err, &errs):
				for _, e := range errs {
					got = append(got, e.Error())
				}
			default:
				t.Fatalf("CheckStrict() = %v, want StrictErrors", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CheckStrict() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckStrictBounded: text built to be expensive is refused, not
// walked without end, and a long list of errors is counted in the message.
func TestCheckStrictBounded(t *testing.T) {
	if err := k0s.CheckStrict([]byte(strings.Repeat("x", k0s.MaxDocumentBytes+1)), 1, ""); !errors.Is(err, k0s.ErrTooLarge) {
		t.Errorf("CheckStrict(too large) = %v, want ErrTooLarge", err)
	}

	// Merge keys, unlike aliases, are expanded: each level merges the one
	// below twice.
	var b strings.Builder
	b.WriteString("l0: &l0 {a: 1}\n")
	for i := 1; i < 40; i++ {
		b.WriteString("l" + strconv.Itoa(i) + ": &l" + strconv.Itoa(i) + " {<<: [*l" + strconv.Itoa(i-1) + ", *l" + strconv.Itoa(i-1) + "]}\n")
	}
	err := k0s.CheckStrict([]byte(b.String()), 1, "")
	if err == nil || !strings.Contains(err.Error(), "too far to check") {
		t.Errorf("CheckStrict(merge bomb) = %v, want too far to check", err)
	}

	var spec strings.Builder
	for i := range 30 {
		spec.WriteString("  unknown" + strconv.Itoa(i) + ": 1\n")
	}
	err = k0s.CheckStrict([]byte(strictDoc(spec.String())), 1, "")
	var errs k0s.StrictErrors
	if !errors.As(err, &errs) || len(errs) != 30 {
		t.Fatalf("CheckStrict(30 unknown fields) = %v, want 30 errors", err)
	}
	if msg := err.Error(); len(msg) > 200 || !strings.Contains(msg, " more)") {
		t.Errorf("error message %q: want at most 200 characters, counting the rest", msg)
	}
}
