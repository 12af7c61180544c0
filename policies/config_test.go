package policies_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/policies"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    policies.Config
		wantErr []string // substrings of the error; nil means no error
	}{
		{name: "empty", in: "", want: policies.Config{Mode: policies.ModeEnforce}},
		{name: "comments only", in: "# nothing here\n", want: policies.Config{Mode: policies.ModeEnforce}},
		{name: "empty rules", in: "rules:\n", want: policies.Config{Mode: policies.ModeEnforce}},
		{
			name: "everything set",
			in: `mode: audit
exemptNamespaces: [dev, kube-system]
rules:
  apiservice-port-mismatch: Warn
  apiservice-insecure-skip-tls: Off
  apiservice-cabundle-invalid: Audit
`,
			want: policies.Config{
				Mode:             policies.ModeAudit,
				ExemptNamespaces: []string{"dev", "kube-system"},
				Rules: map[string]policies.Action{
					"apiservice-port-mismatch":     policies.Warn,
					"apiservice-insecure-skip-tls": policies.Off,
					"apiservice-cabundle-invalid":  policies.Audit,
				},
			},
		},
		{
			name: "mode and actions are case-insensitive",
			in:   "mode: Enforce\nrules:\n  apiservice-port-mismatch: warn\n  apiservice-firewall-port: OFF\n",
			want: policies.Config{Mode: policies.ModeEnforce, Rules: map[string]policies.Action{
				"apiservice-port-mismatch": policies.Warn,
				"apiservice-firewall-port": policies.Off,
			}},
		},
		{
			name:    "unknown rule",
			in:      "rules:\n  apiservice-port-mismatch: Warn\n  apiservice-port-missmatch: Warn\n",
			wantErr: []string{"line 3", `unknown rule "apiservice-port-missmatch"`, "apiservice-port-mismatch"},
		},
		{
			name:    "unknown action",
			in:      "rules:\n  apiservice-port-mismatch: Deny\n",
			wantErr: []string{"line 2", "rules.apiservice-port-mismatch", `unknown action "Deny"`},
		},
		{
			name:    "action that is not a scalar",
			in:      "rules:\n  apiservice-port-mismatch:\n    - Warn\n",
			wantErr: []string{"line 3", "rules.apiservice-port-mismatch", "unknown action"},
		},
		{
			// The alias is named Warn, but its value is the namespace "dev".
			name:    "alias named like an action",
			in:      "exemptNamespaces: [&Warn dev]\nrules:\n  apiservice-port-mismatch: *Warn\n",
			wantErr: []string{"line 3", "rules.apiservice-port-mismatch", "unknown action"},
		},
		{name: "empty action", in: "rules:\n  apiservice-port-mismatch:\n", wantErr: []string{"line 2", "unknown action"}},
		{name: "rules not a mapping", in: "mode: audit\nrules: [apiservice-port-mismatch]\n", wantErr: []string{"line 2", "mapping"}},
		{name: "rule listed twice", in: "rules:\n  apiservice-port-mismatch: Warn\n  apiservice-port-mismatch: Off\n", wantErr: []string{"line 3"}},
		{name: "unknown mode", in: "rules: {}\nmode: dryrun\n", wantErr: []string{"line 2", "mode", `"dryrun"`}},
		{name: "mode not a word", in: "mode: [audit]\n", wantErr: []string{"line 1", "mode: must be enforce or audit"}},
		{name: "unknown top-level field", in: "mode: audit\nexemptNamespace: [dev]\n", wantErr: []string{"line 2", `unknown field "exemptNamespace"`, "known: mode, exemptNamespaces"}},
		{name: "top-level field twice", in: "mode: audit\nmode: enforce\n", wantErr: []string{"line 2", "mode: field listed twice"}},
		{name: "exemptNamespaces not a list", in: "mode: audit\nexemptNamespaces: dev\n", wantErr: []string{"line 2", "exemptNamespaces: must be a list"}},
		{name: "exemptNamespaces entry not a name", in: "exemptNamespaces:\n  - dev\n  - {a: b}\n", wantErr: []string{"line 3", "exemptNamespaces[1]"}},
		{name: "bad YAML", in: "mode: audit\nrules: {apiservice-port-mismatch: Warn\n", wantErr: []string{"invalid YAML", "line"}},
		{name: "not a mapping", in: "- mode: audit\n", wantErr: []string{"invalid YAML", "line 1"}},
		{name: "multiple documents", in: "mode: audit\n---\nmode: enforce\n", wantErr: []string{"single YAML document"}},
		{
			name:    "bad namespace name",
			in:      "mode: audit\nexemptNamespaces: [dev, Kube_System]\n",
			wantErr: []string{"line 2", "exemptNamespaces[1]", `"Kube_System"`},
		},
		{
			name: "caBundleChurn",
			in:   "caBundleChurn:\n  window: 1h30m\n  replacements: 64\n",
			want: policies.Config{Mode: policies.ModeEnforce,
				CABundleChurn: policies.ChurnConfig{Window: 90 * time.Minute, Replacements: 64}},
		},
		{
			name: "caBundleChurn: what is left out stays zero (the default)",
			in:   "caBundleChurn:\n  replacements: 2\n",
			want: policies.Config{Mode: policies.ModeEnforce, CABundleChurn: policies.ChurnConfig{Replacements: 2}},
		},
		{name: "caBundleChurn empty", in: "caBundleChurn:\n", want: policies.Config{Mode: policies.ModeEnforce}},
		{
			name:    "caBundleChurn: unparsable window",
			in:      "mode: audit\ncaBundleChurn:\n  window: ten minutes\n",
			wantErr: []string{"line 3", "caBundleChurn.window", `"ten minutes"`, "duration"},
		},
		{
			name:    "caBundleChurn: window without unit",
			in:      "caBundleChurn:\n  window: 600\n",
			wantErr: []string{"line 2", "caBundleChurn.window", `"600"`},
		},
		{name: "caBundleChurn: zero window", in: "caBundleChurn:\n  window: 0s\n", wantErr: []string{"line 2", "caBundleChurn.window", "not positive"}},
		{name: "caBundleChurn: negative window", in: "caBundleChurn:\n  window: -5m\n", wantErr: []string{"line 2", "not positive"}},
		{name: "caBundleChurn: window not a scalar", in: "caBundleChurn:\n  window: [10m]\n", wantErr: []string{"line 2", "caBundleChurn.window"}},
		{
			name:    "caBundleChurn: one replacement",
			in:      "caBundleChurn:\n  window: 10m\n  replacements: 1\n",
			wantErr: []string{"line 3", "caBundleChurn.replacements", "1 is out of range, want 2 to 64"},
		},
		{name: "caBundleChurn: 65 replacements", in: "caBundleChurn:\n  replacements: 65\n", wantErr: []string{"line 2", "65 is out of range"}},
		{name: "caBundleChurn: replacements not a number", in: "caBundleChurn:\n  replacements: three\n", wantErr: []string{"line 2", `"three" is not a whole number`}},
		{name: "caBundleChurn: replacements quoted", in: "caBundleChurn:\n  replacements: \"3\"\n", wantErr: []string{"line 2", "caBundleChurn.replacements"}},
		{name: "caBundleChurn: replacements fractional", in: "caBundleChurn:\n  replacements: 3.5\n", wantErr: []string{"line 2", "caBundleChurn.replacements"}},
		{
			name:    "caBundleChurn: unknown field",
			in:      "caBundleChurn:\n  window: 10m\n  replacement: 3\n",
			wantErr: []string{"line 3", "caBundleChurn.replacement", "unknown field"},
		},
		{
			name:    "caBundleChurn: field listed twice",
			in:      "caBundleChurn:\n  window: 10m\n  window: 5m\n",
			wantErr: []string{"line 3", "caBundleChurn.window", "twice"},
		},
		{name: "caBundleChurn not a mapping", in: "caBundleChurn: 10m\n", wantErr: []string{"line 1", "caBundleChurn", "mapping"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policies.ParseConfig([]byte(tc.in), policies.DefaultRules())
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseConfig() = %+v, want an error mentioning %q", got, tc.wantErr)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("ParseConfig() error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(): %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseConfig() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	for path, data := range map[string]string{good: "mode: audit\n", bad: "mode: sometimes\n"} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := policies.LoadConfig(good, policies.DefaultRules())
	if err != nil {
		t.Fatalf("LoadConfig(good): %v", err)
	}
	if diff := cmp.Diff(policies.Config{Mode: policies.ModeAudit}, got); diff != "" {
		t.Errorf("LoadConfig(good) (-want +got):\n%s", diff)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.yaml")} {
		if _, err := policies.LoadConfig(path, policies.DefaultRules()); err == nil || !strings.Contains(err.Error(), filepath.Base(path)) {
			t.Errorf("LoadConfig(%s) error = %v, want one naming the file", path, err)
		}
	}
}

func TestParseAction(t *testing.T) {
	for in, want := range map[string]policies.Action{
		"Enforce": policies.Enforce, "warn": policies.Warn, "AUDIT": policies.Audit, "off": policies.Off,
	} {
		got, err := policies.ParseAction(in)
		if err != nil || got != want {
			t.Errorf("ParseAction(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "deny", "Enforced"} {
		if got, err := policies.ParseAction(in); err == nil {
			t.Errorf("ParseAction(%q) = %q, want an error", in, got)
		}
	}
}

// TestConfigActions runs one broken backend through the engine under several
// configs: a port mismatch (Enforce), a numeric targetPort nobody declares
// (Enforce capped to Warn as advisory) and an insecureSkipTLSVerify (Warn).
func TestConfigActions(t *testing.T) {
	broken := func(t *testing.T) *fixture {
		f := newFixture(t)
		asPort(443)(f.api)
		f.api.Spec.CABundle = []byte("not PEM") // Enforce
		f.svc.Spec.Ports[0].TargetPort = intstr.FromInt32(7443)
		return f
	}
	const (
		invalid = "apiservice-cabundle-invalid"
		port    = "apiservice-port-mismatch"
	)
	tests := []struct {
		name   string
		config string
		want   []verdict
	}{
		{
			name: "defaults",
			want: []verdict{{port, policies.Warn}, {invalid, policies.Enforce}},
		},
		{
			name:   "mode audit turns Enforce into Audit, leaves Warn",
			config: "mode: audit\n",
			want:   []verdict{{port, policies.Warn}, {invalid, policies.Audit}},
		},
		{
			name:   "Off disables a rule",
			config: "rules:\n  apiservice-cabundle-invalid: Off\n",
			want:   []verdict{{port, policies.Warn}},
		},
		{
			name:   "overrides",
			config: "rules:\n  apiservice-cabundle-invalid: Warn\n  apiservice-port-mismatch: Audit\n",
			want:   []verdict{{port, policies.Audit}, {invalid, policies.Warn}},
		},
		{
			name:   "exempt backend namespace",
			config: "exemptNamespaces: [keda]\n",
		},
		{
			name:   "other namespace exempt",
			config: "exemptNamespaces: [dev]\n",
			want:   []verdict{{port, policies.Warn}, {invalid, policies.Enforce}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := policies.ParseConfig([]byte(tc.config), policies.DefaultRules())
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			f := broken(t)
			got := mustEngine(t, cfg).Evaluate(t.Context(), createReview(f.api, time.Time{}), newView(t, f.objects()...))
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
			}
		})
	}
}

// TestModeAuditMismatch checks mode audit on the rule whose action depends
// on cluster state: a mismatch on an Available APIService.
func TestModeAuditMismatch(t *testing.T) {
	p := mustPKI(t)
	for _, tc := range []struct {
		mode string
		want policies.Action
	}{{"enforce", policies.Enforce}, {"audit", policies.Audit}} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg, err := policies.ParseConfig([]byte("mode: "+tc.mode+"\n"), policies.DefaultRules())
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t)
			f.update(apiregv1.ConditionTrue)
			f.api.Spec.CABundle = p.otherCA.CertPEM()
			v := newView(t, f.objects()...)
			got := ruleFindings(mustEngine(t, cfg).Evaluate(t.Context(), updateReview(f.old, f.api, time.Time{}), v), "apiservice-cabundle-mismatch")
			if diff := cmp.Diff([]verdict{{"apiservice-cabundle-mismatch", tc.want}}, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCABundleChurnConfig runs the same caBundle fight through engines built
// from several configs: alpha and beta each replacing it once a minute.
func TestCABundleChurnConfig(t *testing.T) {
	const churn = "apiservice-cabundle-churn"
	tests := []struct {
		name   string
		config string
		writes int
		every  time.Duration
		want   bool // the last write warns
	}{
		{name: "defaults: third write", writes: 3, every: time.Minute, want: true},
		{name: "defaults: second write", writes: 2, every: time.Minute},
		{name: "defaults: too slow for the window", writes: 10, every: 5 * time.Minute},
		{name: "two replacements", config: "caBundleChurn:\n  replacements: 2\n", writes: 2, every: time.Minute, want: true},
		{name: "more replacements", config: "caBundleChurn:\n  replacements: 5\n", writes: 4, every: time.Minute},
		{name: "longer window", config: "caBundleChurn:\n  window: 1h\n", writes: 3, every: 20 * time.Minute, want: true},
		{name: "shorter window", config: "caBundleChurn:\n  window: 90s\n", writes: 3, every: time.Minute},
		{name: "rule off", config: "rules:\n  apiservice-cabundle-churn: Off\n", writes: 10, every: time.Second},
	}
	t0 := time.Now() // the test certificates are valid from now
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := policies.ParseConfig([]byte(tc.config), policies.DefaultRules())
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			e, v := mustEngine(t, cfg), newView(t)
			// Valid bundles: a write another rule denies is not counted.
			p := mustPKI(t)
			bundles := [][]byte{p.ca.CertPEM(), p.otherCA.CertPEM()}
			var got []policies.Finding
			for i := range tc.writes {
				old := apiService(kedaAPI, kedaNS, kedaSvc, asCABundle(bundles[(i+1)%2]))
				api := apiService(kedaAPI, kedaNS, kedaSvc, asCABundle(bundles[i%2]))
				r := updateReview(old, api, t0.Add(time.Duration(i)*tc.every))
				r.FieldManager = []string{"alpha", "beta"}[i%2]
				got = ruleFindings(e.Evaluate(t.Context(), r, v), churn)
			}
			if warned := len(got) > 0; warned != tc.want {
				t.Errorf("last write warned = %v, want %v (%v)", warned, tc.want, got)
			}
		})
	}
}

func TestNewEngineRejectsBadChurnConfig(t *testing.T) {
	for _, c := range []policies.ChurnConfig{
		{Window: -time.Minute},
		{Replacements: 1},
		{Replacements: 65},
		{Replacements: -3},
	} {
		if _, err := policies.NewEngine(policies.Config{CABundleChurn: c}, policies.DefaultRules()); err == nil || !strings.Contains(err.Error(), "caBundleChurn") {
			t.Errorf("NewEngine(%+v) error = %v, want one naming caBundleChurn", c, err)
		}
	}
	for _, c := range []policies.ChurnConfig{{}, {Window: time.Second, Replacements: 2}, {Replacements: 64}} {
		if _, err := policies.NewEngine(policies.Config{CABundleChurn: c}, policies.DefaultRules()); err != nil {
			t.Errorf("NewEngine(%+v): %v", c, err)
		}
	}
}
