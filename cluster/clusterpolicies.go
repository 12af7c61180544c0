package cluster

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// PolicyAPIs says which cluster-scoped policy APIs of
// policy.networking.k8s.io a cluster serves; the Live view watches those
// only, so a missing CRD never breaks it.
type PolicyAPIs struct {
	// ClusterNetworkPolicyV1Beta1 and ClusterNetworkPolicyV1Alpha2: the
	// ClusterNetworkPolicy kind; when both are served, v1beta1 is read.
	ClusterNetworkPolicyV1Beta1, ClusterNetworkPolicyV1Alpha2 bool
	// AdminNetworkPolicy and BaselineAdminNetworkPolicy: their v1alpha1.
	AdminNetworkPolicy, BaselineAdminNetworkPolicy bool
}

// Any reports whether any of them is served.
func (a PolicyAPIs) Any() bool {
	return a.ClusterNetworkPolicyV1Beta1 || a.ClusterNetworkPolicyV1Alpha2 || a.AdminNetworkPolicy || a.BaselineAdminNetworkPolicy
}

// DiscoverPolicyAPIs reads from mapper which of the APIs the cluster serves.
func DiscoverPolicyAPIs(mapper meta.RESTMapper) PolicyAPIs {
	served := func(version, kind string) bool {
		_, err := mapper.RESTMapping(schema.GroupKind{Group: cnpv1beta1.GroupName, Kind: kind}, version)
		return err == nil
	}
	return PolicyAPIs{
		ClusterNetworkPolicyV1Beta1:  served("v1beta1", "ClusterNetworkPolicy"),
		ClusterNetworkPolicyV1Alpha2: served("v1alpha2", "ClusterNetworkPolicy"),
		AdminNetworkPolicy:           served("v1alpha1", "AdminNetworkPolicy"),
		BaselineAdminNetworkPolicy:   served("v1alpha1", "BaselineAdminNetworkPolicy"),
	}
}

// clusterPolicies converts the policies of every version to v1beta1
// ClusterNetworkPolicies, in a stable order: v1beta1, v1alpha2 (skipping a
// name already read as v1beta1), AdminNetworkPolicies,
// BaselineAdminNetworkPolicies.
func clusterPolicies(v1beta1 []*cnpv1beta1.ClusterNetworkPolicy, v1alpha2 []*cnpv1alpha2.ClusterNetworkPolicy,
	anps []*anpv1alpha1.AdminNetworkPolicy, banps []*anpv1alpha1.BaselineAdminNetworkPolicy) []*cnpv1beta1.ClusterNetworkPolicy {
	if len(v1alpha2) == 0 && len(anps) == 0 && len(banps) == 0 {
		return v1beta1 // the common case: nothing to convert (every review asks)
	}
	out := make([]*cnpv1beta1.ClusterNetworkPolicy, 0, len(v1beta1)+len(v1alpha2)+len(anps)+len(banps))
	var seen map[string]bool
	if len(v1beta1) > 0 && len(v1alpha2) > 0 {
		seen = make(map[string]bool, len(v1beta1))
		for _, p := range v1beta1 {
			seen[p.Name] = true
		}
	}
	out = append(out, v1beta1...)
	for _, p := range v1alpha2 {
		if seen[p.Name] {
			continue // the same object, served in both versions
		}
		if c, err := netpol.ClusterNetworkPolicyFromV1Alpha2(p); err == nil {
			out = append(out, c)
		}
	}
	for _, p := range anps {
		out = append(out, netpol.FromAdminNetworkPolicy(p))
	}
	for _, p := range banps {
		out = append(out, netpol.FromBaselineAdminNetworkPolicy(p))
	}
	return out
}

// ClusterNetworkPolicies implements View: every ClusterNetworkPolicy,
// AdminNetworkPolicy and BaselineAdminNetworkPolicy the files hold.
func (s *Static) ClusterNetworkPolicies(context.Context) ([]*cnpv1beta1.ClusterNetworkPolicy, error) {
	g := cnpv1beta1.GroupName
	return clusterPolicies(list[*cnpv1beta1.ClusterNetworkPolicy](s, g, "ClusterNetworkPolicy", ""),
		list[*cnpv1alpha2.ClusterNetworkPolicy](s, g, "ClusterNetworkPolicy", ""),
		list[*anpv1alpha1.AdminNetworkPolicy](s, g, "AdminNetworkPolicy", ""),
		list[*anpv1alpha1.BaselineAdminNetworkPolicy](s, g, "BaselineAdminNetworkPolicy", "")), nil
}

// ClusterNetworkPolicies implements View: from the informers of the APIs
// the cluster serves (LiveOptions.PolicyAPIs); none when it serves none.
func (l *Live) ClusterNetworkPolicies(ctx context.Context) ([]*cnpv1beta1.ClusterNetworkPolicy, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	return clusterPolicies(listOrNone(l.cnpV1Beta1), listOrNone(l.cnpV1Alpha2), listOrNone(l.anps), listOrNone(l.banps)), nil
}

// listOrNone lists the store, which is nil for an API the cluster does not
// serve.
func listOrNone[T any](s *store[T]) []*T {
	if s == nil {
		return nil
	}
	return s.list()
}
