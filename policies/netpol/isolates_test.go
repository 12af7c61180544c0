package netpol

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestIsolates(t *testing.T) {
	pod := &Pod{Namespace: "keda", Labels: map[string]string{"app": "adapter"}}
	np := func(sel metav1.LabelSelector, types []networkingv1.PolicyType, egress bool) *networkingv1.NetworkPolicy {
		p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "keda", Name: "p"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: sel, PolicyTypes: types}}
		if egress {
			p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
		}
		return p
	}
	adapter := metav1.LabelSelector{MatchLabels: map[string]string{"app": "adapter"}}
	other := metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
	invalid := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}
	in, eg := networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress
	tests := []struct {
		name string
		np   *networkingv1.NetworkPolicy
		dir  networkingv1.PolicyType
		want bool
	}{
		{"empty selector, default types", np(metav1.LabelSelector{}, nil, false), in, true},
		{"default types: no egress without egress rules", np(metav1.LabelSelector{}, nil, false), eg, false},
		{"default types: egress with egress rules", np(metav1.LabelSelector{}, nil, true), eg, true},
		{"selects the pod", np(adapter, []networkingv1.PolicyType{in}, false), in, true},
		{"selects another pod", np(other, []networkingv1.PolicyType{in}, false), in, false},
		{"egress only", np(adapter, []networkingv1.PolicyType{eg}, false), in, false},
		{"invalid selector selects nothing", np(invalid, nil, false), in, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Isolates(tt.np, tt.dir, pod); got != tt.want {
				t.Errorf("Isolates() = %v, want %v", got, tt.want)
			}
		})
	}
	if Isolates(np(metav1.LabelSelector{}, nil, false), in, &Pod{Namespace: "other"}) {
		t.Error("a policy isolates a pod of another namespace")
	}
}
