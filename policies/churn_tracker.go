package policies

import (
	"strings"
	"sync"
	"time"
	"unsafe"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/internal/ttlcache"
)

const (
	// churnTrackedAPIServices bounds the APIServices whose replacements are
	// remembered; the least recently written is forgotten first. A cluster
	// has tens of APIServices; the bound only matters against abuse.
	churnTrackedAPIServices = 1024
	// churnBytes bounds the tracker's memory as churnHistory.bytes
	// estimates it: about 1,500 histories without names, 350 with every
	// slot holding a distinct name of maxManagerLength.
	churnBytes = 4 << 20
	// churnRingSize is how many replacements are remembered per APIService:
	// the largest configurable count, so the count is exact for any config.
	churnRingSize = maxChurnReplacements
	// maxManagerLength cuts the names remembered: the API server allows field
	// managers of up to 128 characters, user names are unbounded.
	maxManagerLength = 128
	// churnNoExpiry is the TTL histories are stored with: they do not expire
	// as a whole (the tracker reads them with Last), their events leave the
	// window one by one.
	churnNoExpiry = time.Duration(1<<63 - 1)
)

// churnEvent is one replacement of an APIService's caBundle.
type churnEvent struct {
	at      time.Time
	manager string
}

// churnTracker remembers the recent caBundle replacements of each APIService,
// for apiservice-cabundle-churn. Its memory is bounded: at most
// churnTrackedAPIServices APIServices and churnBytes, each with a ring of
// the last churnRingSize replacements. It is safe for concurrent use.
//
// Every replica of the guard has its own tracker and sees only the writes
// sent to it, so with several replicas a fight is noticed later.
type churnTracker struct {
	window       time.Duration
	replacements int // the count that makes a finding

	// mu guards the histories' rings; the cache has its own lock for the
	// map and the eviction order.
	mu sync.Mutex
	// histories are by APIService name; a Put moves one to the front, so
	// the least recently written is evicted first.
	histories *ttlcache.Cache[*churnHistory]
}

// churnHistory is one APIService's ring of replacements, oldest at head.
type churnHistory struct {
	ring [churnRingSize]churnEvent
	head int
	n    int
}

// newChurnTracker returns a tracker remembering at most limit APIServices;
// c must have its defaults applied.
func newChurnTracker(c ChurnConfig, limit int) *churnTracker {
	return &churnTracker{window: c.Window, replacements: c.Replacements,
		histories: ttlcache.NewSized(limit, churnBytes, (*churnHistory).bytes)}
}

// observe returns the replacements of the named APIService's caBundle within
// the window ending at e.at, oldest first, e (the write under review)
// included as the newest. It remembers e when record is true; a dry run is
// answered the same but changes nothing.
func (t *churnTracker) observe(name string, e churnEvent, record bool) []churnEvent {
	e.manager = shorten.String(e.manager, maxManagerLength)
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.histories.Last(name)
	if record && !ok {
		h = &churnHistory{}
	}
	var out []churnEvent
	if h != nil {
		if record {
			h.prune(e.at, t.window)
		}
		out = h.within(e.at, t.window)
		if record {
			e.manager = h.intern(e.manager)
			h.add(e)
			// Stored again once changed, so the cache counts its size
			// now; the most recently written is evicted last.
			t.histories.Put(name, h, nil, churnNoExpiry)
		}
	}
	out = append(out, e)
	if len(out) > churnRingSize {
		out = out[len(out)-churnRingSize:]
	}
	return out
}

// inWindow reports whether an event at "at" lies within window before now.
// Concurrent writes may be recorded a little out of order: an event later
// than now counts.
func inWindow(at, now time.Time, window time.Duration) bool { return now.Sub(at) < window }

// bytes estimates the memory a history holds: its ring and the distinct
// manager names in it (intern shares a name between its events).
func (h *churnHistory) bytes() int64 {
	n := int64(unsafe.Sizeof(*h))
	for i := range h.n {
		m := h.ring[(h.head+i)%len(h.ring)].manager
		if h.first(m) == i {
			n += int64(len(m))
		}
	}
	return n
}

// first returns the position (from head) of the first event by manager.
func (h *churnHistory) first(manager string) int {
	for i := range h.n {
		if h.ring[(h.head+i)%len(h.ring)].manager == manager {
			return i
		}
	}
	return -1
}

// prune drops the oldest events while they are outside the window.
func (h *churnHistory) prune(now time.Time, window time.Duration) {
	for h.n > 0 && !inWindow(h.ring[h.head].at, now, window) {
		h.ring[h.head] = churnEvent{} // release the name
		h.head = (h.head + 1) % len(h.ring)
		h.n--
	}
}

// within returns the remembered events within the window, oldest first.
func (h *churnHistory) within(now time.Time, window time.Duration) []churnEvent {
	out := make([]churnEvent, 0, h.n+1)
	for i := range h.n {
		if e := h.ring[(h.head+i)%len(h.ring)]; inWindow(e.at, now, window) {
			out = append(out, e)
		}
	}
	return out
}

// add remembers e, overwriting the oldest event when the ring is full.
func (h *churnHistory) add(e churnEvent) {
	if h.n == len(h.ring) {
		h.ring[h.head] = e
		h.head = (h.head + 1) % len(h.ring)
		return
	}
	h.ring[(h.head+h.n)%len(h.ring)] = e
	h.n++
}

// intern returns the remembered copy of a manager name when the ring holds
// one, else a copy of its own: a fight between two writers keeps two names,
// not one per write, and no name pins the request it was decoded from.
func (h *churnHistory) intern(manager string) string {
	if i := h.first(manager); i >= 0 {
		return h.ring[(h.head+i)%len(h.ring)].manager
	}
	return strings.Clone(manager)
}
