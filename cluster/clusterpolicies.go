package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// PolicyAPIs says which policy APIs besides NetworkPolicy a cluster
// serves: the cluster-scoped ones of policy.networking.k8s.io and Cilium's.
// The Live view watches those only, so a missing CRD never breaks it.
type PolicyAPIs struct {
	// ClusterNetworkPolicyV1Beta1 and ClusterNetworkPolicyV1Alpha2: the
	// ClusterNetworkPolicy kind; when both are served, v1beta1 is read.
	ClusterNetworkPolicyV1Beta1, ClusterNetworkPolicyV1Alpha2 bool
	// AdminNetworkPolicy and BaselineAdminNetworkPolicy: their v1alpha1.
	AdminNetworkPolicy, BaselineAdminNetworkPolicy bool
	// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy: cilium.io/v2.
	CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy bool
}

// Any reports whether any of them is served.
func (a PolicyAPIs) Any() bool { return a != PolicyAPIs{} }

// covers reports whether a holds every API b holds.
func (a PolicyAPIs) covers(b PolicyAPIs) bool { return a.or(b) == a }

func (a PolicyAPIs) or(b PolicyAPIs) PolicyAPIs {
	return PolicyAPIs{
		ClusterNetworkPolicyV1Beta1:    a.ClusterNetworkPolicyV1Beta1 || b.ClusterNetworkPolicyV1Beta1,
		ClusterNetworkPolicyV1Alpha2:   a.ClusterNetworkPolicyV1Alpha2 || b.ClusterNetworkPolicyV1Alpha2,
		AdminNetworkPolicy:             a.AdminNetworkPolicy || b.AdminNetworkPolicy,
		BaselineAdminNetworkPolicy:     a.BaselineAdminNetworkPolicy || b.BaselineAdminNetworkPolicy,
		CiliumNetworkPolicy:            a.CiliumNetworkPolicy || b.CiliumNetworkPolicy,
		CiliumClusterwideNetworkPolicy: a.CiliumClusterwideNetworkPolicy || b.CiliumClusterwideNetworkPolicy,
	}
}

// String lists the APIs: "ClusterNetworkPolicy/v1beta1, CiliumNetworkPolicy".
func (a PolicyAPIs) String() string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{
		{a.ClusterNetworkPolicyV1Beta1, "ClusterNetworkPolicy/v1beta1"},
		{a.ClusterNetworkPolicyV1Alpha2, "ClusterNetworkPolicy/v1alpha2"},
		{a.AdminNetworkPolicy, "AdminNetworkPolicy"},
		{a.BaselineAdminNetworkPolicy, "BaselineAdminNetworkPolicy"},
		{a.CiliumNetworkPolicy, "CiliumNetworkPolicy"},
		{a.CiliumClusterwideNetworkPolicy, "CiliumClusterwideNetworkPolicy"},
	} {
		if x.on {
			out = append(out, x.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// DiscoverPolicyAPIs reads from mapper which of the APIs the cluster serves.
func DiscoverPolicyAPIs(mapper meta.RESTMapper) PolicyAPIs {
	served := func(group, version, kind string) bool {
		_, err := mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind}, version)
		return err == nil
	}
	g, c := cnpv1beta1.GroupName, CiliumGroupVersion.Group
	return PolicyAPIs{
		ClusterNetworkPolicyV1Beta1:    served(g, "v1beta1", "ClusterNetworkPolicy"),
		ClusterNetworkPolicyV1Alpha2:   served(g, "v1alpha2", "ClusterNetworkPolicy"),
		AdminNetworkPolicy:             served(g, "v1alpha1", "AdminNetworkPolicy"),
		BaselineAdminNetworkPolicy:     served(g, "v1alpha1", "BaselineAdminNetworkPolicy"),
		CiliumNetworkPolicy:            served(c, "v2", "CiliumNetworkPolicy"),
		CiliumClusterwideNetworkPolicy: served(c, "v2", "CiliumClusterwideNetworkPolicy"),
	}
}

// policyAPIsOf reads from CRDs which of the APIs are served: a CRD that is
// Established, and the versions it serves.
func policyAPIsOf(crds []*apiextensionsv1.CustomResourceDefinition) PolicyAPIs {
	var a PolicyAPIs
	for _, crd := range crds {
		if !established(crd) {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			switch gk := (schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}); {
			case gk.Group == cnpv1beta1.GroupName && gk.Kind == "ClusterNetworkPolicy":
				a.ClusterNetworkPolicyV1Beta1 = a.ClusterNetworkPolicyV1Beta1 || v.Name == "v1beta1"
				a.ClusterNetworkPolicyV1Alpha2 = a.ClusterNetworkPolicyV1Alpha2 || v.Name == "v1alpha2"
			case gk.Group == cnpv1beta1.GroupName && v.Name == "v1alpha1":
				a.AdminNetworkPolicy = a.AdminNetworkPolicy || gk.Kind == "AdminNetworkPolicy"
				a.BaselineAdminNetworkPolicy = a.BaselineAdminNetworkPolicy || gk.Kind == "BaselineAdminNetworkPolicy"
			case gk.Group == CiliumGroupVersion.Group && v.Name == CiliumGroupVersion.Version:
				a.CiliumNetworkPolicy = a.CiliumNetworkPolicy || gk.Kind == "CiliumNetworkPolicy"
				a.CiliumClusterwideNetworkPolicy = a.CiliumClusterwideNetworkPolicy || gk.Kind == "CiliumClusterwideNetworkPolicy"
			}
		}
	}
	return a
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// policyStores are the informers of the policy APIs Live watches; a newer
// value replaces it whole when an API appears (Live.FollowPolicyAPIs).
type policyStores struct {
	apis        PolicyAPIs
	cnpV1Beta1  *store[cnpv1beta1.ClusterNetworkPolicy]
	cnpV1Alpha2 *store[cnpv1alpha2.ClusterNetworkPolicy]
	anps        *store[anpv1alpha1.AdminNetworkPolicy]
	banps       *store[anpv1alpha1.BaselineAdminNetworkPolicy]
	cnps        *store[CiliumNetworkPolicy]
	ccnps       *store[CiliumClusterwideNetworkPolicy]
	// The last listings, while no informer has had an event since: every
	// review asks, and a listing of 1,000 policies is worth keeping.
	clusterList atomic.Pointer[listing[*cnpv1beta1.ClusterNetworkPolicy]]
	ciliumList  atomic.Pointer[listing[*netpol.CiliumPolicy]]
}

// listing is a listing made when the stores' change counts summed to
// version.
type listing[T any] struct {
	version uint64
	list    []T
}

// cachedListing returns c's listing if it was made at version, else a new
// one from list, kept in c.
func cachedListing[T any](c *atomic.Pointer[listing[T]], version uint64, list func() []T) []T {
	if l := c.Load(); l != nil && l.version == version {
		return l.list
	}
	out := list()
	c.Store(&listing[T]{version: version, list: out})
	return out
}

// withAPIs returns the stores of old (nil: none) and of the APIs of apis
// not watched yet, built by b, and the informers added.
func (old *policyStores) withAPIs(b *storeBuilder, apis PolicyAPIs) (*policyStores, []func() bool) {
	out := &policyStores{}
	if old != nil {
		out.apis, out.cnpV1Beta1, out.cnpV1Alpha2, out.anps, out.banps, out.cnps, out.ccnps =
			old.apis, old.cnpV1Beta1, old.cnpV1Alpha2, old.anps, old.banps, old.cnps, old.ccnps
	}
	var added []func() bool
	if apis.ClusterNetworkPolicyV1Beta1 && out.cnpV1Beta1 == nil {
		out.cnpV1Beta1 = tracked(b, build[cnpv1beta1.ClusterNetworkPolicy](b, &cnpv1beta1.ClusterNetworkPolicy{}, cnpv1beta1.Resource("clusternetworkpolicies"), nil))
		added = append(added, out.cnpV1Beta1.hasSynced())
	} else if apis.ClusterNetworkPolicyV1Alpha2 && out.cnpV1Alpha2 == nil {
		out.cnpV1Alpha2 = tracked(b, build[cnpv1alpha2.ClusterNetworkPolicy](b, &cnpv1alpha2.ClusterNetworkPolicy{}, cnpv1alpha2.Resource("clusternetworkpolicies"), nil))
		added = append(added, out.cnpV1Alpha2.hasSynced())
	}
	if apis.AdminNetworkPolicy && out.anps == nil {
		out.anps = tracked(b, build[anpv1alpha1.AdminNetworkPolicy](b, &anpv1alpha1.AdminNetworkPolicy{}, anpv1alpha1.Resource("adminnetworkpolicies"), nil))
		added = append(added, out.anps.hasSynced())
	}
	if apis.BaselineAdminNetworkPolicy && out.banps == nil {
		out.banps = tracked(b, build[anpv1alpha1.BaselineAdminNetworkPolicy](b, &anpv1alpha1.BaselineAdminNetworkPolicy{}, anpv1alpha1.Resource("baselineadminnetworkpolicies"), nil))
		added = append(added, out.banps.hasSynced())
	}
	if apis.CiliumNetworkPolicy && out.cnps == nil {
		out.cnps = tracked(b, build[CiliumNetworkPolicy](b, &CiliumNetworkPolicy{}, CiliumGroupVersion.WithResource("ciliumnetworkpolicies").GroupResource(), nil))
		added = append(added, out.cnps.hasSynced())
	}
	if apis.CiliumClusterwideNetworkPolicy && out.ccnps == nil {
		out.ccnps = tracked(b, build[CiliumClusterwideNetworkPolicy](b, &CiliumClusterwideNetworkPolicy{},
			CiliumGroupVersion.WithResource("ciliumclusterwidenetworkpolicies").GroupResource(), nil))
		added = append(added, out.ccnps.hasSynced())
	}
	out.apis = out.apis.or(apis)
	if b.err != nil {
		return old, nil
	}
	return out, added
}

// tracked counts s's events (store.track), keeping the first error in b.
func tracked[T any](b *storeBuilder, s *store[T]) *store[T] {
	if b.err == nil {
		b.err = s.track()
	}
	return s
}

// PolicyAPIs are the policy APIs the view watches now.
func (l *Live) PolicyAPIs() PolicyAPIs { return l.policy.Load().apis }

// WatchPolicyAPIs adds informers for the APIs of apis the view does not
// watch yet, on the running cache, and waits (until ctx ends) for them to
// sync before reads see them: until then they read as none, the state
// before their CRD existed.
func (l *Live) WatchPolicyAPIs(ctx context.Context, apis PolicyAPIs) error {
	l.policyMu.Lock()
	defer l.policyMu.Unlock()
	old := l.policy.Load()
	if old.apis.covers(apis) {
		return nil
	}
	b := &storeBuilder{ctx: ctx, cache: l.cache}
	next, added := old.withAPIs(b, apis)
	if b.err != nil {
		return b.err
	}
	for _, synced := range added {
		if !toolscache.WaitForCacheSync(ctx.Done(), synced) {
			return fmt.Errorf("waiting for the informers of %s: %w", apis, context.Cause(ctx))
		}
	}
	l.policy.Store(next)
	return nil
}

// FollowPolicyAPIs watches, until ctx ends, for the CRDs of policy APIs
// installed after start (checked every interval from the CRD informer) and
// adds their informers; changed, when set, is told each new set of
// APIs watched, or the error adding them.
func (l *Live) FollowPolicyAPIs(ctx context.Context, interval time.Duration, changed func(PolicyAPIs, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !l.synced.Load() {
			continue
		}
		served := policyAPIsOf(l.crds.list())
		if l.PolicyAPIs().covers(served) {
			continue
		}
		err := l.WatchPolicyAPIs(ctx, served)
		if ctx.Err() != nil {
			return // stopping: not an error of the API
		}
		if changed != nil {
			changed(l.PolicyAPIs(), err)
		}
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
// the cluster serves (LiveOptions.PolicyAPIs, and those FollowPolicyAPIs
// adds); none when it serves none.
func (l *Live) ClusterNetworkPolicies(ctx context.Context) ([]*cnpv1beta1.ClusterNetworkPolicy, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	p := l.policy.Load()
	version := p.cnpV1Beta1.version() + p.cnpV1Alpha2.version() + p.anps.version() + p.banps.version()
	return cachedListing(&p.clusterList, version, func() []*cnpv1beta1.ClusterNetworkPolicy {
		return clusterPolicies(listOrNone(p.cnpV1Beta1), listOrNone(p.cnpV1Alpha2), listOrNone(p.anps), listOrNone(p.banps))
	}), nil
}

// CiliumPolicies implements View: from the informers of the Cilium kinds
// the cluster serves.
func (l *Live) CiliumPolicies(ctx context.Context) ([]*netpol.CiliumPolicy, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	p := l.policy.Load()
	return cachedListing(&p.ciliumList, p.cnps.version()+p.ccnps.version(), func() []*netpol.CiliumPolicy {
		return ciliumPolicies(listOrNone(p.cnps), listOrNone(p.ccnps))
	}), nil
}

// CiliumPolicies implements View: every CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy the files hold.
func (s *Static) CiliumPolicies(context.Context) ([]*netpol.CiliumPolicy, error) {
	g := CiliumGroupVersion.Group
	return ciliumPolicies(list[*CiliumNetworkPolicy](s, g, "CiliumNetworkPolicy", ""),
		list[*CiliumClusterwideNetworkPolicy](s, g, "CiliumClusterwideNetworkPolicy", "")), nil
}

// listOrNone lists the store, which is nil for an API the cluster does not
// serve.
func listOrNone[T any](s *store[T]) []*T {
	if s == nil {
		return nil
	}
	return s.list()
}
