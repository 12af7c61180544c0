// Package ttlcache is a small concurrent map of values (or errors) that
// expire, bounded in entries and, when given a sizer, in bytes, by evicting
// the oldest insertion. The guard uses it
// for Secrets and Certificates read by name, TLS probe results, and parsed or
// verified certificates.
package ttlcache

import (
	"container/list"
	"sync"
	"time"
)

// Cache maps string keys to values or errors with a per-entry TTL.
type Cache[V any] struct {
	mu      sync.Mutex
	limit   int
	budget  int64         // bytes; 0: no byte bound
	size    func(V) int64 // an entry's bytes, key and error included by Put
	bytes   int64
	now     func() time.Time
	order   *list.List // of *entry[V], newest first
	entries map[string]*list.Element
}

type entry[V any] struct {
	key     string
	value   V
	err     error
	expires time.Time
	bytes   int64
}

// New returns a cache holding at most limit entries (at least 1).
func New[V any](limit int) *Cache[V] {
	return &Cache[V]{limit: max(limit, 1), now: time.Now, order: list.New(), entries: map[string]*list.Element{}}
}

// NewSized returns a cache holding at most limit entries and about budget
// bytes, as size estimates a value (the key and the error are added). A
// value larger than the whole budget is not stored.
func NewSized[V any](limit int, budget int64, size func(V) int64) *Cache[V] {
	c := New[V](limit)
	c.budget, c.size = max(budget, 1), size
	return c
}

// entryOverhead is what an entry costs beyond its key and value: the list
// element, the map slot, the entry itself.
const entryOverhead = 160

// SetClock replaces the clock, for tests.
func (c *Cache[V]) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// Get returns the unexpired value or error stored for key.
func (c *Cache[V]) Get(key string) (V, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.entries[key]
	if !ok {
		return zero, nil, false
	}
	e := el.Value.(*entry[V])
	if !c.now().Before(e.expires) {
		return zero, nil, false
	}
	return e.value, e.err, true
}

// Last returns the value stored for key even when it has expired.
func (c *Cache[V]) Last(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		return el.Value.(*entry[V]).value, true
	}
	var zero V
	return zero, false
}

// Put stores value and err for key for ttl, evicting the oldest entries
// beyond the size bound.
func (c *Cache[V]) Put(key string, value V, err error, ttl time.Duration) {
	e := &entry[V]{key: key, value: value, err: err}
	if c.size != nil {
		e.bytes = entryOverhead + int64(len(key)) + c.size(value)
		if err != nil {
			e.bytes += int64(len(err.Error()))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.expires = c.now().Add(ttl)
	if el, ok := c.entries[key]; ok {
		c.remove(el)
	}
	if c.budget > 0 && e.bytes > c.budget {
		return // would evict everything, and still not fit
	}
	c.entries[key] = c.order.PushFront(e)
	c.bytes += e.bytes
	for c.order.Len() > c.limit || c.budget > 0 && c.bytes > c.budget {
		c.remove(c.order.Back())
	}
}

func (c *Cache[V]) remove(el *list.Element) {
	e := el.Value.(*entry[V])
	c.order.Remove(el)
	delete(c.entries, e.key)
	c.bytes -= e.bytes
}

// Bytes returns the estimated bytes held (0 without a sizer).
func (c *Cache[V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
