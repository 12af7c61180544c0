package webhook

import (
	"context"
	"sync"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/policies"
)

// TestBudgetFinishedIsNeverOutOfBudget: an evaluation that finishes is
// never reported out of budget, however its end races with the rest (a
// first version cancelled the context as the evaluation ended, and a
// select could then pick the deadline).
func TestBudgetFinishedIsNeverOutOfBudget(t *testing.T) {
	b := newBudget(time.Minute, 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				f, err := b.run(context.Background(), (g+i)%20, func(context.Context) []policies.Finding {
					return []policies.Finding{{Rule: "done"}}
				})
				if err != nil || len(f) != 1 {
					t.Errorf("run %d/%d: %v, %v", g, i, f, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestBudgetPanic: a panicking evaluation is an error, not a crash, and
// gives its slot back.
func TestBudgetPanic(t *testing.T) {
	b := newBudget(time.Second, 1)
	for range 3 * cap(b.slots) {
		if _, err := b.run(context.Background(), 100, func(context.Context) []policies.Finding { panic("boom") }); err == nil {
			t.Fatal("a panic returned no error")
		}
	}
}
