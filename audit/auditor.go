package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Options configure an Auditor.
type Options struct {
	// Engine, View and Sources: the rules, the cluster they read, and
	// where the subjects are listed. Required.
	Engine  *policies.Engine
	View    cluster.View
	Sources Sources
	// Reports say where and how reports are written.
	Reports ReportOptions
	// Synced blocks until the view's caches have synced, and reports
	// whether they did. Default: ready at once.
	Synced func(context.Context) bool
	// Recorder emits an Event when a finding appears or clears. Default:
	// no Events.
	Recorder events.EventRecorder
	// Metrics are updated after every review. Default: none.
	Metrics *Metrics
	// Interval is the time between full scans. Required (> 0).
	Interval time.Duration
	// Debounce is how long a change waits for more changes to the same
	// namespace or APIService before it is reviewed. Default: 2s.
	Debounce time.Duration
	// Evidence is what the diagnosis of an APIService that stays
	// unavailable reads beyond View: probes through the API server's
	// proxies, namespaces and k0s worker-configs. Default: none (the
	// diagnosis then has no such steps).
	Evidence Evidence
	// DiagnoseAfter is how long an APIService must be unavailable before
	// it is diagnosed. Default: 30s.
	DiagnoseAfter time.Duration
	// Recheck is the time between reviews of every APIService: what no
	// watch shows (a serving certificate's Secret rotated, read again by
	// name; a backend's TLS answer) shows there. Default: 5s.
	Recheck time.Duration
}

// ReportOptions say where the audit writes its reports.
type ReportOptions struct {
	// Client writes the reports. Required unless API is APINone.
	Client client.Client
	// Mapper tells which report APIs the API server serves, for APIAuto
	// and to check an API asked for by name.
	Mapper meta.RESTMapper
	// API is the report API wanted (--report-api). Default: APIAuto.
	API API
	// MaxResults caps the results of one report; 0 means no cap.
	MaxResults int
}

// Auditor reviews the objects that exist: a full scan at start and every
// Interval, and between them the subjects a change touches (Changed). It
// runs on the elected leader only.
type Auditor struct {
	opts    Options
	queue   workqueue.TypedDelayingInterface[string]
	writer  *Writer
	started atomic.Bool // Changed queues nothing before Start

	mu sync.Mutex
	// state is what the latest review of each audited object found, by
	// UID: the Events of a finding that appears or clears, and the
	// findings gauge, come from it.
	state map[types.UID]*objectState
}

// objectState is what the latest review of one object found.
type objectState struct {
	ref      corev1.ObjectReference
	findings map[string]policies.Action // by rule
}

// Queue keys: a full scan, a namespace whose backends and policies are
// reviewed again, an APIService.
const (
	keyFull         = "full"
	keyNamespace    = "namespace/"
	keyAPIService   = "apiservice/"
	keyAPIServices  = "apiservices"
	defaultDebounce = 2 * time.Second
	defaultRecheck  = 5 * time.Second
)

// New returns an auditor; Start runs it.
func New(o Options) (*Auditor, error) {
	if o.Engine == nil || o.View == nil || o.Sources.Cache == nil || o.Interval <= 0 {
		return nil, errors.New("audit: Engine, View, Sources.Cache and a positive Interval are required")
	}
	if o.Reports.API == "" {
		o.Reports.API = APIAuto
	}
	if o.Reports.API != APINone && (o.Reports.Client == nil || o.Reports.Mapper == nil) {
		return nil, errors.New("audit: writing reports needs Reports.Client and Reports.Mapper")
	}
	if o.Debounce <= 0 {
		o.Debounce = defaultDebounce
	}
	if o.DiagnoseAfter <= 0 {
		o.DiagnoseAfter = 30 * time.Second
	}
	if o.Recheck <= 0 {
		o.Recheck = defaultRecheck
	}
	if o.Synced == nil {
		o.Synced = func(context.Context) bool { return true }
	}
	return &Auditor{opts: o, state: map[types.UID]*objectState{},
		queue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "apiservice-guard-audit"})}, nil
}

// NeedLeaderElection makes the manager run the auditor on the leader only.
func (a *Auditor) NeedLeaderElection() bool { return true }

// Start loads the reports written before, scans everything, then works
// through changes and rescans every Interval until ctx ends.
func (a *Auditor) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("audit")
	ctx = log.IntoContext(ctx, logger)
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	if !a.opts.Synced(ctx) {
		return nil // ctx ended; the manager is stopping
	}
	a.Prepare(ctx)
	a.queue.Add(keyFull)
	go a.every(ctx, a.opts.Interval, keyFull)
	go a.every(ctx, a.opts.Recheck, keyAPIServices)
	for {
		key, shutdown := a.queue.Get()
		if shutdown {
			return nil
		}
		if err := a.process(ctx, key); err != nil && ctx.Err() == nil {
			logger.Error(err, "audit", "what", key)
		}
		a.queue.Done(key)
	}
}

// Prepare picks the report API, reads the reports written before, and makes
// Changed queue changes. Start calls it; a caller that drives Scan and
// Refresh itself (a benchmark) calls it once first. A report API that is
// missing or broken is logged and the audit goes on without reports: it
// never stops the guard.
func (a *Auditor) Prepare(ctx context.Context) {
	logger := log.FromContext(ctx)
	api := APINone
	if a.opts.Reports.API != APINone {
		var err error
		if api, err = ResolveAPI(a.opts.Reports.Mapper, a.opts.Reports.API); err != nil {
			logger.Error(err, "cannot write reports; audit results go to Events and metrics only")
			api = APINone
		} else if api == APINone {
			logger.Info("no report CRD installed (openreports.io or wgpolicyk8s.io); audit results go to Events and metrics only")
		}
	}
	logger.Info("audit starting", "reportAPI", string(api), "interval", a.opts.Interval)
	a.writer = NewWriter(a.opts.Reports.Client, a.opts.Engine.Rules(), WriterOptions{API: api, MaxResults: a.opts.Reports.MaxResults})
	if a.opts.Metrics != nil {
		a.opts.Metrics.reportAPI.Reset()
		a.opts.Metrics.reportAPI.WithLabelValues(string(api)).Set(1)
	}
	if err := a.load(ctx); err != nil {
		logger.Error(err, "reading the reports written before; they are rewritten")
	}
	a.started.Store(true)
}

// Refresh reviews at once what a change to obj touches, as Changed does
// after the debounce.
func (a *Auditor) Refresh(ctx context.Context, obj client.Object) error {
	return a.process(ctx, a.keyFor(obj))
}

// every queues key every period until ctx ends.
func (a *Auditor) every(ctx context.Context, period time.Duration, key string) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.queue.Add(key)
		}
	}
}

// load seeds the state from the reports found, so that a restart sends no
// second Event for a finding already reported.
func (a *Auditor) load(ctx context.Context) error {
	uids, err := a.writer.Load(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, uid := range uids {
		ref, findings := a.writer.findings(uid)
		a.state[uid] = &objectState{ref: ref, findings: findings}
	}
	return nil
}

// Changed queues what a change to obj may have changed (keyFor), to be
// reviewed after the debounce.
func (a *Auditor) Changed(obj client.Object) {
	if !a.started.Load() {
		return // not the leader (yet), or not started: the first scan covers it
	}
	if key := a.keyFor(obj); key != "" {
		a.queue.AddAfter(key, a.opts.Debounce)
	}
}

// keyFor is the queue key of what a change to obj touches: an APIService,
// a namespace's backends and policies, or for a Namespace (its labels
// select policy peers) or a Node a full scan; "" for nothing.
func (a *Auditor) keyFor(obj client.Object) string {
	switch o := obj.(type) {
	case *apiregv1.APIService:
		return keyAPIService + o.Name
	case *corev1.Namespace, *corev1.Node:
		return keyFull
	}
	if ns := obj.GetNamespace(); ns != "" {
		return keyNamespace + ns
	}
	return ""
}

// process handles one queue key, then sets the findings gauge.
func (a *Auditor) process(ctx context.Context, key string) error {
	defer a.updateFindingsGauge()
	ctx = withBatch(ctx, a.opts.View)
	switch {
	case key == keyFull:
		_, err := a.Scan(ctx)
		return err
	case key == keyAPIServices:
		return a.apiServices(ctx)
	case strings.HasPrefix(key, keyAPIService):
		return a.apiService(ctx, strings.TrimPrefix(key, keyAPIService))
	case strings.HasPrefix(key, keyNamespace):
		return a.namespace(ctx, strings.TrimPrefix(key, keyNamespace))
	case key == "":
		return nil
	}
	return fmt.Errorf("unknown audit key %q", key)
}

// ScanStats are what a full scan did.
type ScanStats struct {
	Reviewed, Written, Pruned int
	Took                      time.Duration
}

// Scan reviews every subject, writes the reports that changed and deletes
// the reports of objects no longer audited.
func (a *Auditor) Scan(ctx context.Context) (ScanStats, error) {
	ctx = withBatch(ctx, a.opts.View)
	start := time.Now()
	var stats ScanStats
	subjects, err := a.opts.Sources.Subjects(ctx, a.opts.Engine, a.viewOf(ctx))
	if err != nil {
		return stats, err
	}
	keep := make(map[types.UID]bool, len(subjects))
	var errs []error
	for _, s := range subjects {
		if ctx.Err() != nil {
			return stats, ctx.Err()
		}
		if api, ok := s.Object.(*apiregv1.APIService); ok {
			a.opts.Metrics.setAvailable(api)
		}
		wrote, err := a.review(ctx, s)
		if errors.Is(err, errExempt) {
			continue
		}
		keep[s.Object.GetUID()] = true
		stats.Reviewed++
		if wrote {
			stats.Written++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	pruned, err := a.writer.Prune(ctx, keep)
	stats.Pruned = pruned
	errs = append(errs, err)
	a.forget(func(uid types.UID, _ *objectState) bool { return !keep[uid] })
	stats.Took = time.Since(start)
	if m := a.opts.Metrics; m != nil {
		m.lastRun.SetToCurrentTime()
		m.duration.Observe(stats.Took.Seconds())
	}
	log.FromContext(ctx).V(1).Info("audit scan", "reviewed", stats.Reviewed, "written", stats.Written, "pruned", stats.Pruned, "took", stats.Took)
	return stats, errors.Join(errs...)
}

// apiServices reviews every APIService that has a backend.
func (a *Auditor) apiServices(ctx context.Context) error {
	refs, err := a.viewOf(ctx).ServiceReferences(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range refs {
		if r.Kind == cluster.KindAPIService {
			errs = append(errs, a.apiServiceOnly(ctx, r.Name))
		}
	}
	return errors.Join(errs...)
}

// apiService reviews one APIService, and the namespace of its backend.
func (a *Auditor) apiService(ctx context.Context, name string) error {
	api, err := a.viewOf(ctx).APIService(ctx, name)
	if apierrors.IsNotFound(err) {
		return a.drop(ctx, func(s *objectState) bool { return s.ref.Kind == policies.APIServiceKind.Kind && s.ref.Name == name })
	}
	if err != nil {
		return err
	}
	a.opts.Metrics.setAvailable(api)
	if api.Spec.Service == nil {
		return a.drop(ctx, func(s *objectState) bool { return s.ref.UID == api.UID })
	}
	a.queue.Add(keyNamespace + api.Spec.Service.Namespace)
	_, err = a.reviewOne(ctx, subject(policies.APIServiceKind, apiregv1.SchemeGroupVersion, api.DeepCopy()))
	return err
}

// namespace reviews the APIServices whose backend runs in ns and the
// NetworkPolicies of ns, and drops the reports of policies that are gone
// or no longer audited. In the konnectivity agents' namespace, every
// APIService is reviewed: the agents' egress reaches all backends.
func (a *Auditor) namespace(ctx context.Context, ns string) error {
	refs, err := a.viewOf(ctx).ServiceReferences(ctx, ns)
	if err != nil {
		return err
	}
	agents := ns == a.opts.Engine.Config().ControlPlane.AgentNamespace()
	if agents {
		if refs, err = a.viewOf(ctx).ServiceReferences(ctx, ""); err != nil {
			return err
		}
	}
	var errs []error
	for _, r := range refs {
		if r.Kind == cluster.KindAPIService {
			errs = append(errs, a.apiServiceOnly(ctx, r.Name))
		}
	}
	keep := map[types.UID]bool{}
	if (len(refs) > 0 || agents) && a.opts.Engine.Handles(policies.NetworkPolicyKind) {
		nps, err := a.viewOf(ctx).NetworkPolicies(ctx, ns)
		if err != nil {
			return err
		}
		for _, np := range nps {
			s := subject(policies.NetworkPolicyKind, networkingv1.SchemeGroupVersion, np.DeepCopy())
			exempt, err := a.reviewOne(ctx, s)
			if !exempt {
				keep[np.UID] = true
			}
			errs = append(errs, err)
		}
	}
	errs = append(errs, a.drop(ctx, func(s *objectState) bool {
		return s.ref.Kind == policies.NetworkPolicyKind.Kind && s.ref.Namespace == ns && !keep[s.ref.UID]
	}))
	return errors.Join(errs...)
}

// apiServiceOnly reviews one APIService without queueing its namespace.
func (a *Auditor) apiServiceOnly(ctx context.Context, name string) error {
	api, err := a.viewOf(ctx).APIService(ctx, name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	a.opts.Metrics.setAvailable(api)
	if api.Spec.Service == nil {
		return nil
	}
	_, err = a.reviewOne(ctx, subject(policies.APIServiceKind, apiregv1.SchemeGroupVersion, api.DeepCopy()))
	return err
}

// reviewOne reviews a subject; an exempt one loses its report, and exempt
// is true.
func (a *Auditor) reviewOne(ctx context.Context, s Subject) (exempt bool, err error) {
	_, err = a.review(ctx, s)
	if errors.Is(err, errExempt) {
		uid := s.Object.GetUID()
		return true, a.drop(ctx, func(st *objectState) bool { return st.ref.UID == uid })
	}
	return false, err
}

// review reviews a subject, writes its report, and sends the Events of
// findings that appeared or cleared.
func (a *Auditor) review(ctx context.Context, s Subject) (bool, error) {
	v, err := Review(ctx, a.opts.Engine, a.viewOf(ctx), s.Kind, s.Object)
	if err != nil {
		return false, err
	}
	if api, ok := s.Object.(*apiregv1.APIService); ok {
		if f, ok := a.diagnose(ctx, api, v); ok {
			v.Findings = append(v.Findings, f)
		}
	}
	wrote, werr := a.writer.Write(ctx, v)
	now := map[string]policies.Action{}
	for _, f := range v.Findings {
		now[f.Rule] = f.Action
	}
	a.mu.Lock()
	prev := a.state[v.Object.UID]
	a.state[v.Object.UID] = &objectState{ref: v.Object, findings: now}
	a.mu.Unlock()
	a.events(s, v, prev)
	return wrote, werr
}

// DiagnosisRule names the diagnosis of an APIService that stays
// unavailable, in reports, Events and metrics.
const DiagnosisRule = "apiservice-diagnosis"

// diagnose diagnoses api when the aggregator has found it unavailable for
// DiagnoseAfter, and returns the diagnosis as a finding (with its Event and
// report result, as any finding), and sets
// apiservice_guard_apiservice_diagnosis.
func (a *Auditor) diagnose(ctx context.Context, api *apiregv1.APIService, v Verdict) (policies.Finding, bool) {
	cond := availableCondition(api)
	down := cond != nil && cond.Status != apiregv1.ConditionTrue && time.Since(cond.LastTransitionTime.Time) >= a.opts.DiagnoseAfter
	if m := a.opts.Metrics; m != nil {
		m.diagnosis.DeletePartialMatch(map[string]string{"apiservice": api.Name})
	}
	if !down {
		return policies.Finding{}, false
	}
	d := diagnose(ctx, a.opts.Engine.Config().ControlPlane, a.viewOf(ctx), a.opts.Evidence, api, v, nil)
	if d.Available || d.Cause == "" {
		return policies.Finding{}, false
	}
	if m := a.opts.Metrics; m != nil {
		m.diagnosis.WithLabelValues(api.Name, d.CauseKey).Set(1)
	}
	var chain []string
	for _, st := range d.Steps {
		chain = append(chain, st.Name+" "+string(st.Outcome)+": "+st.Evidence)
	}
	return policies.Finding{
		Rule: DiagnosisRule, Action: policies.Warn,
		Object: policies.ObjectRef{APIVersion: apiregv1.SchemeGroupVersion.String(), Kind: policies.APIServiceKind.Kind, Name: api.Name},
		// The time it went down, not for how long: the message must not
		// change while nothing does.
		Message: fmt.Sprintf("unavailable (%s) since %s: %s", cond.Reason, cond.LastTransitionTime.UTC().Format(time.RFC3339), d.Cause),
		Fix:     d.Fix,
		Detail:  strings.Join(chain, "; "),
	}, true
}

// events sends a Warning Event for each finding that was not there at the
// previous review, and a Normal Event for each that went away.
func (a *Auditor) events(s Subject, v Verdict, prev *objectState) {
	if a.opts.Recorder == nil {
		return
	}
	const maxNote = 1024 // the API server's limit on an Event note
	for _, f := range v.Findings {
		if prev != nil {
			if _, ok := prev.findings[f.Rule]; ok {
				continue
			}
		}
		note := "[" + f.Rule + "] " + f.Message
		if f.Fix != "" {
			note += " Fix: " + f.Fix
		}
		// The rule is the action, as in admission's Events: Events of one
		// object with the same reason and action are one series.
		a.opts.Recorder.Eventf(s.Object, nil, corev1.EventTypeWarning, "AuditFinding", f.Rule, "%s", shorten.Printable(note, maxNote))
	}
	if prev == nil {
		return
	}
	for rule := range prev.findings {
		if !slices.ContainsFunc(v.Findings, func(f policies.Finding) bool { return f.Rule == rule }) {
			a.opts.Recorder.Eventf(s.Object, nil, corev1.EventTypeNormal, "AuditFindingCleared", rule, "[%s] passes now", rule)
		}
	}
}

// drop deletes the reports and state of the objects match selects.
func (a *Auditor) drop(ctx context.Context, match func(*objectState) bool) error {
	var uids []types.UID
	a.forget(func(uid types.UID, s *objectState) bool {
		if match(s) {
			uids = append(uids, uid)
			return true
		}
		return false
	})
	var errs []error
	for _, uid := range uids {
		if _, err := a.writer.Delete(ctx, uid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forget removes the state of the objects gone selects.
func (a *Auditor) forget(gone func(types.UID, *objectState) bool) {
	a.mu.Lock()
	for uid, s := range a.state {
		if gone(uid, s) {
			delete(a.state, uid)
		}
	}
	a.mu.Unlock()
}

// updateFindingsGauge sets apiservice_guard_audit_findings from the state.
func (a *Auditor) updateFindingsGauge() {
	m := a.opts.Metrics
	if m == nil {
		return
	}
	type key struct{ rule, action string }
	counts := map[key]int{}
	a.mu.Lock()
	for _, s := range a.state {
		for rule, action := range s.findings {
			counts[key{rule, string(action)}]++
		}
	}
	a.mu.Unlock()
	m.findings.Reset()
	for k, n := range counts {
		m.findings.WithLabelValues(k.rule, k.action).Set(float64(n))
	}
}

// Watch makes every change to the kinds that decide whether a guarded path
// works (APIServices, Services, EndpointSlices, Pods, NetworkPolicies,
// Namespaces) call Changed. The informers are the Live view's: Watch
// starts no new one.
func (a *Auditor) Watch(ctx context.Context, informers cache.Informers) error {
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.changedAny(obj) },
		UpdateFunc: func(_, obj any) { a.changedAny(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			a.changedAny(obj)
		},
	}
	for _, obj := range []client.Object{&apiregv1.APIService{}, &corev1.Service{}, &discoveryv1.EndpointSlice{},
		&corev1.Pod{}, &networkingv1.NetworkPolicy{}, &corev1.Namespace{}} {
		inf, err := informers.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("audit: watching %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("audit: watching %T: %w", obj, err)
		}
	}
	return nil
}

func (a *Auditor) changedAny(obj any) {
	if o, ok := obj.(client.Object); ok {
		a.Changed(o)
	}
}

// batchView answers NetworkPolicies once per namespace for one batch of
// reviews (one queue key): every policy of a namespace reviewed in the batch
// sees the same listing, which the engine then compiles once.
type batchView struct {
	cluster.View
	mu       sync.Mutex
	policies map[string][]*networkingv1.NetworkPolicy
}

func newBatchView(v cluster.View) *batchView {
	return &batchView{View: v, policies: map[string][]*networkingv1.NetworkPolicy{}}
}

// NetworkPolicies implements cluster.View.
func (b *batchView) NetworkPolicies(ctx context.Context, ns string) ([]*networkingv1.NetworkPolicy, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if list, ok := b.policies[ns]; ok {
		return list, nil
	}
	list, err := b.View.NetworkPolicies(ctx, ns)
	if err == nil {
		b.policies[ns] = list
	}
	return list, err
}

type batchKey struct{}

// withBatch gives ctx a batch view of v, unless it has one.
func withBatch(ctx context.Context, v cluster.View) context.Context {
	if _, ok := ctx.Value(batchKey{}).(*batchView); ok {
		return ctx
	}
	return context.WithValue(ctx, batchKey{}, newBatchView(v))
}

// viewOf is the batch view of ctx, else the auditor's view.
func (a *Auditor) viewOf(ctx context.Context) cluster.View {
	if b, ok := ctx.Value(batchKey{}).(*batchView); ok {
		return b
	}
	return a.opts.View
}
