// Package ttlcache is a small concurrent map of values (or errors) that
// expire, bounded in size by evicting the oldest insertion. The guard uses it
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
	now     func() time.Time
	order   *list.List // of *entry[V], newest first
	entries map[string]*list.Element
}

type entry[V any] struct {
	key     string
	value   V
	err     error
	expires time.Time
}

// New returns a cache holding at most limit entries (at least 1).
func New[V any](limit int) *Cache[V] {
	return &Cache[V]{limit: max(limit, 1), now: time.Now, order: list.New(), entries: map[string]*list.Element{}}
}

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
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &entry[V]{key: key, value: value, err: err, expires: c.now().Add(ttl)}
	if el, ok := c.entries[key]; ok {
		el.Value = e
		c.order.MoveToFront(el)
	} else {
		c.entries[key] = c.order.PushFront(e)
	}
	for c.order.Len() > c.limit {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*entry[V]).key)
	}
}

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
