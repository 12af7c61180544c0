package ttlcache

import (
	"errors"
	"testing"
	"time"
)

func TestExpiryAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New[int](2)
	c.SetClock(func() time.Time { return now })
	c.Put("a", 1, nil, time.Minute)
	c.Put("b", 0, errors.New("boom"), time.Second)
	if v, err, ok := c.Get("a"); !ok || err != nil || v != 1 {
		t.Fatalf("Get(a) = %v, %v, %v; want 1, nil, true", v, err, ok)
	}
	if _, err, ok := c.Get("b"); !ok || err == nil {
		t.Fatalf("Get(b) = %v, %v; want the stored error", err, ok)
	}
	now = now.Add(2 * time.Second)
	if _, _, ok := c.Get("b"); ok {
		t.Fatal("b should have expired")
	}
	if _, ok := c.Last("b"); !ok {
		t.Fatal("Last(b) should still return the expired entry")
	}
	c.Put("c", 3, nil, time.Minute) // evicts the oldest insertion, a
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}
	if _, _, ok := c.Get("a"); ok {
		t.Fatal("a should have been evicted")
	}
	if v, _, ok := c.Get("c"); !ok || v != 3 {
		t.Fatalf("Get(c) = %v, %v", v, ok)
	}
}

func TestPutRefreshesAnEntry(t *testing.T) {
	c := New[int](2)
	c.Put("a", 1, nil, time.Minute)
	c.Put("b", 2, nil, time.Minute)
	c.Put("a", 10, nil, time.Minute) // refreshes a: b is now the oldest
	c.Put("c", 3, nil, time.Minute)
	if _, _, ok := c.Get("b"); ok {
		t.Error("b should have been evicted as the oldest")
	}
	if v, _, ok := c.Get("a"); !ok || v != 10 {
		t.Errorf("Get(a) = %v, %v; want the refreshed 10", v, ok)
	}
}
