package policies

import (
	"cmp"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"apiservice-guard.io/apiservice-guard/internal/ttlcache"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// compiledSets memoizes netpol.Compile of one namespace's NetworkPolicies, so
// a write in a namespace holding many policies compiles only the written one
// (Set.With) instead of all of them. It keeps one set per namespace, the last
// compiled, with a fingerprint of the policies it was compiled from: their
// names and resourceVersions, combined so that the order the view lists them
// in does not matter. The API server gives every write a new resourceVersion,
// so a fingerprint names one content: a changed, added or removed policy is a
// miss, which replaces the namespace's set, never a stale answer. Lists
// holding a policy without resourceVersion (files read by the offline check)
// are compiled every time. A nil *compiledSets compiles every time.
//
// A cached set is compiled from the policies ordered by creation time, then
// name. Which policy a message names first ("isolated by ...") follows that
// order, rather than the order an informer's index happens to list them in.
type compiledSets struct {
	sets *ttlcache.Cache[compiledSet] // by namespace
	seed maphash.Seed
}

// compiledSet is a namespace's compiled policies and their fingerprint.
type compiledSet struct {
	fingerprint fingerprint
	set         *netpol.Set
	// list is the listing it was compiled from: the same listing again (a
	// view that memoizes its answers for a batch of reviews, as the audit's
	// does) is a hit without fingerprinting it.
	listing **networkingv1.NetworkPolicy // &list[0]
	n       int
	bytes   int64 // what the set and the listing it keeps hold, about
}

// fingerprint is how many policies there are and the sum of one hash of name
// and resourceVersion per policy, which no listing order changes.
type fingerprint struct {
	n   int
	sum uint64
}

const (
	// compiledSetsSize bounds the namespaces whose compiled policies are
	// kept; a set of 1,000 varied policies takes about 1.8 MB.
	compiledSetsSize = 64
	// compiledSetsBytes bounds what the compiled sets hold (see
	// policyBytes), the least recently used evicted first.
	compiledSetsBytes = 64 << 20
	// compiledSetsTTL only bounds how long an unused set is kept: a set never
	// goes stale, a change of the policies changes the fingerprint.
	compiledSetsTTL = 10 * time.Minute
)

func newCompiledSets() *compiledSets {
	return &compiledSets{sets: ttlcache.NewSized(compiledSetsSize, compiledSetsBytes, func(cs compiledSet) int64 { return cs.bytes }),
		seed: maphash.MakeSeed()}
}

// compile returns netpol.Compile(policies), the policies of namespace ns,
// reusing the set compiled from the same policies before. The returned set
// is shared and immutable; derive changed sets with With.
func (c *compiledSets) compile(ns string, policies []*networkingv1.NetworkPolicy) *netpol.Set {
	if c == nil {
		return netpol.Compile(policies)
	}
	if len(policies) > 0 {
		// The very slice seen last (same backing array and length): a view
		// returns a new slice for every listing, so only a memoized answer
		// is the same one, and listed objects are never modified. The
		// cache holds the array, so its address is not reused.
		if cached, _, ok := c.sets.Get(ns); ok && cached.listing == &policies[0] && cached.n == len(policies) {
			return cached.set
		}
	}
	fp, ok := c.fingerprint(policies)
	if !ok {
		return netpol.Compile(policies)
	}
	if cached, _, ok := c.sets.Get(ns); ok && cached.fingerprint == fp {
		if len(policies) > 0 { // remember this listing, for the memoized case
			cached.listing, cached.n = &policies[0], len(policies)
			c.sets.Put(ns, cached, nil, compiledSetsTTL)
		}
		return cached.set
	}
	set := netpol.Compile(slices.SortedStableFunc(slices.Values(policies), byCreation))
	cs := compiledSet{fingerprint: fp, set: set, n: len(policies)}
	if len(policies) > 0 {
		cs.listing = &policies[0]
	}
	for _, p := range policies {
		cs.bytes += policyBytes(p)
	}
	c.sets.Put(ns, cs, nil, compiledSetsTTL)
	return set
}

// fingerprint fingerprints policies; it is false when a policy has no
// resourceVersion to tell its versions apart.
func (c *compiledSets) fingerprint(policies []*networkingv1.NetworkPolicy) (fingerprint, bool) {
	fp := fingerprint{n: len(policies)}
	for _, p := range policies {
		if p == nil {
			continue
		}
		if p.ResourceVersion == "" {
			return fingerprint{}, false
		}
		// Two independent hashes mixed: a policy is one (name, version) pair.
		fp.sum += maphash.String(c.seed, p.Name)*0x9e3779b97f4a7c15 ^ maphash.String(c.seed, p.ResourceVersion)
	}
	return fp, true
}

// byCreation orders policies by creation time, then name. Nil entries,
// which Compile skips, sort first.
func byCreation(a, b *networkingv1.NetworkPolicy) int {
	if a == nil || b == nil {
		return cmp.Compare(boolInt(a != nil), boolInt(b != nil))
	}
	if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// policyBytes estimates what one policy costs a compiled set and the
// listing it keeps: the object, and per peer, except entry and port what
// compiling it makes (a set of 1,000 varied policies takes about 1.8 MB).
func policyBytes(p *networkingv1.NetworkPolicy) int64 {
	n := int64(2048)
	peers := func(ps []networkingv1.NetworkPolicyPeer) {
		for _, peer := range ps {
			n += 256
			if peer.IPBlock != nil {
				n += 96 * int64(len(peer.IPBlock.Except))
			}
		}
	}
	for _, r := range p.Spec.Ingress {
		peers(r.From)
		n += 64 * int64(len(r.Ports))
	}
	for _, r := range p.Spec.Egress {
		peers(r.To)
		n += 64 * int64(len(r.Ports))
	}
	return n
}
