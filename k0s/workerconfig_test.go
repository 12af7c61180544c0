package k0s_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"apiservice-guard.io/apiservice-guard/k0s"
)

func TestIsWorkerConfig(t *testing.T) {
	k0sLabels := map[string]string{
		"app.kubernetes.io/managed-by": "k0s",
		"app.kubernetes.io/component":  "worker-config",
	}
	tests := []struct {
		name   string
		cmName string
		labels map[string]string
		want   bool
	}{
		{name: "labelled by k0s", cmName: "anything", labels: k0sLabels, want: true},
		{name: "labelled by k0s, among other labels", cmName: "anything", labels: map[string]string{
			"app.kubernetes.io/managed-by": "k0s", "app.kubernetes.io/component": "worker-config", "k0s.k0sproject.io/stack": "k0s-worker-config-1.32",
		}, want: true},
		{name: "named for the default profile", cmName: "worker-config-default-1.32", want: true},
		{name: "named for the windows default profile", cmName: "worker-config-default-windows-1.33", want: true},
		{name: "named for a custom profile", cmName: "worker-config-gpu-nodes-1.30", want: true},
		{name: "named with a two-digit minor and major", cmName: "worker-config-x-10.100", want: true},
		{name: "no version", cmName: "worker-config-default"},
		{name: "no profile", cmName: "worker-config-1.32"},
		{name: "a patch version", cmName: "worker-config-default-1.32.1"},
		{name: "a suffix", cmName: "worker-config-default-1.32-old"},
		{name: "a prefix", cmName: "old-worker-config-default-1.32"},
		{name: "kube-proxy", cmName: "kube-proxy"},
		{name: "only managed-by", cmName: "kube-proxy", labels: map[string]string{"app.kubernetes.io/managed-by": "k0s"}},
		{name: "only component", cmName: "kube-proxy", labels: map[string]string{"app.kubernetes.io/component": "worker-config"}},
		{name: "managed by another tool", cmName: "kube-proxy", labels: map[string]string{
			"app.kubernetes.io/managed-by": "helm", "app.kubernetes.io/component": "worker-config",
		}},
		{name: "nil labels, empty name", cmName: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := k0s.IsWorkerConfig(tc.cmName, tc.labels); got != tc.want {
				t.Errorf("IsWorkerConfig(%q, %v) = %v, want %v", tc.cmName, tc.labels, got, tc.want)
			}
		})
	}
}

func TestParseWorkerKonnectivity(t *testing.T) {
	const example = `{"enabled":true,"agentPort":8132}`
	tests := []struct {
		name    string
		in      string
		want    k0s.WorkerKonnectivity
		wantErr string // the whole error text; "" means no error
		// wantField is the path of the *field.Error, when the error is one.
		wantField string
		wantType  field.ErrorType
	}{
		{name: "enabled", in: `{"enabled":true,"agentPort":8132}`, want: k0s.WorkerKonnectivity{Enabled: true, AgentPort: 8132}},
		{name: "enabled omitted, as k0s writes false", in: `{"agentPort":8132}`, want: k0s.WorkerKonnectivity{AgentPort: 8132}},
		{name: "enabled false", in: `{"enabled":false,"agentPort":9132}`, want: k0s.WorkerKonnectivity{AgentPort: 9132}},
		{name: "YAML", in: "enabled: true\nagentPort: 8132", want: k0s.WorkerKonnectivity{Enabled: true, AgentPort: 8132}},
		{name: "YAML flow mapping", in: "{enabled: true, agentPort: 8132}", want: k0s.WorkerKonnectivity{Enabled: true, AgentPort: 8132}},
		{name: "surrounding whitespace", in: "\n  {\"agentPort\":8132}\n", want: k0s.WorkerKonnectivity{AgentPort: 8132}},
		{name: "unknown fields", in: `{"enabled":true,"agentPort":8132,"externalAddress":"k.example","x":[1]}`, want: k0s.WorkerKonnectivity{Enabled: true, AgentPort: 8132}},
		{name: "field names of another case", in: `{"Enabled":true,"AGENTPORT":8132}`, want: k0s.WorkerKonnectivity{Enabled: true, AgentPort: 8132}},
		{name: "port bounds: 1", in: `{"agentPort":1}`, want: k0s.WorkerKonnectivity{AgentPort: 1}},
		{name: "port bounds: 65535", in: `{"agentPort":65535}`, want: k0s.WorkerKonnectivity{AgentPort: 65535}},
		{
			name:      "not JSON",
			in:        `not json {`,
			wantErr:   `data[konnectivity]: Invalid value: must be an object like ` + example + `, not a string`,
			wantField: "data[konnectivity]",
			wantType:  field.ErrorTypeTypeInvalid,
		},
		{
			name:      "a list",
			in:        `[1]`,
			wantErr:   `data[konnectivity]: Invalid value: must be an object like ` + example + `, not an array`,
			wantField: "data[konnectivity]",
			wantType:  field.ErrorTypeTypeInvalid,
		},
		{
			name:      "a number",
			in:        `8132`,
			wantErr:   `data[konnectivity]: Invalid value: must be an object like ` + example + `, not a number`,
			wantField: "data[konnectivity]",
			wantType:  field.ErrorTypeTypeInvalid,
		},
		{
			name:      "enabled a string",
			in:        `{"enabled":"no","agentPort":1}`,
			want:      k0s.WorkerKonnectivity{AgentPort: 1},
			wantErr:   `data[konnectivity].enabled: Invalid value: must be a boolean, not a string`,
			wantField: "data[konnectivity].enabled",
			wantType:  field.ErrorTypeTypeInvalid,
		},
		{
			name:      "agentPort a string",
			in:        `{"enabled":true,"agentPort":"8132"}`,
			want:      k0s.WorkerKonnectivity{Enabled: true},
			wantErr:   `data[konnectivity].agentPort: Invalid value: must be an integer, not a string`,
			wantField: "data[konnectivity].agentPort",
			wantType:  field.ErrorTypeTypeInvalid,
		},
		{
			name:      "agentPort 1e30",
			in:        `{"agentPort":1e30}`,
			wantErr:   `data[konnectivity].agentPort: Invalid value: must be an integer, not the number 1e+30`,
			wantField: "data[konnectivity].agentPort",
			wantType:  field.ErrorTypeTypeInvalid,
		},
		{
			name:      "agentPort 70000",
			in:        `{"enabled":true,"agentPort":70000}`,
			want:      k0s.WorkerKonnectivity{Enabled: true, AgentPort: 70000},
			wantErr:   `data[konnectivity].agentPort: Invalid value: 70000: must be between 1 and 65535, inclusive`,
			wantField: "data[konnectivity].agentPort",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "agentPort 0",
			in:        `{"enabled":true,"agentPort":0}`,
			want:      k0s.WorkerKonnectivity{Enabled: true},
			wantErr:   `data[konnectivity].agentPort: Invalid value: 0: must be between 1 and 65535, inclusive`,
			wantField: "data[konnectivity].agentPort",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "agentPort negative",
			in:        `{"agentPort":-1}`,
			want:      k0s.WorkerKonnectivity{AgentPort: -1},
			wantErr:   `data[konnectivity].agentPort: Invalid value: -1: must be between 1 and 65535, inclusive`,
			wantField: "data[konnectivity].agentPort",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "agentPort missing",
			in:        `{"enabled":true}`,
			want:      k0s.WorkerKonnectivity{Enabled: true},
			wantErr:   `data[konnectivity].agentPort: Invalid value: 0: must be between 1 and 65535, inclusive`,
			wantField: "data[konnectivity].agentPort",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "empty",
			in:        ``,
			wantErr:   `data[konnectivity].agentPort: Invalid value: 0: must be between 1 and 65535, inclusive`,
			wantField: "data[konnectivity].agentPort",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:    "invalid YAML",
			in:      `{"agentPort": [}`,
			wantErr: `data[konnectivity]: not JSON (nor YAML): `,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k0s.ParseWorkerKonnectivity(tc.in)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ParseWorkerKonnectivity(): %v", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("ParseWorkerKonnectivity() = %+v, error %v; want error %q", got, err, tc.wantErr)
			case tc.wantField != "" && err.Error() != tc.wantErr:
				t.Errorf("ParseWorkerKonnectivity() error = %q, want %q", err, tc.wantErr)
			}
			if tc.wantField != "" {
				var fe *field.Error
				if !errors.As(err, &fe) {
					t.Fatalf("ParseWorkerKonnectivity() error = %#v, want a *field.Error", err)
				}
				if diff := cmp.Diff(fieldErr{Type: tc.wantType, Field: tc.wantField}, fieldErr{Type: fe.Type, Field: fe.Field}); diff != "" {
					t.Errorf("ParseWorkerKonnectivity() error mismatch (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseWorkerKonnectivity() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseWorkerKonnectivityTooLarge(t *testing.T) {
	in := `{"enabled":true,"agentPort":8132}` + strings.Repeat(" ", k0s.MaxDocumentBytes)
	got, err := k0s.ParseWorkerKonnectivity(in)
	if !errors.Is(err, k0s.ErrTooLarge) {
		t.Fatalf("ParseWorkerKonnectivity() error = %v, want ErrTooLarge", err)
	}
	if !strings.HasPrefix(err.Error(), "data[konnectivity]: ") {
		t.Errorf("ParseWorkerKonnectivity() error = %q, want it to name data[konnectivity]", err)
	}
	if diff := cmp.Diff(k0s.WorkerKonnectivity{}, got); diff != "" {
		t.Errorf("ParseWorkerKonnectivity() mismatch (-want +got):\n%s", diff)
	}
}
