package policies

// Internal tests: the tracker's bounds can only be seen from inside.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// newTestTracker is a tracker with the default window and count.
func newTestTracker(t *testing.T, limit int) *churnTracker {
	t.Helper()
	c, err := ChurnConfig{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newChurnTracker(c, limit)
}

type trackStep struct {
	api     string
	at      time.Duration
	manager string
	dryRun  bool
}

func TestChurnTrackerObserve(t *testing.T) {
	ev := func(at time.Duration, manager string) churnEvent {
		return churnEvent{at: churnT0.Add(at), manager: manager}
	}
	many := func(n int) []trackStep {
		var steps []trackStep
		for i := range n {
			steps = append(steps, trackStep{api: "x", at: time.Duration(i) * time.Second, manager: fmt.Sprint("m", i%3)})
		}
		return steps
	}
	tests := []struct {
		name  string
		steps []trackStep
		want  []churnEvent // what the last step returns
	}{
		{name: "first replacement", steps: []trackStep{{"x", 0, "a", false}}, want: []churnEvent{ev(0, "a")}},
		{
			name:  "oldest first, the write under review last",
			steps: []trackStep{{"x", 0, "a", false}, {"x", time.Second, "b", false}, {"x", 2 * time.Second, "a", false}},
			want:  []churnEvent{ev(0, "a"), ev(time.Second, "b"), ev(2*time.Second, "a")},
		},
		{
			name:  "events outside the window are left out",
			steps: []trackStep{{"x", 0, "a", false}, {"x", 5 * time.Minute, "b", false}, {"x", 12 * time.Minute, "a", false}},
			want:  []churnEvent{ev(5*time.Minute, "b"), ev(12*time.Minute, "a")},
		},
		{
			name:  "dry runs are answered but not remembered",
			steps: []trackStep{{"x", 0, "a", true}, {"x", time.Second, "b", true}, {"x", 2 * time.Second, "a", false}},
			want:  []churnEvent{ev(2*time.Second, "a")},
		},
		{
			name:  "a dry run sees what is remembered",
			steps: []trackStep{{"x", 0, "a", false}, {"x", time.Second, "b", true}},
			want:  []churnEvent{ev(0, "a"), ev(time.Second, "b")},
		},
		{
			name:  "APIServices apart",
			steps: []trackStep{{"x", 0, "a", false}, {"y", time.Second, "b", false}},
			want:  []churnEvent{ev(time.Second, "b")},
		},
		{
			name:  "an event recorded out of order counts",
			steps: []trackStep{{"x", 2 * time.Second, "a", false}, {"x", time.Second, "b", false}},
			want:  []churnEvent{ev(2*time.Second, "a"), ev(time.Second, "b")},
		},
		{
			name:  "the ring keeps the last 64",
			steps: many(100),
			want: func() []churnEvent {
				var out []churnEvent
				for i := 36; i < 100; i++ {
					out = append(out, ev(time.Duration(i)*time.Second, fmt.Sprint("m", i%3)))
				}
				return out
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestTracker(t, 16)
			var got []churnEvent
			for _, s := range tc.steps {
				got = tr.observe(s.api, churnEvent{at: churnT0.Add(s.at), manager: s.manager}, !s.dryRun)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(churnEvent{})); diff != "" {
				t.Errorf("observe() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChurnTrackerPrunes: expired events are dropped, their names released.
func TestChurnTrackerPrunes(t *testing.T) {
	tr := newTestTracker(t, 16)
	for i := range 10 {
		tr.observe("x", churnEvent{at: churnT0.Add(time.Duration(i) * time.Second), manager: "a"}, true)
	}
	tr.observe("x", churnEvent{at: churnT0.Add(time.Hour), manager: "b"}, true)
	h, _ := tr.histories.Last("x")
	if h.n != 1 {
		t.Errorf("history holds %d events after the others expired, want 1", h.n)
	}
	for i, e := range h.ring {
		if e.manager == "a" {
			t.Errorf("ring slot %d still holds expired event %+v", i, e)
		}
	}
}

// TestChurnTrackerBoundedNames: long names are cut, and a fight between two
// writers keeps two copies of their names, not one per write.
func TestChurnTrackerBoundedNames(t *testing.T) {
	tr := newTestTracker(t, 16)
	long := strings.Repeat("m", 1000)
	for i := range 200 {
		manager := []string{"alpha", long}[i%2]
		got := tr.observe("x", churnEvent{at: churnT0.Add(time.Duration(i) * time.Millisecond), manager: strings.Clone(manager)}, true)
		if n := len(got[len(got)-1].manager); n > maxManagerLength {
			t.Fatalf("write %d: name of %d bytes kept, want at most %d", i, n, maxManagerLength)
		}
	}
	h, _ := tr.histories.Last("x")
	copies := map[*byte]bool{}
	for i := range h.n {
		copies[unsafe.StringData(h.ring[i].manager)] = true
	}
	if len(copies) != 2 {
		t.Errorf("ring holds %d copies of 2 names, want 2", len(copies))
	}
}

// TestChurnTrackerEviction: 100,000 writes over 10,000 APIServices leave the
// 1,024 most recently written.
func TestChurnTrackerEviction(t *testing.T) {
	const apis, writes = 10_000, 100_000
	tr := newTestTracker(t, churnTrackedAPIServices)
	name := func(i int) string { return fmt.Sprintf("v1.api%05d.example.com", i%apis) }
	for i := range writes {
		tr.observe(name(i), churnEvent{at: churnT0.Add(time.Duration(i) * time.Millisecond), manager: "m"}, true)
		if n := tr.histories.Len(); n > churnTrackedAPIServices {
			t.Fatalf("after write %d the tracker holds %d APIServices, want at most %d", i, n, churnTrackedAPIServices)
		}
	}
	if n := tr.histories.Len(); n != churnTrackedAPIServices {
		t.Fatalf("tracker holds %d APIServices, want %d", n, churnTrackedAPIServices)
	}
	for i := writes - churnTrackedAPIServices; i < writes; i++ {
		if _, ok := tr.histories.Last(name(i)); !ok {
			t.Fatalf("%s, among the last written, was evicted", name(i))
		}
	}
	// A dry run of a forgotten APIService does not bring it back.
	gone := name(writes - churnTrackedAPIServices - 1)
	if got := tr.observe(gone, churnEvent{at: churnT0, manager: "m"}, false); len(got) != 1 {
		t.Errorf("observe(%s) of an evicted APIService = %d events, want 1", gone, len(got))
	}
	if _, ok := tr.histories.Last(gone); ok {
		t.Errorf("a dry run added %s back", gone)
	}
}

// TestChurnTrackerConcurrent is meant for go test -race.
func TestChurnTrackerConcurrent(t *testing.T) {
	const workers, perWorker, apis = 8, 500, 40
	tr := newTestTracker(t, 32)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				e := churnEvent{at: churnT0.Add(time.Duration(i) * time.Millisecond), manager: fmt.Sprint("w", w)}
				if got := tr.observe(fmt.Sprint("api", (w+i)%apis), e, i%5 != 0); len(got) > churnRingSize {
					t.Errorf("observe returned %d events, want at most %d", len(got), churnRingSize)
				}
			}
		})
	}
	wg.Wait()
	if n := tr.histories.Len(); n != 32 {
		t.Errorf("tracker holds %d APIServices, want 32", n)
	}
	for i := range apis {
		name := fmt.Sprint("api", i)
		if h, ok := tr.histories.Last(name); ok && (h.n < 1 || h.n > churnRingSize) {
			t.Errorf("history %q holds %d events", name, h.n)
		}
	}
}

// TestChurnTrackerByteBudget: APIServices written by many distinct managers
// with long names are forgotten by bytes, before the entry bound.
func TestChurnTrackerByteBudget(t *testing.T) {
	tr := newTestTracker(t, churnTrackedAPIServices)
	const writes = 800 * churnRingSize
	pad := strings.Repeat("m", maxManagerLength)
	for i := range writes {
		manager := fmt.Sprintf("%d-%s", i, pad) // every write a new name, cut to the longest kept
		tr.observe(fmt.Sprintf("v1.api%04d.example.com", i/churnRingSize), churnEvent{at: churnT0.Add(time.Duration(i) * time.Millisecond), manager: manager}, true)
		if got := tr.histories.Bytes(); got > churnBytes {
			t.Fatalf("after write %d the tracker holds %d bytes, budget %d", i, got, churnBytes)
		}
	}
	// Every history full of distinct names of the longest kept length.
	full := int(unsafe.Sizeof(churnHistory{})) + churnRingSize*maxManagerLength
	if n := tr.histories.Len(); n > churnBytes/full || n == 0 {
		t.Errorf("tracker holds %d APIServices of %d bytes each, want at most %d (the byte budget)", n, full, churnBytes/full)
	}
	h, _ := tr.histories.Last(fmt.Sprintf("v1.api%04d.example.com", (writes-1)/churnRingSize))
	if h == nil || h.bytes() < churnRingSize*maxManagerLength {
		t.Errorf("the last history counts %d bytes, want its names included", h.bytes())
	}
}
