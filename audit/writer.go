package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/policies"
)

// FieldManager is the field manager of the report writes.
const FieldManager = "apiservice-guard"

// WriterOptions configure a Writer.
type WriterOptions struct {
	// API is the report API, resolved (not APIAuto); APINone writes
	// nothing.
	API API
	// MaxResults caps the results of one report; 0 means no cap.
	MaxResults int
	// WritesPerSecond and Burst rate-limit report writes and deletes.
	// Defaults: 50 and 100.
	WritesPerSecond float64
	Burst           int
	// Now is the clock of result timestamps. Default: time.Now.
	Now func() time.Time
}

// Writer writes one report per audited object by server-side apply, and
// only when what the report says changes: it remembers the content of each
// report it wrote or found, so an unchanged rescan makes no API call.
// Results keep the timestamp of when they first said what they say. It is
// safe for concurrent use.
type Writer struct {
	client   client.Client
	opts     WriterOptions
	severity map[string]openreports.ResultSeverity
	limiter  *rate.Limiter

	mu      sync.Mutex
	reports map[types.UID]*written
}

// written is what the Writer knows of one report in the cluster.
type written struct {
	ref       corev1.ObjectReference // the object the report is for
	gvk       schema.GroupVersionKind
	namespace string
	hash      string
	results   []openreports.ReportResult // with timestamps
}

// NewWriter returns a writer of reports through c, for the rules of engine.
func NewWriter(c client.Client, rules []policies.Rule, o WriterOptions) *Writer {
	if o.WritesPerSecond <= 0 {
		o.WritesPerSecond = 50
	}
	if o.Burst <= 0 {
		o.Burst = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Writer{client: c, opts: o, severity: severities(rules),
		limiter: rate.NewLimiter(rate.Limit(o.WritesPerSecond), o.Burst), reports: map[types.UID]*written{}}
}

// API is the API the writer writes.
func (w *Writer) API() API { return w.opts.API }

// ResolveAPI picks the report API: want itself unless it is APIAuto, which
// takes OpenReports when the API server serves it, else wgpolicyk8s, else
// none. An API asked for by name must be served.
func ResolveAPI(mapper meta.RESTMapper, want API) (API, error) {
	served := func(api API) (bool, error) {
		gvk := reportKinds[api].cluster
		_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		switch {
		case err == nil:
			return true, nil
		case meta.IsNoMatchError(err):
			return false, nil
		}
		return false, err
	}
	switch want {
	case APINone:
		return APINone, nil
	case APIOpenReports, APIWGPolicy:
		ok, err := served(want)
		if err == nil && !ok {
			err = fmt.Errorf("--report-api=%s: the API server does not serve %s (is its CRD installed?)", want, reportKinds[want].cluster.GroupVersion())
		}
		return want, err
	}
	for _, api := range []API{APIOpenReports, APIWGPolicy} {
		ok, err := served(api)
		if err != nil {
			return "", err
		}
		if ok {
			return api, nil
		}
	}
	return APINone, nil
}

// Load reads the reports the guard wrote before (label
// app.kubernetes.io/managed-by=apiservice-guard), so that a restart does not
// rewrite unchanged reports, and returns the UIDs of the objects they are
// for.
func (w *Writer) Load(ctx context.Context) ([]types.UID, error) {
	if w.opts.API == APINone {
		return nil, nil
	}
	var uids []types.UID
	for _, gvk := range []schema.GroupVersionKind{reportKinds[w.opts.API].namespaced, reportKinds[w.opts.API].cluster} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := w.client.List(ctx, list, client.MatchingLabels{LabelManagedBy: managedBy}); err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			var rep openreports.Report
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rep); err != nil {
				continue // not ours to understand: rewritten on the next scan
			}
			omitted, _ := strconv.Atoi(u.GetAnnotations()[AnnotationOmitted])
			c := content{results: make([]openreports.ReportResult, len(rep.Results)), omitted: omitted}
			for i, r := range rep.Results {
				r.Timestamp = metav1.Timestamp{}
				c.results[i] = r
			}
			uid := types.UID(u.GetName())
			w.mu.Lock()
			var ref corev1.ObjectReference
			if rep.Scope != nil {
				ref = *rep.Scope
			}
			ref.UID = uid
			w.reports[uid] = &written{ref: ref, gvk: gvk, namespace: u.GetNamespace(), hash: c.hash(), results: rep.Results}
			w.mu.Unlock()
			uids = append(uids, uid)
		}
	}
	return uids, nil
}

// Write writes v's report when its content differs from what the report
// says, and reports whether it wrote.
func (w *Writer) Write(ctx context.Context, v Verdict) (bool, error) {
	if w.opts.API == APINone || v.Object.UID == "" {
		return false, nil
	}
	c := contentOf(v, w.severity, w.opts.MaxResults)
	hash := c.hash()
	w.mu.Lock()
	prev := w.reports[v.Object.UID]
	w.mu.Unlock()
	if prev != nil && prev.hash == hash {
		return false, nil
	}
	stamps := w.stamps(c, prev)
	u, err := buildReport(w.opts.API, v.Object, c, stamps)
	if err != nil {
		return false, err
	}
	if err := w.limiter.Wait(ctx); err != nil {
		return false, err
	}
	if err := w.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("writing %s %s: %w", u.GetKind(), reportRef(u.GetNamespace(), u.GetName()), err)
	}
	results := make([]openreports.ReportResult, len(c.results))
	for i, r := range c.results {
		r.Timestamp = stamps[i]
		results[i] = r
	}
	w.mu.Lock()
	w.reports[v.Object.UID] = &written{ref: v.Object, gvk: u.GroupVersionKind(), namespace: u.GetNamespace(), hash: hash, results: results}
	w.mu.Unlock()
	return true, nil
}

// stamps are the results' timestamps: a result that says what it said
// before keeps its time, any other is now.
func (w *Writer) stamps(c content, prev *written) []metav1.Timestamp {
	now := w.opts.Now()
	stamps := make([]metav1.Timestamp, len(c.results))
	for i, r := range c.results {
		stamps[i] = metav1.Timestamp{Seconds: now.Unix()}
		if prev == nil {
			continue
		}
		for _, p := range prev.results {
			if p.Rule == r.Rule && p.Result == r.Result && p.Description == r.Description {
				stamps[i] = p.Timestamp
				break
			}
		}
	}
	return stamps
}

// Delete deletes the report of the object with uid, when the writer knows
// one, and reports whether it did. Gone already is not an error.
func (w *Writer) Delete(ctx context.Context, uid types.UID) (bool, error) {
	w.mu.Lock()
	prev := w.reports[uid]
	w.mu.Unlock()
	if prev == nil {
		return false, nil
	}
	if err := w.limiter.Wait(ctx); err != nil {
		return false, err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(prev.gvk)
	u.SetNamespace(prev.namespace)
	u.SetName(string(uid))
	err := w.client.Delete(ctx, u)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("deleting %s %s: %w", prev.gvk.Kind, reportRef(prev.namespace, string(uid)), err)
	}
	w.mu.Lock()
	delete(w.reports, uid)
	w.mu.Unlock()
	return err == nil, nil
}

// Prune deletes the reports of objects not in keep: objects deleted, or no
// longer audited. It returns how many it deleted and the first error.
func (w *Writer) Prune(ctx context.Context, keep map[types.UID]bool) (int, error) {
	w.mu.Lock()
	var gone []types.UID
	for uid := range w.reports {
		if !keep[uid] {
			gone = append(gone, uid)
		}
	}
	w.mu.Unlock()
	n := 0
	var errs []error
	for _, uid := range gone {
		deleted, err := w.Delete(ctx, uid)
		if err != nil {
			errs = append(errs, err)
		}
		if deleted {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// findings are the object a known report is for, and the rules it reports
// a finding of (fail or warn), with their actions.
func (w *Writer) findings(uid types.UID) (corev1.ObjectReference, map[string]policies.Action) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]policies.Action{}
	rep := w.reports[uid]
	if rep == nil {
		return corev1.ObjectReference{UID: uid}, out
	}
	for _, r := range rep.results {
		if r.Result == resultFail || r.Result == resultWarn {
			out[r.Rule] = policies.Action(r.Properties["action"])
		}
	}
	return rep.ref, out
}

func reportRef(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
