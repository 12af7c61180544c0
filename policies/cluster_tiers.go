package policies

import (
	"context"
	"hash/maphash"
	"slices"
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

// Cilium's policy kinds.
var (
	CiliumNetworkPolicyKind            = schema.GroupKind{Group: cluster.CiliumGroupVersion.Group, Kind: netpol.CiliumNetworkPolicyKind}
	CiliumClusterwideNetworkPolicyKind = schema.GroupKind{Group: cluster.CiliumGroupVersion.Group, Kind: netpol.CiliumClusterwideNetworkPolicyKind}
)

// layerKinds are the kinds whose writes the NetworkPolicy rules judge
// besides NetworkPolicies: the cluster-wide layers.
var layerKinds = []schema.GroupKind{ClusterNetworkPolicyKind, AdminNetworkPolicyKind, BaselineAdminNetworkPolicyKind,
	CiliumNetworkPolicyKind, CiliumClusterwideNetworkPolicyKind}

// isLayerKind reports whether k is one of layerKinds.
func isLayerKind(k schema.GroupKind) bool { return slices.Contains(layerKinds, k) }

// asCiliumPolicy is a decoded Cilium policy of either kind (a clusterwide
// one without namespace); nil for anything else.
func asCiliumPolicy(obj any) *netpol.CiliumPolicy {
	switch o := obj.(type) {
	case *cluster.CiliumNetworkPolicy:
		return &o.CiliumPolicy
	case *cluster.CiliumClusterwideNetworkPolicy:
		c := o.CiliumPolicy
		c.Namespace = ""
		return &c
	}
	return nil
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

// layerPolicy is a policy of a cluster-wide layer: ClusterNetworkPolicies
// (any kind, converted) or Cilium's policies.
type layerPolicy interface {
	GetNamespace() string
	GetName() string
	GetResourceVersion() string
}

// compiledLayer memoizes the compilation of a cluster-wide layer's
// policies by a fingerprint of their kinds, namespaces, names and
// resourceVersions (as compiledSets does for a namespace); a listing with a
// policy without resourceVersion is compiled every time.
type compiledLayer[P layerPolicy, T any] struct {
	build func([]P) T
	// kindOf tells apart policies of one name and namespace (nil: nothing
	// does).
	kindOf func(P) string
	mu     sync.Mutex
	seed   maphash.Seed
	fp     fingerprint
	kind   uint64 // the kinds mixed in, with the fingerprint
	t      T
	ok     bool
	// first and n are the listing compiled last: the same listing again
	// (Live keeps one while no policy changes) is a hit without a
	// fingerprint.
	first *P
	n     int
}

func newCompiledLayer[P layerPolicy, T any](build func([]P) T, kind func(P) string) *compiledLayer[P, T] {
	return &compiledLayer[P, T]{build: build, kindOf: kind, seed: maphash.MakeSeed()}
}

// compiledTiers memoizes netpol.CompileTiers.
type compiledTiers = compiledLayer[*cnpv1beta1.ClusterNetworkPolicy, *netpol.Tiers]

func newCompiledTiers() *compiledTiers { return newCompiledLayer(netpol.CompileTiers, kindOf) }

// compiledCilium memoizes netpol.CompileCilium.
type compiledCilium = compiledLayer[*netpol.CiliumPolicy, *netpol.CiliumSet]

// A CiliumClusterwideNetworkPolicy has no namespace, which tells it apart.
func newCompiledCilium() *compiledCilium { return newCompiledLayer(netpol.CompileCilium, nil) }

// compile returns the compiled policies.
func (c *compiledLayer[P, T]) compile(policies []P) T {
	if c == nil || len(policies) == 0 {
		var zero T
		if c == nil {
			return zero
		}
		return c.build(policies)
	}
	c.mu.Lock()
	hit, t := c.ok && c.first == &policies[0] && c.n == len(policies), c.t
	c.mu.Unlock()
	if hit {
		return t
	}
	fp := fingerprint{n: len(policies)}
	var kinds uint64
	for _, p := range policies {
		rv := p.GetResourceVersion()
		if rv == "" {
			return c.build(policies)
		}
		fp.sum += (maphash.String(c.seed, p.GetNamespace())*31+maphash.String(c.seed, p.GetName()))*0x9e3779b97f4a7c15 ^ maphash.String(c.seed, rv)
		if c.kindOf != nil {
			kinds += maphash.String(c.seed, c.kindOf(p))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.first, c.n = &policies[0], len(policies)
	if c.ok && c.fp == fp && c.kind == kinds {
		return c.t
	}
	c.t, c.fp, c.kind, c.ok = c.build(policies), fp, kinds, true
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

type ciliumKey struct{}

// ciliumFor is the compiled Cilium policies of the cluster, once per
// review; nil when there are none.
func ciliumFor(ctx context.Context, r *Review, v cluster.View) *netpol.CiliumSet {
	return memoize(r, ciliumKey{}, func() *netpol.CiliumSet {
		ps, err := v.CiliumPolicies(ctx)
		if err != nil || len(ps) == 0 {
			return nil
		}
		return r.cilium.compile(ps)
	})
}

// stack is the cluster-wide layers around a namespace's NetworkPolicies:
// ClusterNetworkPolicy tiers, and Cilium's policies, whose model decides
// when there are any.
type stack struct {
	tiers  *netpol.Tiers
	cilium *netpol.CiliumSet
}

// empty reports whether there is no layer.
func (k stack) empty() bool { return k.tiers.Len() == 0 && k.cilium == nil }

// on returns s with the layers.
func (k stack) on(s *netpol.Set) *netpol.Set { return s.WithTiers(k.tiers).WithCilium(k.cilium) }

// stackFor is the cluster's layers, once per review.
func stackFor(ctx context.Context, r *Review, v cluster.View) stack {
	return stack{tiers: tiersFor(ctx, r, v), cilium: ciliumFor(ctx, r, v)}
}
