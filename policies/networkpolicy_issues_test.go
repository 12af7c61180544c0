package policies_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// TestInvalidPolicyParts: what the API server would reject is reported as a
// Warn naming the field, never a panic; a valid policy gets nothing.
func TestInvalidPolicyParts(t *testing.T) {
	port := func(p int32, end *int32) []networkingv1.NetworkPolicyPort {
		pp := intstr.FromInt32(p)
		return []networkingv1.NetworkPolicyPort{{Port: &pp, EndPort: end}}
	}
	end := int32(80)
	tests := []struct {
		name  string
		rule  networkingv1.NetworkPolicyIngressRule
		field string // "" for a valid policy
	}{
		{"valid", networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}}, ""},
		{"unknown named port is valid", networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: ptrIntOrString(intstr.FromString("no-such-port"))}}}, ""},
		{"unparsable CIDR", networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/99"}}}}, "spec.ingress[0].from[0].ipBlock.cidr"},
		{"except outside cidr", networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"192.168.0.0/16"}}}}}, "spec.ingress[0].from[0].ipBlock.except[0]"},
		{"endPort below port", networkingv1.NetworkPolicyIngressRule{Ports: port(443, &end)}, "spec.ingress[0].ports[0].endPort"},
	}
	view, err := cluster.LoadStatic()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policies.NewEngine(policies.Config{}, policies.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "apps"},
				Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{tt.rule}},
			}
			r := &policies.Review{Operation: policies.Create, Kind: policies.NetworkPolicyKind, Object: np, Namespace: "apps", Name: "p"}
			var got []policies.Finding
			for _, f := range engine.Evaluate(t.Context(), r, view) {
				if f.Rule == "networkpolicy-invalid" {
					got = append(got, f)
				} else {
					t.Errorf("finding of another rule: %v", f)
				}
			}
			if tt.field == "" {
				if len(got) != 0 {
					t.Fatalf("valid policy got findings: %v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Action != policies.Warn || !strings.Contains(got[0].Message, tt.field) {
				t.Fatalf("want one Warn naming %s, got %v", tt.field, got)
			}
			if strings.Count(got[0].Message, "matches nothing") > 1 {
				t.Errorf("message says it twice: %q", got[0].Message)
			}
			validated := *r
			validated.Validated = true
			if got := engine.Evaluate(t.Context(), &validated, view); len(got) != 0 {
				t.Errorf("a validated review (admission) got findings: %v", got)
			}
		})
	}
}

// TestInvalidPolicyPartsOnTheirOwn: networkpolicy-invalid is configured on
// its own, and its findings stay when no control-plane source is known or
// the policy selects no backend, and are capped with a count.
func TestInvalidPolicyPartsOnTheirOwn(t *testing.T) {
	var from []networkingv1.NetworkPolicyPeer
	for range 7 {
		from = append(from, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0/8"}})
	}
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: kedaNS},
		Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: from}}},
	}
	review := func() *policies.Review {
		return &policies.Review{Operation: policies.Create, Judge: policies.JudgeState, Kind: policies.NetworkPolicyKind, Object: np, Namespace: kedaNS, Name: "p"}
	}
	view := newView(t, append(kedaBackend(), np)...)
	tests := []struct {
		name  string
		rules map[string]policies.Action
		want  []verdict
	}{
		{"default", nil, []verdict{{blocksAPIService, policies.Warn}, {"networkpolicy-invalid", policies.Warn},
			{"networkpolicy-invalid", policies.Warn}, {"networkpolicy-invalid", policies.Warn},
			{"networkpolicy-invalid", policies.Warn}, {"networkpolicy-invalid", policies.Warn}}},
		{"off", map[string]policies.Action{"networkpolicy-invalid": policies.Off}, []verdict{{blocksAPIService, policies.Warn}}},
		{"others off", map[string]policies.Action{blocksAPIService: policies.Off}, []verdict{{"networkpolicy-invalid", policies.Warn},
			{"networkpolicy-invalid", policies.Warn}, {"networkpolicy-invalid", policies.Warn},
			{"networkpolicy-invalid", policies.Warn}, {"networkpolicy-invalid", policies.Warn}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engine, err := policies.NewEngine(policies.Config{Rules: tt.rules}, policies.DefaultRules())
			if err != nil {
				t.Fatal(err)
			}
			got := engine.Evaluate(t.Context(), review(), view)
			if diff := cmp.Diff(tt.want, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
			}
			if n := len(got); n > 0 && got[n-1].Rule == "networkpolicy-invalid" && !strings.Contains(got[n-1].Message, "3 more invalid parts") {
				t.Errorf("last finding %q does not count the rest", got[n-1].Message)
			}
		})
	}
}

func ptrIntOrString(v intstr.IntOrString) *intstr.IntOrString { return &v }
