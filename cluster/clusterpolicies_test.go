package cluster

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// TestClusterPolicies: every version comes out as v1beta1, an object
// served in both ClusterNetworkPolicy versions once (v1beta1's), the
// v1alpha1 kinds with their kinds; with v1beta1 alone, its list as it is.
func TestClusterPolicies(t *testing.T) {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
	beta := []*cnpv1beta1.ClusterNetworkPolicy{{ObjectMeta: meta("a"), Spec: cnpv1beta1.ClusterNetworkPolicySpec{Priority: 1}}}
	alpha := []*cnpv1alpha2.ClusterNetworkPolicy{{ObjectMeta: meta("a"), Spec: cnpv1alpha2.ClusterNetworkPolicySpec{Priority: 2}}, {ObjectMeta: meta("b")}}
	got := clusterPolicies(beta, alpha, []*anpv1alpha1.AdminNetworkPolicy{{ObjectMeta: meta("c")}}, []*anpv1alpha1.BaselineAdminNetworkPolicy{{ObjectMeta: meta("default")}})
	type named struct {
		Kind, Name string
		Priority   int32
	}
	var names []named
	for _, p := range got {
		names = append(names, named{p.Kind, p.Name, p.Spec.Priority})
	}
	want := []named{{"", "a", 1}, {"", "b", 0}, {"AdminNetworkPolicy", "c", 0}, {"BaselineAdminNetworkPolicy", "default", 1000}}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if only := clusterPolicies(beta, nil, nil, nil); len(only) != 1 || only[0] != beta[0] {
		t.Errorf("v1beta1 alone: %v", only)
	}
}

// TestStaticCiliumPolicies: both Cilium kinds read from files, tolerant of
// fields the guard does not read (L7 rules, description).
func TestStaticCiliumPolicies(t *testing.T) {
	s, err := LoadStatic(filepath.Join("testdata", "cilium"))
	if err != nil {
		t.Fatalf("LoadStatic: %v", err)
	}
	ps, err := s.CiliumPolicies(t.Context())
	if err != nil || len(ps) != 2 {
		t.Fatalf("CiliumPolicies = %v, %v", ps, err)
	}
	cnp, ccnp := ps[0], ps[1]
	if cnp.Namespace != "keda" || cnp.Spec.Ingress[0].FromEntities[0] != "cluster" || cnp.Spec.Ingress[0].ToPorts[0].Ports[0].Port != "6443" {
		t.Errorf("CiliumNetworkPolicy read as %+v", cnp)
	}
	if ccnp.Name != "deny-world" || ccnp.Namespace != "" || ccnp.Spec.IngressDeny[0].FromEntities[0] != "world" {
		t.Errorf("CiliumClusterwideNetworkPolicy read as %+v", ccnp)
	}
}
