package webhook

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"apiservice-guard.io/apiservice-guard/policies"
)

// Budget defaults: the manifests give the webhooks timeoutSeconds: 5, and a
// review must answer before the API server gives up on it.
const (
	// DefaultReviewTimeout is 80% of the webhooks' timeoutSeconds.
	DefaultReviewTimeout = 4 * time.Second
	// DefaultLargeReview is the object size from which a review counts as
	// large: what makes a review expensive (a huge except list, a 1 MiB
	// ConfigMap, a bundle of many certificates) makes its object large.
	DefaultLargeReview = 32 << 10
)

// budget bounds reviews in time, and large reviews in number: at most
// half the CPUs' worth of them run at once, so that a burst of expensive
// writes leaves the ordinary ones their latency.
type budget struct {
	timeout time.Duration
	large   int
	slots   chan struct{}
}

func newBudget(timeout time.Duration, large int) *budget {
	if timeout <= 0 {
		timeout = DefaultReviewTimeout
	}
	if large <= 0 {
		large = DefaultLargeReview
	}
	return &budget{timeout: timeout, large: large, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
}

// Reasons a review ran out of budget, as the metric labels them.
const (
	budgetDeadline = "deadline"
	budgetQueue    = "queue"
)

// errBudget says that a review did not finish within its budget.
type errBudget struct {
	reason  string
	timeout time.Duration
}

func (e errBudget) Error() string {
	if e.reason == budgetQueue {
		return fmt.Sprintf("too many large writes under review: this one waited %s without being judged", e.timeout)
	}
	return fmt.Sprintf("the review did not finish within its %s budget", e.timeout)
}

// run evaluates within the budget: a review of an object of size bytes or
// more waits for a slot first; either way, when the deadline comes first,
// it returns errBudget and leaves the evaluation to finish on its own (its
// slot held until then, so abandoned work stays bounded). A panic in the
// evaluation is returned as an error.
func (b *budget) run(ctx context.Context, size int, eval func(context.Context) []policies.Finding) ([]policies.Finding, error) {
	// Cancelled when run returns: an abandoned evaluation sees its
	// context end (rules that check it stop early).
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	large := size >= b.large
	if large {
		select {
		case b.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, errBudget{reason: budgetQueue, timeout: b.timeout}
		}
	}
	type result struct {
		findings []policies.Finding
		err      error
		// late is set when the deadline came before the evaluation
		// ended: the rules may have stopped early, so the findings are
		// not a judgement.
		late bool
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if large {
				<-b.slots
			}
		}()
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("panic in a rule: %v", p)}
			}
		}()
		findings := eval(ctx)
		done <- result{findings: findings, late: ctx.Err() != nil}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done: // finished as the deadline came
		default:
			return nil, errBudget{reason: budgetDeadline, timeout: b.timeout}
		}
	}
	if r.late && r.err == nil {
		return nil, errBudget{reason: budgetDeadline, timeout: b.timeout}
	}
	return r.findings, r.err
}

// budgetFinding is the warning a review out of budget answers with: the
// write is allowed, never silently.
func budgetFinding(r *policies.Review, err error) policies.Finding {
	return policies.Finding{
		Rule: "review-budget", Action: policies.Warn,
		Message: fmt.Sprintf("%s %s not judged: %v", r.Kind.Kind, objectName(r), err),
		Fix:     "make the object smaller, or check it offline with apiservice-guard check",
	}
}

func objectName(r *policies.Review) string {
	if r.Namespace != "" {
		return r.Namespace + "/" + r.Name
	}
	return r.Name
}
