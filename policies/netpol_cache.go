package policies

import (
	"cmp"
	"encoding/binary"
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
// (Set.With) instead of all of them. An entry is keyed by the namespace and a
// fingerprint of its policies' names and resourceVersions, combined so that
// the order the view lists them in does not matter. The API server gives
// every write a new resourceVersion, so a key names one content: a changed,
// added or removed policy is a miss, never a stale answer. Lists holding a
// policy without resourceVersion (files read by the offline check) are
// compiled every time. A nil *compiledSets compiles every time.
//
// A cached set is compiled from the policies ordered by creation time, then
// name. Which policy a message names first ("isolated by ...") follows that
// order, rather than the order an informer's index happens to list them in.
type compiledSets struct {
	sets *ttlcache.Cache[*netpol.Set]
	seed maphash.Seed
}

const (
	// compiledSetsSize bounds the namespaces whose compiled policies are
	// kept; a set of 1,000 varied policies takes about 1.8 MB.
	compiledSetsSize = 64
	// compiledSetsTTL only bounds how long an unused set is kept: entries
	// never go stale, a change of the policies changes the key.
	compiledSetsTTL = 10 * time.Minute
)

func newCompiledSets() *compiledSets {
	return &compiledSets{sets: ttlcache.New[*netpol.Set](compiledSetsSize), seed: maphash.MakeSeed()}
}

// compile returns netpol.Compile(policies), the policies of namespace ns,
// reusing the set compiled from the same policies before. The returned set
// is shared and immutable; derive changed sets with With.
func (c *compiledSets) compile(ns string, policies []*networkingv1.NetworkPolicy) *netpol.Set {
	if c == nil {
		return netpol.Compile(policies)
	}
	key, ok := c.key(ns, policies)
	if !ok {
		return netpol.Compile(policies)
	}
	if set, _, ok := c.sets.Get(key); ok {
		return set
	}
	set := netpol.Compile(slices.SortedStableFunc(slices.Values(policies), byCreation))
	c.sets.Put(key, set, nil, compiledSetsTTL)
	return set
}

// key fingerprints a namespace's policies: the namespace, how many there are,
// and the sum of one hash of name and resourceVersion per policy, which no
// listing order changes. It is false when a policy has no resourceVersion to
// tell its versions apart.
func (c *compiledSets) key(ns string, policies []*networkingv1.NetworkPolicy) (string, bool) {
	var sum uint64
	for _, p := range policies {
		if p == nil {
			continue
		}
		if p.ResourceVersion == "" {
			return "", false
		}
		// Two independent hashes mixed: a policy is one (name, version) pair.
		sum += maphash.String(c.seed, p.Name)*0x9e3779b97f4a7c15 ^ maphash.String(c.seed, p.ResourceVersion)
	}
	b := make([]byte, 0, len(ns)+17)
	b = append(b, ns...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(len(policies)))
	b = binary.BigEndian.AppendUint64(b, sum)
	return string(b), true
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
