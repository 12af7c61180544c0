package webhook

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/internal/ttlcache"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Validator is the validating admission handler: every kind the engine has
// rules for, CREATE, UPDATE and DELETE. It needs old and new objects and spans
// kinds, so it is a raw admission.Handler rather than a typed Validator[T].
type Validator struct {
	handler
}

// handler is what the validating and mutating handlers share: the engine,
// the cluster view, the request decoder and the finding recorder.
type handler struct {
	engine  *policies.Engine
	view    cluster.View
	decoder *decoder
	budget  *budget
	findingRecorder
}

// newHandler fills in the options' defaults and builds the shared part.
func newHandler(o Options, webhook string) handler {
	if o.Scheme == nil {
		o.Scheme = cluster.NewScheme()
	}
	return handler{engine: o.Engine, view: o.View, decoder: newDecoder(o.Scheme),
		budget: newBudget(o.ReviewTimeout, o.LargeReview),
		findingRecorder: findingRecorder{recorder: o.Recorder, metrics: o.Metrics, webhook: webhook,
			emitted: ttlcache.NewSized(eventRepeatLimit, eventRepeatLimit*512, func(struct{}) int64 { return 0 })}}
}

// findingRecorder logs, counts and emits Events for findings, for both handlers.
type findingRecorder struct {
	recorder events.EventRecorder
	metrics  *Metrics
	// webhook names the handler in the request metric: validate or mutate.
	webhook string
	// emitted holds the Events emitted and the warnings logged in the last
	// eventRepeat, by object, rule and message (and, for logs, user): a
	// finding repeated within it (a controller re-applying the same object)
	// is one Event and one log line. client-go would fold the Event into the
	// same series, but building it was a tenth of a review, and logging the
	// line again a tenth more.
	emitted *ttlcache.Cache[struct{}]
}

// Bounds of findingRecorder.emitted.
const (
	eventRepeat      = 10 * time.Second
	eventRepeatLimit = 4096
)

var _ admission.Handler = (*Validator)(nil)

// Options configure the admission handlers, a Validator and a Mutator;
// serve gives both the same.
type Options struct {
	// Engine evaluates the rules. Required.
	Engine *policies.Engine
	// View is the cluster state rules read. Required.
	View cluster.View
	// Scheme decodes request objects. Default: cluster.NewScheme().
	Scheme *runtime.Scheme
	// Recorder emits an Event per finding. Default: no Events.
	Recorder events.EventRecorder
	// Metrics counts requests and findings. Default: no metrics.
	Metrics *Metrics
	// ReviewTimeout bounds one review; a review out of time is allowed
	// with a warning. Default (0): ReviewTimeoutShare of the timeout the
	// API server names in its call, else DefaultReviewTimeout.
	ReviewTimeout time.Duration
	// LargeReview is the size in bytes of the objects from which reviews
	// run a few at a time. Default: DefaultLargeReview.
	LargeReview int
}

// NewValidator returns a validating handler.
func NewValidator(o Options) *Validator {
	return &Validator{handler: newHandler(o, "validate")}
}

// Handle implements admission.Handler.
func (v *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	logger := log.FromContext(ctx)
	review, err := v.decoder.review(req)
	if err != nil {
		logger.Info("rejecting malformed admission request", "error", err.Error())
		v.count(req, "error")
		return errored(http.StatusBadRequest, err)
	}
	if !v.engine.Handles(review.Kind) {
		v.count(req, "error")
		return errored(http.StatusBadRequest, errNotReviewed(review.Kind.String()))
	}
	start := time.Now()
	// Set when the deadline came first and the out-of-budget answer went
	// out then (counted and logged once, there).
	var answered *admission.Response
	// The deadline's closure goes to the heap with what it captures: the
	// request's identity, not the whole request and its objects.
	id := requestIdentity(req)
	findings, err := v.budget.run(ctx, len(req.Object.Raw)+len(req.OldObject.Raw), func(ctx context.Context) []policies.Finding {
		return v.engine.Evaluate(ctx, review, v.view)
	}, func(over errBudget) {
		req := id.request()
		resp := v.outOfBudget(ctx, req, review, over)
		answerNow(ctx, req, resp)
		answered = &resp
	})
	var over errBudget
	switch {
	case errors.As(err, &over):
		if answered != nil {
			return *answered
		}
		return v.outOfBudget(ctx, req, review, over)
	case err != nil:
		logger.Error(err, "review failed")
		v.count(req, "error")
		return errored(http.StatusInternalServerError, err)
	}
	if err := review.DecodeErr(); err != nil {
		logger.Info("rejecting malformed admission request", "error", err.Error())
		v.count(req, "error")
		return errored(http.StatusBadRequest, err)
	}
	if v.metrics != nil {
		v.metrics.duration.WithLabelValues(review.Kind.Kind).Observe(time.Since(start).Seconds())
	}
	v.record(ctx, review, findings)
	resp := respond(findings)
	if resp.Allowed {
		v.count(req, "allowed")
	} else {
		v.count(req, "denied")
	}
	return resp
}

// identity is what an answer and its count need of a request: its UID,
// kind and operation.
type identity struct {
	uid       types.UID
	kind      metav1.GroupVersionKind
	operation admissionv1.Operation
}

func requestIdentity(req admission.Request) identity {
	return identity{uid: req.UID, kind: req.Kind, operation: req.Operation}
}

// request is a request of that identity, without objects.
func (id identity) request() admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: id.uid, Kind: id.kind, Operation: id.operation}}
}

// outOfBudget is the answer to a review that ran out of budget: allowed
// with a warning that says it was not judged; logged and counted.
func (v *Validator) outOfBudget(ctx context.Context, req admission.Request, review *policies.Review, over errBudget) admission.Response {
	log.FromContext(ctx).Info("review out of budget", "kind", review.Kind.String(), "name", objectName(review), "reason", over.reason)
	if v.metrics != nil {
		v.metrics.budget.WithLabelValues(review.Kind.Kind, over.reason).Inc()
	}
	v.count(req, "allowed")
	return respond([]policies.Finding{budgetFinding(review, over)})
}

func (v *findingRecorder) count(req admission.Request, verdict string) {
	if v.metrics != nil {
		v.metrics.requests.WithLabelValues(req.Kind.Kind, string(req.Operation), verdict, v.webhook).Inc()
	}
}

// record logs every finding, counts it, and emits an Event on the object
// unless the request is a dry run. The same warning or audit finding on the
// same object within eventRepeat (a controller re-applying it) is one Event,
// and one log line per user: its metric and the warning in the answer come
// with every request. A denial is logged every time.
func (v *findingRecorder) record(ctx context.Context, r *policies.Review, findings []policies.Finding) {
	for _, f := range findings {
		if v.metrics != nil {
			v.metrics.findings.WithLabelValues(f.Rule, string(f.Action), "admission").Inc()
		}
		note := shorten.Printable(f.String(), 1000)
		key := f.Object.Kind + "/" + f.Object.Namespace + "/" + f.Object.Name + "\x00" + f.Rule + "\x00" + note
		if f.Action == policies.Enforce || v.first(key+"\x00"+r.User+"\x00"+strconv.FormatBool(r.DryRun)) {
			log.FromContext(ctx).Info("policy finding", "rule", f.Rule, "action", string(f.Action),
				"kind", f.Object.Kind, "namespace", f.Object.Namespace, "name", f.Object.Name,
				"user", r.User, "dryRun", r.DryRun, "message", f.Message)
		}
		if r.DryRun || v.recorder == nil {
			continue
		}
		if obj := eventTarget(r); obj != nil && v.first(key) {
			// The action is the rule name: client-go folds Events with the same
			// object, reason and action into one series and keeps only the first
			// note, so two rules must never share an action.
			v.recorder.Eventf(obj, nil, "Warning", eventReason(f.Action), f.Rule, "%s", note)
		}
	}
}

// first reports whether key was not seen in the last eventRepeat, and
// marks it seen.
func (v *findingRecorder) first(key string) bool {
	if _, _, seen := v.emitted.Get(key); seen {
		return false
	}
	v.emitted.Put(key, struct{}{}, nil, eventRepeat)
	return true
}

// eventTarget is the object an Event is about: the new object, else the old.
func eventTarget(r *policies.Review) runtime.Object {
	obj, old := r.Objects()
	if obj != nil {
		return obj
	}
	return old
}

// eventReason maps an action to the Event reason.
func eventReason(a policies.Action) string {
	switch a {
	case policies.Enforce:
		return "PolicyDenied"
	case policies.Warn:
		return "PolicyWarning"
	default:
		return "PolicyAudit"
	}
}

type errNotReviewed string

func (e errNotReviewed) Error() string {
	return "apiservice-guard does not review " + string(e) + "; check the webhook configuration's rules"
}
