package policies

import (
	"context"
	"hash/maphash"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// The group/kinds of the cluster-scoped policy APIs of
// policy.networking.k8s.io.
var (
	ClusterNetworkPolicyKind       = schema.GroupKind{Group: cnpv1beta1.GroupName, Kind: "ClusterNetworkPolicy"}
	AdminNetworkPolicyKind         = schema.GroupKind{Group: anpv1alpha1.GroupName, Kind: "AdminNetworkPolicy"}
	BaselineAdminNetworkPolicyKind = schema.GroupKind{Group: anpv1alpha1.GroupName, Kind: "BaselineAdminNetworkPolicy"}
)

// clusterPolicyKinds are the kinds whose writes the NetworkPolicy rules
// judge besides NetworkPolicies.
var clusterPolicyKinds = []schema.GroupKind{ClusterNetworkPolicyKind, AdminNetworkPolicyKind, BaselineAdminNetworkPolicyKind}

// isClusterPolicyKind reports whether k is one of clusterPolicyKinds.
func isClusterPolicyKind(k schema.GroupKind) bool {
	return k == ClusterNetworkPolicyKind || k == AdminNetworkPolicyKind || k == BaselineAdminNetworkPolicyKind
}

// asClusterNetworkPolicy converts a decoded cluster-scoped policy of any
// version to a v1beta1 ClusterNetworkPolicy; nil for anything else.
func asClusterNetworkPolicy(obj any) *cnpv1beta1.ClusterNetworkPolicy {
	switch o := obj.(type) {
	case *cnpv1beta1.ClusterNetworkPolicy:
		return o
	case *cnpv1alpha2.ClusterNetworkPolicy:
		c, err := netpol.ClusterNetworkPolicyFromV1Alpha2(o)
		if err != nil {
			return nil
		}
		return c
	case *anpv1alpha1.AdminNetworkPolicy:
		return netpol.FromAdminNetworkPolicy(o)
	case *anpv1alpha1.BaselineAdminNetworkPolicy:
		return netpol.FromBaselineAdminNetworkPolicy(o)
	}
	return nil
}

// compiledTiers memoizes netpol.CompileTiers of the cluster's
// ClusterNetworkPolicies by a fingerprint of their kinds, names and
// resourceVersions (as compiledSets does for a namespace); a listing with a
// policy without resourceVersion is compiled every time.
type compiledTiers struct {
	mu   sync.Mutex
	seed maphash.Seed
	fp   fingerprint
	kind uint64 // the kinds mixed in, with the fingerprint
	t    *netpol.Tiers
}

func newCompiledTiers() *compiledTiers { return &compiledTiers{seed: maphash.MakeSeed()} }

// compile returns the compiled tiers of policies.
func (c *compiledTiers) compile(policies []*cnpv1beta1.ClusterNetworkPolicy) *netpol.Tiers {
	if c == nil || len(policies) == 0 {
		return netpol.CompileTiers(policies)
	}
	fp := fingerprint{n: len(policies)}
	var kinds uint64
	for _, p := range policies {
		if p.ResourceVersion == "" {
			return netpol.CompileTiers(policies)
		}
		fp.sum += maphash.String(c.seed, p.Name)*0x9e3779b97f4a7c15 ^ maphash.String(c.seed, p.ResourceVersion)
		kinds += maphash.String(c.seed, p.Kind)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t != nil && c.fp == fp && c.kind == kinds {
		return c.t
	}
	c.t, c.fp, c.kind = netpol.CompileTiers(policies), fp, kinds
	return c.t
}

type tiersKey struct{}

// tiersFor is the compiled tiers of the cluster's policies, once per
// review; nil when there are none.
func tiersFor(ctx context.Context, r *Review, v cluster.View) *netpol.Tiers {
	return memoize(r, tiersKey{}, func() *netpol.Tiers {
		cnps, err := v.ClusterNetworkPolicies(ctx)
		if err != nil || len(cnps) == 0 {
			return nil
		}
		return r.tiers.compile(cnps)
	})
}
