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

// TestByteBudget: a sized cache evicts the oldest entries to stay within
// its byte budget, whatever the number of entries, and does not store a
// value larger than the whole budget.
func TestByteBudget(t *testing.T) {
	c := NewSized[[]byte](1000, 10_000, func(v []byte) int64 { return int64(len(v)) })
	for i := range 100 {
		c.Put(string(rune('a'+i%26))+string(rune(i)), make([]byte, 1000), nil, time.Minute)
		if c.Bytes() > 10_000 {
			t.Fatalf("after %d puts: %d bytes held, budget 10000", i+1, c.Bytes())
		}
	}
	if n := c.Len(); n == 0 || n > 9 {
		t.Errorf("%d entries of 1000+ bytes in a 10000-byte budget", n)
	}
	c.Put("huge", make([]byte, 20_000), nil, time.Minute)
	if _, _, ok := c.Get("huge"); ok {
		t.Error("a value larger than the budget was stored")
	}
	c.Put("huge", make([]byte, 10), errors.New("boom"), time.Minute)
	if _, err, ok := c.Get("huge"); !ok || err == nil {
		t.Error("a small value under a key once too large is stored")
	}
	before := c.Bytes()
	c.Put("huge", make([]byte, 10), nil, time.Minute) // replacing an entry does not count it twice
	if c.Bytes() > before {
		t.Errorf("replacing an entry: %d bytes, was %d", c.Bytes(), before)
	}
}

// FuzzByteBudget: any sequence of puts (key, size, TTL) keeps a sized
// cache within its entry and byte bounds, and its byte count equals the
// sum over what it holds.
func FuzzByteBudget(f *testing.F) {
	f.Add([]byte{1, 200, 3, 1, 2, 255, 255, 7})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := NewSized[int](5, 2000, func(v int) int64 { return int64(v) })
		held := map[string]int{}
		for i := 0; i+2 < len(ops); i += 3 {
			key, size := string(rune('a'+ops[i]%8)), int(ops[i+1])*int(ops[i+2])/16
			c.Put(key, size, nil, time.Minute)
			held[key] = size
			if c.Len() > 5 || c.Bytes() > 2000 || c.Bytes() < 0 {
				t.Fatalf("after put %d: %d entries, %d bytes", i/3, c.Len(), c.Bytes())
			}
		}
		var sum int64
		for k, size := range held {
			if v, _, ok := c.Get(k); ok {
				if v != size {
					t.Fatalf("Get(%q) = %d, last put %d", k, v, size)
				}
				sum += entryOverhead + int64(len(k)) + int64(v)
			}
		}
		if sum != c.Bytes() {
			t.Fatalf("Bytes() = %d, the entries held sum to %d", c.Bytes(), sum)
		}
	})
}
