package k0s_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"apiservice-guard.io/apiservice-guard/k0s"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *k0s.Spec
		wantErr string // the whole error text; "" means no error
		// wantField is the path of the *field.Error, when the error is one.
		wantField string
	}{
		{name: "empty", in: "", want: &k0s.Spec{}},
		{name: "whitespace", in: " \n\t ", want: &k0s.Spec{}},
		{name: "empty object", in: "{}", want: &k0s.Spec{}},
		{name: "null", in: "null", want: &k0s.Spec{}},
		{
			name: "fields the guard reads",
			in: `{"api":{"port":7443},
				"network":{"provider":"calico","podCIDR":"10.32.0.0/12","serviceCIDR":"10.128.0.0/16",
					"calico":{"mode":"bird","ipAutodetectionMethod":"interface=eth1"}},
				"konnectivity":{"agentPort":9132,"adminPort":9133}}`,
			want: &k0s.Spec{
				API: &k0s.API{Port: ptr(7443)},
				Network: &k0s.Network{
					Provider: ptr("calico"), PodCIDR: ptr("10.32.0.0/12"), ServiceCIDR: ptr("10.128.0.0/16"),
					Calico: &k0s.Calico{Mode: ptr("bird"), IPAutodetectionMethod: ptr("interface=eth1")},
				},
				Konnectivity: &k0s.Konnectivity{AgentPort: ptr(9132), AdminPort: ptr(9133)},
			},
		},
		{
			name: "unknown fields are tolerated",
			in: `{"storage":{"type":"etcd","etcd":{"peerAddress":"192.168.1.1"}},
				"network":{"kuberouter":{"autoMTU":true,"mtu":0},"kubeProxy":{"mode":"ipvs"},"podCIDR":"10.244.0.0/16"},
				"extensions":{"helm":{"charts":[{"name":"x"}]}},
				"api":{"sans":["a","b"],"k0sApiPort":9443},
				"konnectivity":{"externalAddress":"k.example"},
				"telemetry":{"enabled":false}}`,
			want: &k0s.Spec{
				API:          &k0s.API{},
				Network:      &k0s.Network{PodCIDR: ptr("10.244.0.0/16")},
				Konnectivity: &k0s.Konnectivity{},
			},
		},
		{
			name: "unknown fields of any type, even where a known one would be wrong",
			in:   `{"storage":1,"network":{"kuberouter":"yes","calico":null},"extensions":[1,2]}`,
			want: &k0s.Spec{Network: &k0s.Network{}},
		},
		{
			name: "field names match without regard to case, as k0s decodes",
			in:   `{"API":{"PORT":7443},"Network":{"podcidr":"10.1.0.0/16","ServiceCidr":"10.2.0.0/16","PROVIDER":"custom"},"konnectivity":{"agentport":9132,"AdminPort":9133}}`,
			want: &k0s.Spec{
				API:          &k0s.API{Port: ptr(7443)},
				Network:      &k0s.Network{Provider: ptr("custom"), PodCIDR: ptr("10.1.0.0/16"), ServiceCIDR: ptr("10.2.0.0/16")},
				Konnectivity: &k0s.Konnectivity{AgentPort: ptr(9132), AdminPort: ptr(9133)},
			},
		},
		{
			name: "null fields are left out",
			in:   `{"network":{"podCIDR":null,"provider":"calico"},"konnectivity":null}`,
			want: &k0s.Spec{Network: &k0s.Network{Provider: ptr("calico")}},
		},
		{
			name:      "podCIDR a number",
			in:        `{"network":{"podCIDR":10}}`,
			wantErr:   "spec.network.podCIDR: Invalid value: must be a string, not a number",
			wantField: "spec.network.podCIDR",
		},
		{
			name:      "podCIDR with another case, a number: path names the field as k0s spells it",
			in:        `{"Network":{"podcidr":10}}`,
			wantErr:   "spec.network.podCIDR: Invalid value: must be a string, not a number",
			wantField: "spec.network.podCIDR",
		},
		{
			name:      "serviceCIDR a list",
			in:        `{"network":{"serviceCIDR":["10.96.0.0/12"]}}`,
			wantErr:   "spec.network.serviceCIDR: Invalid value: must be a string, not an array",
			wantField: "spec.network.serviceCIDR",
		},
		{
			name:      "provider an object",
			in:        `{"network":{"provider":{"name":"calico"}}}`,
			wantErr:   "spec.network.provider: Invalid value: must be a string, not an object",
			wantField: "spec.network.provider",
		},
		{
			name:      "calico mode a boolean",
			in:        `{"network":{"calico":{"mode":true}}}`,
			wantErr:   "spec.network.calico.mode: Invalid value: must be a string, not a boolean",
			wantField: "spec.network.calico.mode",
		},
		{
			name:      "agentPort a string",
			in:        `{"konnectivity":{"agentPort":"8132"}}`,
			wantErr:   "spec.konnectivity.agentPort: Invalid value: must be an integer, not a string",
			wantField: "spec.konnectivity.agentPort",
		},
		{
			name:      "adminPort a fraction",
			in:        `{"konnectivity":{"adminPort":8133.5}}`,
			wantErr:   "spec.konnectivity.adminPort: Invalid value: must be an integer, not the number 8133.5",
			wantField: "spec.konnectivity.adminPort",
		},
		{
			name:      "API port 1e30: an error, not a panic",
			in:        `{"api":{"port":1e30}}`,
			wantErr:   "spec.api.port: Invalid value: must be an integer, not the number 1e30",
			wantField: "spec.api.port",
		},
		{
			name:      "agentPort past int64",
			in:        `{"konnectivity":{"agentPort":99999999999999999999999}}`,
			wantErr:   "spec.konnectivity.agentPort: Invalid value: must be an integer, not the number 99999999999999999999999",
			wantField: "spec.konnectivity.agentPort",
		},
		{
			name:      "network a list",
			in:        `{"network":[{"podCIDR":"10.244.0.0/16"}]}`,
			wantErr:   "spec.network: Invalid value: must be an object, not an array",
			wantField: "spec.network",
		},
		{
			name:      "konnectivity a string",
			in:        `{"konnectivity":"8132"}`,
			wantErr:   "spec.konnectivity: Invalid value: must be an object, not a string",
			wantField: "spec.konnectivity",
		},
		{
			name:      "calico a number",
			in:        `{"network":{"calico":1}}`,
			wantErr:   "spec.network.calico: Invalid value: must be an object, not a number",
			wantField: "spec.network.calico",
		},
		{
			name:      "spec a string",
			in:        `"network"`,
			wantErr:   "spec: Invalid value: must be an object, not a string",
			wantField: "spec",
		},
		{
			name:      "spec a list",
			in:        `[]`,
			wantErr:   "spec: Invalid value: must be an object, not an array",
			wantField: "spec",
		},
		{
			name:      "the first of several wrong types is reported",
			in:        `{"api":{"port":"x"},"network":{"podCIDR":1}}`,
			wantErr:   "spec.api.port: Invalid value: must be an integer, not a string",
			wantField: "spec.api.port",
		},
		{
			name:    "truncated JSON",
			in:      `{"network":`,
			wantErr: "spec: not valid JSON at byte 11: unexpected end of JSON input",
		},
		{
			name:    "YAML is not JSON",
			in:      "konnectivity:\n  agentPort: 8132\n",
			wantErr: "spec: not valid JSON at byte 1: invalid character 'k' looking for beginning of value",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k0s.ParseSpec([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseSpec() = %+v, error %v; want error %q", got, err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("ParseSpec() returned a spec with an error: %+v", got)
				}
				var fe *field.Error
				if tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField || fe.Type != field.ErrorTypeTypeInvalid) {
					t.Errorf("ParseSpec() error %#v, want a field.Error of type TypeInvalid on %s", err, tc.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSpec(): %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseSpec() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSpecTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "at the limit", in: `{"network":{}}` + strings.Repeat(" ", k0s.MaxDocumentBytes-len(`{"network":{}}`))},
		{name: "one byte over", in: `{"network":{}}` + strings.Repeat(" ", k0s.MaxDocumentBytes-len(`{"network":{}}`)+1), wantErr: true},
		{name: "a large value", in: `{"network":{"podCIDR":"` + strings.Repeat("1", k0s.MaxDocumentBytes) + `"}}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k0s.ParseSpec([]byte(tc.in))
			if !tc.wantErr {
				if err != nil || got == nil || got.Network == nil {
					t.Errorf("ParseSpec() = %+v, %v; want a spec with a network", got, err)
				}
				return
			}
			if !errors.Is(err, k0s.ErrTooLarge) {
				t.Fatalf("ParseSpec() error = %v, want one wrapping ErrTooLarge", err)
			}
			if got != nil {
				t.Errorf("ParseSpec() returned a spec with an error: %+v", got)
			}
			if !strings.HasPrefix(err.Error(), "spec: ") {
				t.Errorf("ParseSpec() error = %q, want it to start with the path spec", err)
			}
		})
	}
}

func TestIsClusterConfig(t *testing.T) {
	tests := []struct {
		apiVersion, kind string
		want             bool
	}{
		{"k0s.k0sproject.io/v1beta1", "ClusterConfig", true},
		{"k0s.k0sproject.io/v1", "ClusterConfig", true},
		{"k0s.k0sproject.io/v2", "ClusterConfig", true},
		{"k0s.k0sproject.io/v1beta1", "ClusterConfigList", false},
		{"k0s.k0sproject.io/v1beta1", "clusterconfig", false},
		{"k0s.k0sproject.io/v1beta1", "Chart", false},
		{"k0sctl.k0sproject.io/v1beta1", "ClusterConfig", false},
		{"autopilot.k0sproject.io/v1beta2", "ClusterConfig", false},
		{"v1", "ClusterConfig", false},
		{"k0s.k0sproject.io", "ClusterConfig", false},
		{"k0s.k0sproject.io/v1beta1/x", "ClusterConfig", false},
		{"", "", false},
		{"v1", "ConfigMap", false},
	}
	for _, tc := range tests {
		t.Run(tc.apiVersion+","+tc.kind, func(t *testing.T) {
			if got := k0s.IsClusterConfig(tc.apiVersion, tc.kind); got != tc.want {
				t.Errorf("IsClusterConfig(%q, %q) = %v, want %v", tc.apiVersion, tc.kind, got, tc.want)
			}
		})
	}
}

func TestMentions(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "a k0s.yaml", in: "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\n", want: true},
		{name: "both in a comment", in: "# ClusterConfig of k0s.k0sproject.io\n", want: true},
		{name: "the group only", in: "apiVersion: k0s.k0sproject.io/v1beta1\nkind: Chart\n"},
		{name: "the kind only", in: "apiVersion: example.com/v1\nkind: ClusterConfig\n"},
		{name: "case matters", in: "K0S.K0SPROJECT.IO clusterconfig"},
		{name: "empty", in: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := k0s.Mentions(tc.in); got != tc.want {
				t.Errorf("Mentions(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// aliasBomb is a "billion laughs" YAML document: levels levels of 9 aliases
// each to the level before, 9^levels strings once expanded, that names a
// ClusterConfig in a comment.
func aliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("kind: ClusterConfig # k0s.k0sproject.io\n")
	b.WriteString(`a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i < levels; i++ {
		ref := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(ref+",", 9), ","))
	}
	return b.String()
}

const (
	k0sYAML = `apiVersion: k0s.k0sproject.io/v1beta1
kind: ClusterConfig
metadata:
  name: k0s
spec:
  network:
    provider: calico
    podCIDR: 10.32.0.0/12
  konnectivity:
    agentPort: 9132
`
	configMapYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: k0s-config
  namespace: kube-system
data:
  note: the ClusterConfig is in k0s.k0sproject.io
`
	crdYAML = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusterconfigs.k0s.k0sproject.io
spec:
  group: k0s.k0sproject.io
  names:
    kind: ClusterConfig
    listKind: ClusterConfigList
    plural: clusterconfigs
    singular: clusterconfig
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: true
`
)

var k0sYAMLSpec = &k0s.Spec{
	Network:      &k0s.Network{Provider: ptr("calico"), PodCIDR: ptr("10.32.0.0/12")},
	Konnectivity: &k0s.Konnectivity{AgentPort: ptr(9132)},
}

func TestFindClusterConfig(t *testing.T) {
	fixture, err := os.ReadFile("testdata/k0s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		in        string
		want      *k0s.Spec
		wantFound bool
		wantErr   string // substring; "" means no error
	}{
		{name: "a k0s.yaml", in: k0sYAML, want: k0sYAMLSpec, wantFound: true},
		{
			name: "a full k0s.yaml, as k0s config create writes it",
			in:   string(fixture),
			want: &k0s.Spec{
				API: &k0s.API{Port: ptr(6443)},
				Network: &k0s.Network{
					Provider: ptr("calico"), PodCIDR: ptr("10.244.0.0/16"), ServiceCIDR: ptr("10.96.0.0/12"),
					Calico: &k0s.Calico{Mode: ptr("bird"), IPAutodetectionMethod: ptr("interface=eth1")},
				},
				Konnectivity: &k0s.Konnectivity{AgentPort: ptr(9132), AdminPort: ptr(9133)},
			},
			wantFound: true,
		},
		{
			name:      "JSON, as the API server stores it",
			in:        `{"apiVersion":"k0s.k0sproject.io/v1beta1","kind":"ClusterConfig","metadata":{"name":"k0s","namespace":"kube-system"},"spec":{"network":{"provider":"calico","podCIDR":"10.32.0.0/12"},"konnectivity":{"agentPort":9132}}}`,
			want:      k0sYAMLSpec,
			wantFound: true,
		},
		{name: "no spec: defaults", in: "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\n", want: &k0s.Spec{}, wantFound: true},
		{name: "null spec: defaults", in: "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n", want: &k0s.Spec{}, wantFound: true},
		{name: "second of several documents", in: configMapYAML + "---\n" + k0sYAML, want: k0sYAMLSpec, wantFound: true},
		{name: "after an empty document and comments", in: "---\n# nothing\n---\n" + k0sYAML + "---\n" + configMapYAML, want: k0sYAMLSpec, wantFound: true},
		{name: "empty", in: ""},
		{name: "a ConfigMap manifest", in: configMapYAML},
		{name: "plain text", in: "this is not a ClusterConfig of k0s.k0sproject.io"},
		{name: "a scalar", in: "42"},
		{name: "a list", in: "- apiVersion: k0s.k0sproject.io/v1beta1\n  kind: ClusterConfig\n"},
		{name: "the ClusterConfig CRD", in: crdYAML},
		{name: "another k0s kind", in: "apiVersion: k0s.k0sproject.io/v1beta1\nkind: Chart\nspec:\n  chartName: x\n"},
		{name: "a ClusterConfig of another group", in: "apiVersion: example.com/v1\nkind: ClusterConfig\nspec:\n  network: 1\n"},
		{name: "the kind in a nested object", in: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: k0s.k0sproject.io/v1beta1\n  kind: ClusterConfig\n"},
		{
			name:      "invalid YAML that mentions a ClusterConfig",
			in:        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network: [\n",
			wantFound: true,
			wantErr:   "not valid YAML (document 1)",
		},
		{
			name:      "invalid YAML after a ConfigMap whose text mentions a ClusterConfig",
			in:        configMapYAML + "---\n" + "a: [\n",
			wantFound: true,
			wantErr:   "not valid YAML (document 2)",
		},
		{
			name:    "invalid YAML that does not mention one",
			in:      "apiVersion: v1\nkind: ConfigMap\ndata: [\n",
			wantErr: "not valid YAML",
		},
		{
			name:      "tabs for indentation",
			in:        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n\tnetwork: {}\n",
			wantFound: true,
			wantErr:   "not valid YAML",
		},
		{
			name:      "a version k0s does not serve",
			in:        "apiVersion: k0s.k0sproject.io/v2\nkind: ClusterConfig\nspec: {}\n",
			wantFound: true,
			wantErr:   `apiVersion: Unsupported value: "k0s.k0sproject.io/v2": supported values: "k0s.k0sproject.io/v1beta1"`,
		},
		{
			name:      "a spec with a wrong type",
			in:        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network:\n    podCIDR: 10\n",
			wantFound: true,
			wantErr:   "spec.network.podCIDR: Invalid value: must be a string, not a number",
		},
		{
			name:      "a spec that is a string",
			in:        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec: calico\n",
			wantFound: true,
			wantErr:   "spec: Invalid value: must be an object, not a string",
		},
		{
			name:      "a spec whose network is a list",
			in:        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network:\n  - provider: calico\n",
			wantFound: true,
			wantErr:   "spec.network: Invalid value: must be an object, not an array",
		},
		{
			name:      "the first ClusterConfig is the one read",
			in:        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  konnectivity:\n    agentPort: x\n---\n" + k0sYAML,
			wantFound: true,
			wantErr:   "spec.konnectivity.agentPort: Invalid value: must be an integer, not a string",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, found := k0s.FindClusterConfig(tc.in)
			got, err := doc.Spec, doc.Err
			if found != tc.wantFound {
				t.Errorf("FindClusterConfig() found = %v, want %v", found, tc.wantFound)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FindClusterConfig() error = %v, want one containing %q", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("FindClusterConfig() returned a spec with an error: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindClusterConfig(): %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("FindClusterConfig() spec mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindClusterConfigUnsupportedVersionIsFieldError(t *testing.T) {
	doc, _ := k0s.FindClusterConfig("apiVersion: k0s.k0sproject.io/v2\nkind: ClusterConfig\n")
	var fe *field.Error
	if err := doc.Err; !errors.As(err, &fe) {
		t.Fatalf("FindClusterConfig() error = %#v, want a *field.Error", err)
	}
	if diff := cmp.Diff(fieldErr{Type: field.ErrorTypeNotSupported, Field: "apiVersion"}, fieldErr{Type: fe.Type, Field: fe.Field}); diff != "" {
		t.Errorf("FindClusterConfig() error mismatch (-want +got):\n%s", diff)
	}
}

func TestFindClusterConfigTooLarge(t *testing.T) {
	pad := "\n# " + strings.Repeat("x", k0s.MaxDocumentBytes) + "\n"
	tests := []struct {
		name      string
		in        string
		wantFound bool
	}{
		{name: "a ClusterConfig", in: k0sYAML + pad, wantFound: true},
		{name: "a ConfigMap that mentions one", in: configMapYAML + pad, wantFound: true},
		{name: "neither", in: "apiVersion: v1\nkind: ConfigMap\n" + pad},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, found := k0s.FindClusterConfig(tc.in)
			got, err := doc.Spec, doc.Err
			if !errors.Is(err, k0s.ErrTooLarge) {
				t.Errorf("FindClusterConfig() error = %v, want ErrTooLarge", err)
			}
			if found != tc.wantFound {
				t.Errorf("FindClusterConfig() found = %v, want %v", found, tc.wantFound)
			}
			if got != nil {
				t.Errorf("FindClusterConfig() returned a spec: %+v", got)
			}
		})
	}
	// At the limit exactly, the text is parsed.
	atLimit := k0sYAML + "#" + strings.Repeat("x", k0s.MaxDocumentBytes-len(k0sYAML)-1)
	if len(atLimit) != k0s.MaxDocumentBytes {
		t.Fatalf("test text is %d bytes, want %d", len(atLimit), k0s.MaxDocumentBytes)
	}
	doc, found := k0s.FindClusterConfig(atLimit)
	got, err := doc.Spec, doc.Err
	if err != nil || !found {
		t.Fatalf("FindClusterConfig() at the limit = found %v, error %v; want found, no error", found, err)
	}
	if diff := cmp.Diff(k0sYAMLSpec, got); diff != "" {
		t.Errorf("FindClusterConfig() at the limit mismatch (-want +got):\n%s", diff)
	}
}

// TestFindClusterConfigAliasBomb: a "billion laughs" document is refused
// (the YAML decoder bounds alias expansion), not expanded.
func TestFindClusterConfigAliasBomb(t *testing.T) {
	doc, found := k0s.FindClusterConfig(aliasBomb(9))
	got, err := doc.Spec, doc.Err
	if err == nil || !strings.Contains(err.Error(), "not valid YAML") {
		t.Fatalf("FindClusterConfig(alias bomb) error = %v, want not valid YAML", err)
	}
	if !found {
		t.Errorf("FindClusterConfig(alias bomb) found = false, want true: it mentions a ClusterConfig")
	}
	if got != nil {
		t.Errorf("FindClusterConfig(alias bomb) returned a spec: %+v", got)
	}
}
