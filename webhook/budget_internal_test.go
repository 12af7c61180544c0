package webhook

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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
				}, func(over errBudget) { t.Errorf("run %d/%d: deadline %v", g, i, over) })
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
		if _, err := b.run(context.Background(), 100, func(context.Context) []policies.Finding { panic("boom") }, nil); err == nil {
			t.Fatal("a panic returned no error")
		}
	}
}

// TestBudgetDeadlineAnswersWhileTheRuleRuns: when a rule outlives the
// deadline without looking at its context, onDeadline is called once, at
// the deadline and while the rule still runs; run returns the errBudget
// only after the rule and onDeadline have both returned.
func TestBudgetDeadlineAnswersWhileTheRuleRuns(t *testing.T) {
	b := newBudget(50*time.Millisecond, 1<<20)
	release := make(chan struct{})
	var calls atomic.Int32
	var ruleDone atomic.Bool
	onDeadline := func(over errBudget) {
		if calls.Add(1) == 1 && ruleDone.Load() {
			t.Error("onDeadline was called after the rule returned")
		}
		if over.reason != budgetDeadline {
			t.Errorf("reason %q", over.reason)
		}
		close(release) // the rule ends only after the answer went out
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	f, err := b.run(context.Background(), 10, func(context.Context) []policies.Finding {
		<-release
		ruleDone.Store(true)
		return []policies.Finding{{Rule: "late"}}
	}, onDeadline)
	var over errBudget
	if !errors.As(err, &over) || f != nil {
		t.Fatalf("run = %v, %v; want errBudget", f, err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("onDeadline called %d times", n)
	}
	if took := time.Since(start); took < 70*time.Millisecond {
		t.Errorf("run returned after %s, before onDeadline ended", took)
	}
}
