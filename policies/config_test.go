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
		{name: "unknown top-level field", in: "mode: audit\nexemptNamespace: [dev]\n", wantErr: []string{"line 2", "exemptNamespace"}},
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
		{name: "unknown mode", in: "mode: dryrun\n", wantErr: []string{"mode", `"dryrun"`}},
		{name: "bad YAML", in: "mode: audit\nrules: {apiservice-port-mismatch: Warn\n", wantErr: []string{"invalid YAML", "line"}},
		{name: "not a mapping", in: "- mode: audit\n", wantErr: []string{"invalid YAML", "line 1"}},
		{name: "multiple documents", in: "mode: audit\n---\nmode: enforce\n", wantErr: []string{"single YAML document"}},
		{
			name:    "bad namespace name",
			in:      "exemptNamespaces: [dev, Kube_System]\n",
			wantErr: []string{"exemptNamespaces[1]", `"Kube_System"`},
		},
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
