package webhook

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"apiservice-guard.io/apiservice-guard/policies"
)

// Budget defaults: a review must answer before the API server gives up on
// it, which it says in each call (the query parameter timeout, the webhook's
// timeoutSeconds).
const (
	// ReviewTimeoutShare is the share of the API server's timeout a review
	// gets when no fixed timeout is set: the rest is for the way there and
	// back, and the answer.
	ReviewTimeoutShare = 0.8
	// DefaultReviewTimeout is the budget of a review when the API server
	// names no timeout: 80% of the manifests' timeoutSeconds: 5.
	DefaultReviewTimeout = 4 * time.Second
	// maxCallerTimeout is the longest timeout the API server may name
	// (timeoutSeconds is at most 30); a longer one is not believed.
	maxCallerTimeout = 30 * time.Second
	// DefaultLargeReview is the object size from which a review counts as
	// large: what makes a review expensive (a huge except list, a 1 MiB
	// ConfigMap, a bundle of many certificates) makes its object large.
	DefaultLargeReview = 32 << 10
)

// budget bounds reviews in time, and large reviews in number: at most
// half the CPUs' worth of them run at once, so that a burst of expensive
// writes leaves the ordinary ones their latency.
type budget struct {
	// timeout is the fixed budget of a review; 0 means ReviewTimeoutShare
	// of the caller's timeout, DefaultReviewTimeout without one.
	timeout time.Duration
	large   int
	slots   chan struct{}
}

func newBudget(timeout time.Duration, large int) *budget {
	if large <= 0 {
		large = DefaultLargeReview
	}
	return &budget{timeout: max(timeout, 0), large: large, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
}

// timeoutFor returns the budget of a review under ctx.
func (b *budget) timeoutFor(ctx context.Context) time.Duration {
	if b.timeout > 0 {
		return b.timeout
	}
	if t, ok := ctx.Value(callerTimeoutKey{}).(time.Duration); ok {
		return time.Duration(float64(t) * ReviewTimeoutShare)
	}
	return DefaultReviewTimeout
}

type callerTimeoutKey struct{}

// withCallerTimeout returns ctx carrying the timeout an admission call
// names in its query (the API server adds ?timeout=5s from the webhook's
// timeoutSeconds), when it names a believable one.
func withCallerTimeout(ctx context.Context, query string) context.Context {
	t, err := time.ParseDuration(query)
	if err != nil || t <= 0 || t > maxCallerTimeout {
		return ctx
	}
	return context.WithValue(ctx, callerTimeoutKey{}, t)
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

// run evaluates within the budget, in the caller's goroutine (a goroutine
// per review cost a fifth of a small review's CPU: its start woke an idle
// thread, and its stack grew each time). A review of an object of size bytes
// or more waits for a slot first. When the deadline comes before the
// evaluation ends, onDeadline is called at once, from a goroutine of its own,
// with the errBudget: it answers the API server in time even when a rule
// never looks at its context. run returns only after onDeadline has
// returned, with the errBudget, once the evaluation ends (the slot held
// until then, so abandoned work stays bounded). A panic in the evaluation is
// returned as an error.
func (b *budget) run(ctx context.Context, size int, eval func(context.Context) []policies.Finding, onDeadline func(errBudget)) (findings []policies.Finding, err error) {
	// Cancelled when run returns: an abandoned evaluation sees its
	// context end (rules that check it stop early).
	timeout := b.timeoutFor(ctx)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if size >= b.large {
		select {
		case b.slots <- struct{}{}:
			defer func() { <-b.slots }()
		case <-ctx.Done():
			return nil, errBudget{reason: budgetQueue, timeout: timeout}
		}
	}
	over := errBudget{reason: budgetDeadline, timeout: timeout}
	var called chan struct{}
	if onDeadline != nil {
		called = make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(called)
			onDeadline(over)
		})
		defer func() {
			if !stop() {
				<-called // it started: it answers, and run returns after it
				findings, err = nil, over
			}
		}()
	}
	defer func() {
		if p := recover(); p != nil {
			findings, err = nil, fmt.Errorf("panic in a rule: %v", p)
		}
	}()
	findings = eval(ctx)
	// The deadline came before the evaluation ended: the rules may have
	// stopped early, so the findings are not a judgement.
	if ctx.Err() != nil {
		return nil, over
	}
	return findings, nil
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
