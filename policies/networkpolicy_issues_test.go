package policies_test

import (
	"strings"
	"testing"

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
				if f.Rule == "networkpolicy-blocks-apiservice" {
					got = append(got, f)
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
		})
	}
}

func ptrIntOrString(v intstr.IntOrString) *intstr.IntOrString { return &v }
