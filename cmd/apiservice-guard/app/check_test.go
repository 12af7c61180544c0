package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Fixture paths, relative to the package directory tests run in.
const (
	backendDir   = "testdata/check/backend"
	brokenDir    = "testdata/check/broken"
	badCABundle  = brokenDir + "/bad-cabundle.yaml"
	insecureSkip = brokenDir + "/insecure-skip.yaml"
	portMismatch = brokenDir + "/port-mismatch.yaml"
	invalidYAML  = "testdata/check/invalid.yaml"
	configAudit  = "testdata/check/config-audit.yaml"
	configBad    = "testdata/check/config-bad.yaml"
)

// kedaService is the DNS name the aggregator verifies for the backend in
// testdata/check/backend.
const kedaService = "keda-operator-metrics-apiserver.keda.svc"

// finding builds the expected finding on a testdata APIService; Message and
// Fix are compared separately.
func finding(rule string, action policies.Action, apiService string) policies.Finding {
	return policies.Finding{
		Rule: rule, Action: action,
		Object: policies.ObjectRef{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: apiService},
	}
}

// runMain runs the command line and returns the exit code and output.
func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// decodeReport decodes the JSON report strictly: no field beyond the format.
func decodeReport(t *testing.T, stdout string) []checkFinding {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var rep checkJSON
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout)
	}
	if rep.Findings == nil {
		t.Fatalf("findings is null or missing, want a list:\n%s", stdout)
	}
	return rep.Findings
}

// apiServiceYAML is an APIService for the testdata backend with caBundle.
func apiServiceYAML(name string, caBundle []byte) string {
	group := name[strings.Index(name, ".")+1:]
	return fmt.Sprintf(`apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: %s
spec:
  group: %s
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: %s
  service:
    name: keda-operator-metrics-apiserver
    namespace: keda
    port: 443
`, name, group, base64.StdEncoding.EncodeToString(caBundle))
}

// writeGenerated writes, into a new directory, the Secret the testdata
// Deployment mounts (serving certificate for kedaService issued by a fresh
// CA) and an APIService whose caBundle is that CA, or, with wrongCA, another
// one. It returns the directory.
func writeGenerated(t *testing.T, wrongCA bool) string {
	t.Helper()
	ca, err := certs.NewCA("keda-ca", 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing([]string{kedaService}, nil, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundleCA := ca
	if wrongCA {
		if bundleCA, err = certs.NewCA("other-ca", 365*24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	secret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: keda-certs
  namespace: keda
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
  ca.crt: %s
`, b64(serving.CertPEM()), b64(serving.KeyPEM()), b64(ca.CertPEM()))
	dir := t.TempDir()
	for name, data := range map[string]string{
		"secret.yaml":     secret,
		"apiservice.yaml": apiServiceYAML("v1beta1.external.metrics.k8s.io", bundleCA.CertPEM()),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckJSON(t *testing.T) {
	clean := writeGenerated(t, false)
	mismatch := writeGenerated(t, true)
	const external, custom, customV2 = "v1beta1.external.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []policies.Finding
		// wantMessage is a part of each finding's message, in order.
		wantMessage []string
		// wantSources, when set, are the findings' sources, in order.
		wantSources []string
	}{{
		name:     "clean manifests",
		args:     []string{"-f", backendDir, "-f", clean},
		wantCode: exitOK,
		want:     []policies.Finding{},
	}, {
		name:     "control-plane CIDRs are accepted",
		args:     []string{"-f", backendDir, "-f", clean, "--control-plane-cidr", "172.16.0.0/28", "--control-plane-cidr", "fd00::/64"},
		wantCode: exitOK,
		want:     []policies.Finding{},
	}, {
		name:        "caBundle not PEM",
		args:        []string{"-f", backendDir, "-f", badCABundle},
		wantCode:    exitFindings,
		want:        []policies.Finding{finding("apiservice-cabundle-invalid", policies.Enforce, external)},
		wantMessage: []string{"caBundle is invalid"},
	}, {
		name:        "caBundle from another CA warns while the APIService is not Available",
		args:        []string{"-f", backendDir, "-f", mismatch},
		wantCode:    exitOK,
		want:        []policies.Finding{finding("apiservice-cabundle-mismatch", policies.Warn, external)},
		wantMessage: []string{`issued by "CN=keda-ca" (sha256 `},
	}, {
		name:        "warn only",
		args:        []string{"-f", backendDir, "-f", insecureSkip},
		wantCode:    exitOK,
		want:        []policies.Finding{finding("apiservice-insecure-skip-tls", policies.Warn, custom)},
		wantMessage: []string{"insecureSkipTLSVerify"},
	}, {
		name:     "Service port mismatch",
		args:     []string{"-f", backendDir, "-f", portMismatch},
		wantCode: exitFindings,
		want: []policies.Finding{
			finding("apiservice-port-mismatch", policies.Enforce, customV2),
			finding("apiservice-insecure-skip-tls", policies.Warn, customV2),
		},
		wantMessage: []string{"has no port 8443", "insecureSkipTLSVerify"},
	}, {
		name:        "audit mode reports Enforce as Audit",
		args:        []string{"-f", backendDir, "-f", badCABundle, "--config", configAudit},
		wantCode:    exitOK,
		want:        []policies.Finding{finding("apiservice-cabundle-invalid", policies.Audit, external)},
		wantMessage: []string{"caBundle is invalid"},
	}, {
		name:     "directories with several files and multi-document files",
		args:     []string{"-f", backendDir, "-f", brokenDir},
		wantCode: exitFindings,
		want: []policies.Finding{
			finding("apiservice-cabundle-invalid", policies.Enforce, external),
			finding("apiservice-insecure-skip-tls", policies.Warn, custom),
			finding("apiservice-port-mismatch", policies.Enforce, customV2),
			finding("apiservice-insecure-skip-tls", policies.Warn, customV2),
		},
		wantSources: []string{badCABundle + "#1", insecureSkip + "#1", portMismatch + "#2", portMismatch + "#2"},
	}, {
		name:     "without the backend",
		args:     []string{"-f", insecureSkip},
		wantCode: exitOK,
		want: []policies.Finding{
			finding("apiservice-backend-missing", policies.Warn, custom),
			finding("apiservice-insecure-skip-tls", policies.Warn, custom),
		},
		wantMessage: []string{`namespace "keda" of backend Service`, "insecureSkipTLSVerify"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(append([]string{"check", "-o", "json"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr = %q, want empty", stderr)
			}
			got := decodeReport(t, stdout)
			findings := make([]policies.Finding, 0, len(got))
			var sources []string
			for _, f := range got {
				findings = append(findings, policies.Finding{Rule: f.Rule, Action: f.Action, Object: f.Object})
				sources = append(sources, f.Source)
			}
			if diff := cmp.Diff(tt.want, findings); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if tt.wantSources != nil {
				if diff := cmp.Diff(tt.wantSources, sources); diff != "" {
					t.Errorf("sources (-want +got):\n%s", diff)
				}
			}
			for i, f := range got {
				if f.Message == "" || f.Fix == "" || !strings.Contains(f.Source, "#") {
					t.Errorf("finding %d (%s) has message %q, fix %q and source %q, want all three", i, f.Rule, f.Message, f.Fix, f.Source)
				}
				if i < len(tt.wantMessage) && !strings.Contains(f.Message, tt.wantMessage[i]) {
					t.Errorf("finding %d message = %q, want it to contain %q", i, f.Message, tt.wantMessage[i])
				}
			}
		})
	}
}

func TestCheckJSONEmptyIsList(t *testing.T) {
	code, stdout, stderr := runMain("check", "-o", "json", "-f", backendDir)
	if code != exitOK {
		t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, exitOK, stderr)
	}
	if want := `{"findings":[]}` + "\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
}

// TestCheckJSONShape: every finding carries the fields the text report shows,
// fix even when empty; detail only when a rule gives one.
func TestCheckJSONShape(t *testing.T) {
	object := policies.ObjectRef{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: "v1beta1.metrics.k8s.io"}
	tests := []struct {
		name string
		in   report
		want string
	}{{
		name: "no findings",
		in:   report{checked: 3},
		want: `{"findings":[]}`,
	}, {
		name: "fix present when empty",
		in: report{findings: []located{{
			Finding: policies.Finding{Rule: "r", Action: policies.Warn, Object: object, Message: "m"},
			source:  stdinName + "#2",
		}}},
		want: `{"findings":[{"rule":"r","action":"Warn","object":{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","namespace":"","name":"v1beta1.metrics.k8s.io"},` +
			`"source":"<stdin>#2","message":"m","fix":""}]}`,
	}, {
		name: "fix and detail",
		in: report{findings: []located{{
			Finding: policies.Finding{Rule: "r", Action: policies.Enforce, Object: object, Message: "m", Fix: "f", Detail: "d"},
			source:  "ms.yaml#1 spec.k0s.config",
		}}},
		want: `{"findings":[{"rule":"r","action":"Enforce","object":{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","namespace":"","name":"v1beta1.metrics.k8s.io"},` +
			`"source":"ms.yaml#1 spec.k0s.config","message":"m","fix":"f","detail":"d"}]}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.in.writeJSON(&b); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want+"\n", b.String()); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	clean := writeGenerated(t, false)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		// wantPrefixes are the beginnings of the finding lines, in order.
		wantPrefixes []string
		wantSummary  string
	}{{
		name:        "clean manifests",
		args:        []string{"-f", backendDir, "-f", clean},
		wantCode:    exitOK,
		wantSummary: "no findings (1 object checked)",
	}, {
		name:     "findings name their rule, object and source document",
		args:     []string{"-f", backendDir, "-f", brokenDir},
		wantCode: exitFindings,
		wantPrefixes: []string{
			"ENFORCE  APIService/v1beta1.external.metrics.k8s.io (" + badCABundle + "#1)  [apiservice-cabundle-invalid] caBundle is invalid: ",
			"WARN     APIService/v1beta1.custom.metrics.k8s.io (" + insecureSkip + "#1)  [apiservice-insecure-skip-tls] insecureSkipTLSVerify is true: ",
			"ENFORCE  APIService/v1beta2.custom.metrics.k8s.io (" + portMismatch + "#2)  [apiservice-port-mismatch] Service keda/keda-operator-metrics-apiserver has no port 8443",
			"WARN     APIService/v1beta2.custom.metrics.k8s.io (" + portMismatch + "#2)  [apiservice-insecure-skip-tls] insecureSkipTLSVerify is true: ",
		},
		wantSummary: "4 findings: 2 enforce, 2 warn, 0 audit (4 objects checked)",
	}, {
		name:     "audit mode",
		args:     []string{"-f", backendDir, "-f", badCABundle, "--config", configAudit},
		wantCode: exitOK,
		wantPrefixes: []string{
			"AUDIT    APIService/v1beta1.external.metrics.k8s.io (" + badCABundle + "#1)  [apiservice-cabundle-invalid] caBundle is invalid: ",
		},
		wantSummary: "1 finding: 0 enforce, 0 warn, 1 audit (1 object checked)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(append([]string{"check"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if diff := cmp.Diff(tt.wantSummary, lines[len(lines)-1]); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			got := lines[:len(lines)-1]
			if len(got) != len(tt.wantPrefixes) {
				t.Fatalf("got %d finding lines, want %d:\n%s", len(got), len(tt.wantPrefixes), stdout)
			}
			for i, line := range got {
				if !strings.HasPrefix(line, tt.wantPrefixes[i]) || !strings.Contains(line, "  Fix: ") {
					t.Errorf("line %d = %q, want prefix %q and a Fix", i, line, tt.wantPrefixes[i])
				}
			}
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// wantStderr are parts of the error message.
		wantStderr []string
	}{{
		name:       "no -f",
		args:       []string{"check"},
		wantStderr: []string{"no manifests", "-f PATH"},
	}, {
		name:       "unknown output format",
		args:       []string{"check", "-f", backendDir, "-o", "yaml"},
		wantStderr: []string{`-o "yaml"`, "text or json"},
	}, {
		name:       "unreadable path",
		args:       []string{"check", "-f", "testdata/check/does-not-exist.yaml"},
		wantStderr: []string{"testdata/check/does-not-exist.yaml"},
	}, {
		name:       "invalid YAML",
		args:       []string{"check", "-f", backendDir, "-f", invalidYAML},
		wantStderr: []string{invalidYAML + "#1", "invalid YAML"},
	}, {
		name:       "bad config names the line",
		args:       []string{"check", "-f", backendDir, "--config", configBad},
		wantStderr: []string{configBad, "line 5", `unknown rule "apiservice-cabundle-invalidd"`},
	}, {
		name:       "missing config",
		args:       []string{"check", "-f", backendDir, "--config", "testdata/check/none.yaml"},
		wantStderr: []string{"reading config", "testdata/check/none.yaml"},
	}, {
		name:       "invalid control-plane CIDR",
		args:       []string{"check", "-f", backendDir, "--control-plane-cidr", "10.0.0.0"},
		wantStderr: []string{`--control-plane-cidr "10.0.0.0"`, "not a CIDR"},
	}, {
		name:       "stdin twice",
		args:       []string{"check", "-f", "-", "-f", "-"},
		wantStderr: []string{"standard input"},
	}, {
		name:       "positional argument",
		args:       []string{"check", backendDir},
		wantStderr: []string{backendDir},
	}, {
		name:       "unknown flag",
		args:       []string{"check", "-f", backendDir, "--outptu", "json"},
		wantStderr: []string{"--outptu"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(tt.args...)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want empty", stdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr = %q, want it to contain %q", stderr, want)
				}
			}
		})
	}
}

func TestCheckStdin(t *testing.T) {
	manifest, err := os.ReadFile(badCABundle)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string // prefix
		wantErr    string
	}{{
		name:       "findings name stdin as their source",
		stdin:      string(manifest),
		args:       []string{"check", "-f", backendDir, "-f", "-"},
		wantCode:   exitFindings,
		wantStdout: "ENFORCE  APIService/v1beta1.external.metrics.k8s.io (<stdin>#1)  [apiservice-cabundle-invalid] ",
	}, {
		name:     "JSON findings name stdin as their source",
		stdin:    string(manifest),
		args:     []string{"check", "-o", "json", "-f", backendDir, "-f", "-"},
		wantCode: exitFindings,
		wantStdout: `{"findings":[{"rule":"apiservice-cabundle-invalid","action":"Enforce",` +
			`"object":{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","namespace":"","name":"v1beta1.external.metrics.k8s.io"},` +
			`"source":"<stdin>#1","message":"`,
	}, {
		name:     "errors name stdin",
		stdin:    "apiVersion: v1\nkind: Namespace\nmetadata: {name: keda}\n---\nkind: [\n",
		args:     []string{"check", "-f", "-"},
		wantCode: exitUsage,
		wantErr:  "<stdin>#2: invalid YAML",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := NewRootCommand(&stdout, &stderr)
			cmd.SetIn(strings.NewReader(tt.stdin))
			cmd.SetArgs(tt.args)
			err := cmd.ExecuteContext(t.Context())
			code := exitOK
			if ee, ok := err.(*exitError); ok {
				code = ee.code
			} else if err != nil {
				t.Fatalf("error %v is not an *exitError", err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (error %v)", code, tt.wantCode, err)
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want prefix %q", stdout.String(), tt.wantStdout)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(fmt.Sprint(err)+stdout.String(), os.TempDir()) {
				t.Errorf("output names the temporary file:\n%s%v", stdout.String(), err)
			}
		})
	}
}

func TestCheckOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		cidrs   []string
		want    []netip.Prefix
		wantErr string
	}{{
		name: "none",
		want: []netip.Prefix{},
	}, {
		name:  "IPv4 and IPv6",
		cidrs: []string{"172.16.0.0/28", "fd00:10::/64"},
		want:  []netip.Prefix{netip.MustParsePrefix("172.16.0.0/28"), netip.MustParsePrefix("fd00:10::/64")},
	}, {
		name:    "host bits set",
		cidrs:   []string{"172.16.0.1/28"},
		wantErr: "did you mean 172.16.0.0/28?",
	}, {
		name:    "not a CIDR",
		cidrs:   []string{"master"},
		wantErr: "not a CIDR",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &checkOptions{files: []string{backendDir}, output: outputText, controlPlaneCIDRs: tt.cidrs}
			err := o.validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("validate() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate() = %v", err)
			}
			if diff := cmp.Diff(tt.want, o.controlPlanePrefixes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("prefixes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckDuplicateObjectIsReviewedTwiceAndNoted: broken.yaml and fixed.yaml
// of one object side by side are both reviewed; the note goes to stderr so
// JSON on stdout stays parseable.
func TestCheckDuplicateObjectIsReviewedTwiceAndNoted(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main([]string{"check", "-o", "json", "-f", "../../../examples/cabundle-mismatch"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, want 0; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "note: APIService.apiregistration.k8s.io v1beta1.external.metrics.k8s.io is defined twice") {
		t.Errorf("stderr lacks the duplicate note: %q", stderr.String())
	}
	var out struct {
		Findings []policies.Finding `json:"findings"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("stdout is not JSON: %v: %s", err, stdout.String())
	}
}

// TestCheckNamespaceForNamespacelessManifests: like kubectl apply -n, -n puts
// namespaced objects that name no namespace (helm template output) there, so
// a default-deny rendered without a namespace is judged against the backend.
func TestCheckNamespaceForNamespacelessManifests(t *testing.T) {
	const file = "testdata/check/namespaceless.yaml"
	var stdout, stderr bytes.Buffer
	code := Main([]string{"check", "-o", "json", "-n", "kube-system", "--control-plane-cidr", "10.0.0.1/32", "-f", file}, &stdout, &stderr)
	if code != exitFindings {
		t.Fatalf("exit %d, want %d; stderr: %s\n%s", code, exitFindings, stderr.String(), stdout.String())
	}
	var out struct {
		Findings []policies.Finding `json:"findings"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	var got []policies.ObjectRef
	for _, f := range out.Findings {
		if f.Rule == "networkpolicy-blocks-apiservice" {
			got = append(got, f.Object)
		}
	}
	want := []policies.ObjectRef{{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: "kube-system", Name: "deny"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("blocks-apiservice findings (-want +got):\n%s", diff)
	}
	// Without -n the objects land in "default", away from the backend's
	// namespace: nothing to block there.
	stdout.Reset()
	if code := Main([]string{"check", "-o", "json", "--control-plane-cidr", "10.0.0.1/32", "-f", file}, &stdout, &stderr); code != exitOK {
		t.Fatalf("without -n: exit %d, want 0: %s", code, stdout.String())
	}
}

// TestCheckKustomizationNote: a directory holding a kustomization, at its top
// or below, gets a note on stderr saying how to check what it builds; the
// JSON on stdout is unchanged.
func TestCheckKustomizationNote(t *testing.T) {
	const (
		kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml]\n"
		namespace     = "apiVersion: v1\nkind: Namespace\nmetadata: {name: keda}\n"
		// patch is a JSON 6902 patch, which is no Kubernetes object.
		patch = "- op: add\n  path: /metadata/labels\n  value: {a: b}\n"
	)
	note := func(dir, file string) string {
		return "note: " + dir + " holds a " + file + "; its files were read as they are, not built: " +
			"check what it builds with: kubectl kustomize " + dir + " | apiservice-guard check -f -\n"
	}
	tests := []struct {
		name  string
		files map[string]string // relative to a new directory
		arg   string            // -f, relative to that directory
		// wantStderr is stderr with the directory written as DIR.
		wantStderr []string
		wantCode   int
	}{{
		name:       "at the top",
		files:      map[string]string{"kustomization.yaml": kustomization, "namespace.yaml": namespace},
		arg:        ".",
		wantStderr: []string{note("DIR", "kustomization.yaml")},
	}, {
		name: "below, each kustomization once",
		files: map[string]string{
			"base/Kustomization": kustomization, "base/namespace.yaml": namespace,
			"overlays/prod/kustomization.yml": "resources: [../../base]\n",
		},
		arg:        ".",
		wantStderr: []string{note("DIR/base", "Kustomization"), note("DIR/overlays/prod", "kustomization.yml")},
	}, {
		name:  "a patch that does not load still gets the note",
		files: map[string]string{"kustomization.yaml": kustomization, "namespace.yaml": namespace, "patch.yaml": patch},
		arg:   ".",
		wantStderr: []string{
			note("DIR", "kustomization.yaml"),
			"Error: DIR/patch.yaml#1: not a Kubernetes object: apiVersion and kind are required\n",
		},
		wantCode: exitUsage,
	}, {
		name:  "hidden directories are not walked",
		files: map[string]string{".github/kustomization.yaml": kustomization, "namespace.yaml": namespace},
		arg:   ".",
	}, {
		name:  "a file given by name",
		files: map[string]string{"kustomization.yaml": kustomization, "namespace.yaml": namespace},
		arg:   "namespace.yaml",
	}, {
		name:       "a directory name a shell would split is quoted",
		files:      map[string]string{"my app/kustomization.yaml": kustomization, "my app/namespace.yaml": namespace},
		arg:        "my app",
		wantStderr: []string{"note: DIR/my app holds a kustomization.yaml; its files were read as they are, not built: check what it builds with: kubectl kustomize 'DIR/my app' | apiservice-guard check -f -\n"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				path := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			arg := filepath.Join(dir, tt.arg)
			code, stdout, stderr := runMain("check", "-o", "json", "-f", arg)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if tt.wantCode == exitOK && stdout != `{"findings":[]}`+"\n" {
				t.Errorf("stdout = %q, want no findings", stdout)
			}
			want := strings.ReplaceAll(strings.Join(tt.wantStderr, ""), "DIR", dir)
			if diff := cmp.Diff(want, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckK0s: check -f applies the k0s rules to k0s.yaml files and to the
// ClusterConfig a k0sctl.yaml embeds, naming where each finding comes from.
func TestCheckK0s(t *testing.T) {
	const dir = "testdata/check/k0s/"
	tests := []struct {
		name      string
		file      string
		wantCode  int
		wantLines []string // beginnings of the finding lines, in order
	}{{
		name:     "k0s.yaml",
		file:     dir + "k0s.yaml",
		wantCode: exitFindings,
		wantLines: []string{
			"ENFORCE  ClusterConfig/kube-system/k0s (" + dir + "k0s.yaml#1)  [k0s-config-invalid] spec.konnectivity.adminPort: Duplicate value: 8132",
		},
	}, {
		name:     "k0sctl.yaml",
		file:     dir + "k0sctl.yaml",
		wantCode: exitFindings,
		wantLines: []string{
			"ENFORCE  ClusterConfig/kube-system/lab (" + dir + "k0sctl.yaml#1 spec.k0s.config)  [k0s-config-invalid] spec.konnectivity.agentPort: Invalid value: 10250: collides with the kubelet port 10250",
			"WARN     ClusterConfig/kube-system/lab (" + dir + "k0sctl.yaml#1 spec.k0s.config)  [k0s-calico-autodetect] calico without spec.network.calico.ipAutodetectionMethod",
		},
	}, {
		name:     "k0sctl.yaml without a k0s config",
		file:     dir + "k0sctl-no-config.yaml",
		wantCode: exitOK,
	}, {
		// k0s reads its file strictly: an unknown field or a key written
		// twice, named with its line; a legacy field alone passes.
		name:     "unknown field and duplicate key",
		file:     dir + "unknown-fields.yaml",
		wantCode: exitFindings,
		wantLines: []string{
			"ENFORCE  ClusterConfig/kube-system/k0s (" + dir + "unknown-fields.yaml#1)  [k0s-config-invalid] k0s refuses unknown fields and duplicate keys: " +
				"line 10: spec.netwrok: unknown field; line 14: spec.konnectivity.agentPort: duplicate key (first at line 13)",
		},
	}, {
		name:     "k0sctl.yaml with an unknown field in the k0s config",
		file:     dir + "k0sctl-unknown-field.yaml",
		wantCode: exitFindings,
		wantLines: []string{
			"ENFORCE  ClusterConfig/kube-system/lab (" + dir + "k0sctl-unknown-field.yaml#1 spec.k0s.config)  [k0s-config-invalid] k0s refuses unknown fields and duplicate keys: line 16: spec.podCIDRs: unknown field",
		},
	}, {
		name:     "wrong types",
		file:     dir + "bad-types.yaml",
		wantCode: exitFindings,
		wantLines: []string{
			"ENFORCE  ClusterConfig/kube-system/k0s (" + dir + "bad-types.yaml#1)  [k0s-config-invalid] spec.network.podCIDR: Invalid value: must be a string, not an array",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain("check", "-f", tt.file)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			got := lines[:len(lines)-1]
			if len(got) != len(tt.wantLines) {
				t.Fatalf("got %d finding lines, want %d:\n%s", len(got), len(tt.wantLines), stdout)
			}
			for i, line := range got {
				if !strings.HasPrefix(line, tt.wantLines[i]) {
					t.Errorf("line %d:\n got %s\nwant %s...", i+1, line, tt.wantLines[i])
				}
			}
		})
	}
}

// TestCheckCiliumExample: examples/cilium-keda. KEDA's Cilium flavour
// (cluster only) is refused with an API server outside the cluster, and
// the APIService is reported unreachable, naming the policy and the rule
// that admits the API server; the fixed policy leaves neither finding.
func TestCheckCiliumExample(t *testing.T) {
	const dir = "../../../examples/cilium-keda/"
	run := func(files ...string) (int, []policies.Finding) {
		t.Helper()
		args := []string{"check", "-o", "json"}
		for _, f := range files {
			args = append(args, "-f", f)
		}
		var stdout, stderr bytes.Buffer
		code := Main(append(args, "--control-plane-cidr", "203.0.113.10/32"), &stdout, &stderr)
		var out struct {
			Findings []policies.Finding `json:"findings"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			t.Fatalf("stdout is not JSON (%v): %s\n%s", err, stdout.String(), stderr.String())
		}
		return code, out.Findings
	}
	cut := func(fs []policies.Finding) []string {
		var out []string
		for _, f := range fs {
			if f.Rule == "networkpolicy-blocks-apiservice" || f.Rule == "apiservice-unreachable" {
				out = append(out, f.Rule+" "+f.Object.Kind)
			}
		}
		return out
	}
	code, fs := run(dir+"backend.yaml", dir+"broken.yaml")
	want := []string{"apiservice-unreachable APIService", "networkpolicy-blocks-apiservice CiliumNetworkPolicy"}
	if diff := cmp.Diff(want, cut(fs)); diff != "" || code != exitFindings {
		t.Fatalf("broken: exit %d, findings (-want +got):\n%s\n%v", code, diff, fs)
	}
	for _, f := range fs {
		if f.Rule == "networkpolicy-blocks-apiservice" && (!strings.Contains(f.Message, "isolated by keda/keda-operator-metrics-apiserver, Cilium") ||
			!strings.Contains(f.Fix, "fromEntities: [kube-apiserver]")) {
			t.Errorf("finding lacks the policy or the fix: %+v", f)
		}
	}
	if _, fs := run(dir+"backend.yaml", dir+"fixed.yaml"); len(cut(fs)) != 0 {
		t.Errorf("fixed: %v", fs)
	}
}
