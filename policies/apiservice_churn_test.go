package policies

// Internal tests: the tracker's bounds can only be seen from inside. The rule
// itself is tested through Engine.Evaluate, as the webhook calls it.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/cluster"
)

const (
	churnRule = "apiservice-cabundle-churn"
	churnAPI  = "v1beta1.external.metrics.k8s.io"
)

var churnT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// churnAPIService builds a KEDA-like APIService with the given caBundle.
func churnAPIService(name, bundle string, labels map[string]string) *apiregv1.APIService {
	return &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: apiregv1.APIServiceSpec{
			Service:  &apiregv1.ServiceReference{Namespace: "keda", Name: "keda-operator-metrics-apiserver"},
			Group:    "external.metrics.k8s.io",
			Version:  "v1beta1",
			CABundle: []byte(bundle),
		},
	}
}

// ownerEntry is a managedFields entry of manager at t owning the given spec fields.
func ownerEntry(manager string, t time.Time, fields ...string) metav1.ManagedFieldsEntry {
	spec := make([]string, len(fields))
	for i, f := range fields {
		spec[i] = fmt.Sprintf("%q:{}", "f:"+f)
	}
	raw := `{"f:metadata":{"f:labels":{}},"f:spec":{` + strings.Join(spec, ",") + `}}`
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationApply,
		Time: &metav1.Time{Time: t}, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(raw)}}
}

// churnWrite is one UPDATE of an APIService's caBundle.
type churnWrite struct {
	at      time.Duration // after churnT0
	manager string
	bundle  string // the new caBundle; the old one is what the last real write left
	dryRun  bool
	api     string // default churnAPI
	// owned puts manager in the new object's managedFields instead of the
	// request's field manager.
	owned bool
}

func TestCABundleChurnRule(t *testing.T) {
	kedaLabel := map[string]string{labelPartOf: "keda-operator"}
	generic := func(msg string) Finding {
		return churnFinding(msg, genericChurnFix)
	}
	tests := []struct {
		name   string
		labels map[string]string
		config Config
		writes []churnWrite
		// earlier are the indexes of writes before the last that warn.
		earlier []int
		// want is the finding on the last write, nil for none.
		want *Finding
		// detail are words the finding's detail holds.
		detail []string
	}{
		{
			name: "one manager alone never warns",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "alpha", "b", false, "", false},
				{2 * time.Minute, "alpha", "a", false, "", false}, {3 * time.Minute, "alpha", "b", false, "", false},
				{4 * time.Minute, "alpha", "a", false, "", false}},
		},
		{
			name:   "two replacements are not enough",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false}},
		},
		{
			name: "two managers, three replacements",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false},
				{2 * time.Minute, "alpha", "a", false, "", false}},
			want:   ptrTo(generic("caBundle replaced 3 times in 10m by 2 managers: alpha (2), beta (1)")),
			detail: []string{"within 10m by manager: alpha (2), beta (1)"},
		},
		{
			name: "every replacement in the window counts",
			writes: []churnWrite{{0, "beta", "a", false, "", false}, {time.Minute, "alpha", "b", false, "", false},
				{2 * time.Minute, "beta", "a", false, "", false}, {3 * time.Minute, "alpha", "b", false, "", false}},
			earlier: []int{2},
			want:    ptrTo(generic("caBundle replaced 4 times in 10m by 2 managers: alpha (2), beta (2)")),
		},
		{
			name: "just inside the window",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false},
				{10*time.Minute - time.Second, "alpha", "a", false, "", false}},
			want: ptrTo(generic("caBundle replaced 3 times in 10m by 2 managers: alpha (2), beta (1)")),
		},
		{
			name: "a replacement exactly a window ago has expired",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false},
				{10 * time.Minute, "alpha", "a", false, "", false}},
		},
		{
			name:   "configured window and count",
			config: Config{CABundleChurn: ChurnConfig{Window: time.Hour, Replacements: 2}},
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {50 * time.Minute, "beta", "b", false, "", false}},
			want:   ptrTo(generic("caBundle replaced 2 times in 1h by 2 managers: alpha (1), beta (1)")),
		},
		{
			name: "an update that keeps the bundle is no replacement",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "a", false, "", false},
				{2 * time.Minute, "alpha", "b", false, "", false}},
		},
		{
			name: "emptying the bundle is a replacement",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "", false, "", false},
				{2 * time.Minute, "alpha", "a", false, "", false}},
			want: ptrTo(generic("caBundle replaced 3 times in 10m by 2 managers: alpha (2), beta (1)")),
		},
		{
			name: "dry runs are not recorded",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", true, "", false},
				{2 * time.Minute, "alpha", "b", false, "", false}},
		},
		{
			name: "a dry run is warned about",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false},
				{2 * time.Minute, "alpha", "a", true, "", false}},
			want: ptrTo(generic("caBundle replaced 3 times in 10m by 2 managers: alpha (2), beta (1)")),
		},
		{
			name: "other APIServices do not count",
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "v1beta1.metrics.k8s.io", false},
				{2 * time.Minute, "alpha", "b", false, "", false}},
		},
		{
			name: "managers from managedFields",
			writes: []churnWrite{{0, "alpha", "a", false, "", true}, {time.Minute, "beta", "b", false, "", true},
				{2 * time.Minute, "alpha", "a", false, "", true}},
			want: ptrTo(generic("caBundle replaced 3 times in 10m by 2 managers: alpha (2), beta (1)")),
		},
		{
			name: "KEDA by manager name",
			writes: []churnWrite{{0, "keda-operator", "a", false, "", false}, {time.Minute, "kubectl-client-side-apply", "b", false, "", false},
				{2 * time.Minute, "keda-operator", "a", false, "", false}},
			want: ptrTo(churnFinding("caBundle replaced 3 times in 10m by 2 managers: keda-operator (2), kubectl-client-side-apply (1)",
				kedaChurnFix)),
		},
		{
			name:   "KEDA by label",
			labels: kedaLabel,
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false},
				{2 * time.Minute, "alpha", "a", false, "", false}},
			want: ptrTo(churnFinding("caBundle replaced 3 times in 10m by 2 managers: alpha (2), beta (1)", kedaChurnFix)),
		},
		{
			name: "Argo CD",
			writes: []churnWrite{{0, "argocd-controller", "a", false, "", false}, {time.Minute, "alpha", "b", false, "", false},
				{2 * time.Minute, "argocd-controller", "a", false, "", false}},
			want: ptrTo(churnFinding("caBundle replaced 3 times in 10m by 2 managers: alpha (1), argocd-controller (2)", gitOpsChurnFix)),
		},
		{
			name: "Flux",
			writes: []churnWrite{{0, "kustomize-controller", "a", false, "", false}, {time.Minute, "alpha", "b", false, "", false},
				{2 * time.Minute, "kustomize-controller", "a", false, "", false}},
			want: ptrTo(churnFinding("caBundle replaced 3 times in 10m by 2 managers: alpha (1), kustomize-controller (2)", gitOpsChurnFix)),
		},
		{
			name: "KEDA against Argo CD: KEDA's fix, Argo CD's in the detail",
			writes: []churnWrite{{0, "keda", "a", false, "", false}, {time.Minute, "argocd-controller", "b", false, "", false},
				{2 * time.Minute, "keda", "a", false, "", false}},
			want:   ptrTo(churnFinding("caBundle replaced 3 times in 10m by 2 managers: argocd-controller (1), keda (2)", kedaChurnFix)),
			detail: []string{"Or, in the GitOps tool: ignore differences on /spec/caBundle"},
		},
		{
			// Denying one writer does not end the fight: Enforce acts as Warn.
			name:   "configured Enforce still warns",
			config: Config{Rules: map[string]Action{churnRule: Enforce}},
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false},
				{2 * time.Minute, "alpha", "a", false, "", false}},
			want: ptrTo(generic("caBundle replaced 3 times in 10m by 2 managers: alpha (2), beta (1)")),
		},
		{
			name:   "rule off",
			config: Config{Rules: map[string]Action{churnRule: Off}},
			writes: []churnWrite{{0, "alpha", "a", false, "", false}, {time.Minute, "beta", "b", false, "", false},
				{2 * time.Minute, "alpha", "a", false, "", false}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine(tc.config, []Rule{caBundleChurnRule()})
			if err != nil {
				t.Fatal(err)
			}
			view, err := cluster.NewStatic()
			if err != nil {
				t.Fatal(err)
			}
			stored := map[string]string{}
			var warned []int
			var last []Finding
			for i, w := range tc.writes {
				r := churnReview(w, stored, tc.labels)
				last = ruleOf(e.Evaluate(t.Context(), r, view), churnRule)
				if len(last) > 0 && i < len(tc.writes)-1 {
					warned = append(warned, i)
				}
			}
			if diff := cmp.Diff(tc.earlier, warned); diff != "" {
				t.Errorf("earlier writes that warned (-want +got):\n%s", diff)
			}
			var want []Finding
			if tc.want != nil {
				want = []Finding{*tc.want}
			}
			var detail string
			if len(last) == 1 {
				detail, last[0].Detail = last[0].Detail, ""
			}
			if diff := cmp.Diff(want, last); diff != "" {
				t.Errorf("findings of the last write (-want +got):\n%s", diff)
			}
			for _, d := range tc.detail {
				if !strings.Contains(detail, d) {
					t.Errorf("detail %q does not mention %q", detail, d)
				}
			}
		})
	}
}

// churnReview builds the UPDATE of w from what the real writes before it
// stored, and records what it stores.
func churnReview(w churnWrite, stored map[string]string, labels map[string]string) *Review {
	name := w.api
	if name == "" {
		name = churnAPI
	}
	oldBundle, ok := stored[name]
	if !ok {
		oldBundle = "initial"
	}
	api := churnAPIService(name, w.bundle, labels)
	r := &Review{Operation: Update, Kind: APIServiceKind, Name: name, Object: api,
		OldObject: churnAPIService(name, oldBundle, labels), User: "system:serviceaccount:x:y",
		FieldManager: w.manager, DryRun: w.dryRun, Now: churnT0.Add(w.at)}
	if w.owned {
		r.FieldManager = ""
		api.ManagedFields = []metav1.ManagedFieldsEntry{ownerEntry(w.manager, r.Now, "caBundle", "service")}
	}
	if !w.dryRun {
		stored[name] = w.bundle
	}
	return r
}

func churnFinding(message, fix string) Finding {
	return Finding{Rule: churnRule, Action: Warn, Message: message, Fix: fix,
		Object: ObjectRef{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: churnAPI}}
}

func ruleOf(findings []Finding, rule string) []Finding {
	var out []Finding
	for _, f := range findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

// TestCABundleChurnNotReviewed: creates, and APIServices served locally, are
// neither reported nor recorded.
func TestCABundleChurnNotReviewed(t *testing.T) {
	e, err := NewEngine(Config{CABundleChurn: ChurnConfig{Replacements: 2}}, []Rule{caBundleChurnRule()})
	if err != nil {
		t.Fatal(err)
	}
	view, err := cluster.NewStatic()
	if err != nil {
		t.Fatal(err)
	}
	local := func(bundle string) *apiregv1.APIService {
		a := churnAPIService(churnAPI, bundle, nil)
		a.Spec.Service = nil
		return a
	}
	reviews := []*Review{
		{Operation: Create, Kind: APIServiceKind, Name: churnAPI, Object: churnAPIService(churnAPI, "a", nil), FieldManager: "alpha"},
		{Operation: Update, Kind: APIServiceKind, Name: churnAPI, Object: local("b"), OldObject: local("a"), FieldManager: "beta"},
		{Operation: Update, Kind: APIServiceKind, Name: churnAPI, Object: local("a"), OldObject: local("b"), FieldManager: "alpha"},
	}
	for i, r := range reviews {
		r.Now = churnT0.Add(time.Duration(i) * time.Second)
		if got := ruleOf(e.Evaluate(t.Context(), r, view), churnRule); len(got) > 0 {
			t.Errorf("review %d: got %v, want no finding", i, got)
		}
	}
	if n := len(e.churn.byName); n != 0 {
		t.Errorf("tracker holds %d APIServices, want 0", n)
	}
}

func TestCABundleWriter(t *testing.T) {
	t1, t2 := churnT0, churnT0.Add(time.Minute)
	tests := []struct {
		name    string
		review  Review
		entries []metav1.ManagedFieldsEntry
		want    string
	}{
		{
			name:    "the request's field manager first",
			review:  Review{FieldManager: "kubectl", User: "alice"},
			entries: []metav1.ManagedFieldsEntry{ownerEntry("keda", t1, "caBundle")},
			want:    "kubectl",
		},
		{
			name:    "the owner of spec.caBundle",
			review:  Review{User: "alice"},
			entries: []metav1.ManagedFieldsEntry{ownerEntry("helm", t2, "service", "group"), ownerEntry("keda", t1, "caBundle")},
			want:    "keda",
		},
		{
			name:    "several owners: the latest",
			entries: []metav1.ManagedFieldsEntry{ownerEntry("old", t1, "caBundle"), ownerEntry("new", t2, "caBundle"), ownerEntry("older", t1.Add(-time.Hour), "caBundle")},
			want:    "new",
		},
		{
			name:    "several owners at the same time: the first listed",
			entries: []metav1.ManagedFieldsEntry{ownerEntry("first", t1, "caBundle"), ownerEntry("second", t1, "caBundle")},
			want:    "first",
		},
		{
			name: "an owner without a time loses to one with",
			entries: func() []metav1.ManagedFieldsEntry {
				e := ownerEntry("untimed", t1, "caBundle")
				e.Time = nil
				return []metav1.ManagedFieldsEntry{e, ownerEntry("timed", t1, "caBundle")}
			}(),
			want: "timed",
		},
		{
			name:   "a caBundle key outside spec is not spec.caBundle",
			review: Review{User: "alice"},
			entries: []metav1.ManagedFieldsEntry{{Manager: "status-writer", FieldsV1: &metav1.FieldsV1{
				Raw: []byte(`{"f:status":{"f:caBundle":{}},"f:spec":{"f:service":{}}}`)}}},
			want: "alice",
		},
		{
			name:    "unparsable fields own nothing",
			review:  Review{User: "alice"},
			entries: []metav1.ManagedFieldsEntry{{Manager: "broken", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":`)}}},
			want:    "alice",
		},
		{
			name:    "the user when nothing owns it",
			review:  Review{User: "system:serviceaccount:keda:keda-operator"},
			entries: []metav1.ManagedFieldsEntry{ownerEntry("helm", t1, "service")},
			want:    "system:serviceaccount:keda:keda-operator",
		},
		{name: "unknown", want: "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := churnAPIService(churnAPI, "a", nil)
			api.ManagedFields = tc.entries
			if got := caBundleWriter(&tc.review, api); got != tc.want {
				t.Errorf("caBundleWriter() = %q, want %q", got, tc.want)
			}
		})
	}
}

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
	h := tr.byName["x"].Value.(*churnHistory)
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
	h := tr.byName["x"].Value.(*churnHistory)
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
		if len(tr.byName) > churnTrackedAPIServices {
			t.Fatalf("after write %d the tracker holds %d APIServices, want at most %d", i, len(tr.byName), churnTrackedAPIServices)
		}
	}
	if len(tr.byName) != churnTrackedAPIServices || tr.recent.Len() != churnTrackedAPIServices {
		t.Fatalf("tracker holds %d APIServices (%d in order), want %d", len(tr.byName), tr.recent.Len(), churnTrackedAPIServices)
	}
	for i := writes - churnTrackedAPIServices; i < writes; i++ {
		if _, ok := tr.byName[name(i)]; !ok {
			t.Fatalf("%s, among the last written, was evicted", name(i))
		}
	}
	// A dry run of a forgotten APIService does not bring it back.
	gone := name(writes - churnTrackedAPIServices - 1)
	if got := tr.observe(gone, churnEvent{at: churnT0, manager: "m"}, false); len(got) != 1 {
		t.Errorf("observe(%s) of an evicted APIService = %d events, want 1", gone, len(got))
	}
	if _, ok := tr.byName[gone]; ok {
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
	if len(tr.byName) != 32 || tr.recent.Len() != 32 {
		t.Errorf("tracker holds %d APIServices (%d in order), want 32", len(tr.byName), tr.recent.Len())
	}
	for name, el := range tr.byName {
		if h := el.Value.(*churnHistory); h.name != name || h.n < 1 || h.n > churnRingSize {
			t.Errorf("history %q (named %q) holds %d events", name, h.name, h.n)
		}
	}
}

// TestChurnFindingFits: whatever the managers, the message stays within 120
// bytes and each warning line within 256.
func TestChurnFindingFits(t *testing.T) {
	api := churnAPIService(churnAPI, "a", nil)
	var many []managerCount
	for i := range 64 {
		many = append(many, managerCount{name: fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 124)), n: 1})
	}
	tests := []struct {
		name     string
		window   time.Duration
		managers []managerCount
		mentions []string
	}{
		{name: "64 long names", window: 10 * time.Minute, managers: many, mentions: []string{"by 64 managers: 000-xxx", "more"}},
		{name: "KEDA and Flux", window: 90 * time.Second, managers: []managerCount{{"flux-system", 30}, {"keda-operator", 34}},
			mentions: []string{"in 1m30s", "flux-system (30), keda-operator (34)", "--enable-cert-rotation=false"}},
		{name: "absurd window", window: 1<<63 - 1, managers: many, mentions: []string{"more"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := churnResult(api, 64, tc.window, tc.managers)
			f := Finding{Rule: churnRule, Message: res.Message, Fix: res.Fix}
			if len(res.Message) > maxChurnMessage {
				t.Errorf("message is %d bytes, want at most %d: %s", len(res.Message), maxChurnMessage, res.Message)
			}
			for _, line := range []string{"[" + f.Rule + "] " + f.Message, "[" + f.Rule + "] Fix: " + f.Fix} {
				if len(line) > 256 {
					t.Errorf("warning line is %d bytes, want at most 256: %s", len(line), line)
				}
			}
			if len(res.Detail) > 2*maxChurnDetail {
				t.Errorf("detail is %d bytes, want at most %d", len(res.Detail), 2*maxChurnDetail)
			}
			if !res.Advisory {
				t.Error("finding is not advisory: configured as Enforce it would deny")
			}
			for _, m := range tc.mentions {
				if !strings.Contains(f.String(), m) {
					t.Errorf("finding %q does not mention %q", f.String(), m)
				}
			}
		})
	}
}

func TestFitList(t *testing.T) {
	items := []string{"alpha (1)", "beta (2)", "gamma (3)"}
	tests := []struct {
		budget int
		want   string
	}{
		{100, "alpha (1), beta (2), gamma (3)"},
		{30, "alpha (1), beta (2), gamma (3)"},
		{29, "alpha (1), beta (2), +1 more"},
		{28, "alpha (1), beta (2), +1 more"},
		{27, "alpha (1), +2 more"},
		{18, "alpha (1), +2 more"},
		{17, "+3 more"},
		{5, "+3 more"},
	}
	for _, tc := range tests {
		got := fitList(items, tc.budget)
		if got != tc.want {
			t.Errorf("fitList(budget %d) = %q, want %q", tc.budget, got, tc.want)
		}
		if len(got) > tc.budget && tc.budget >= len("+3 more") {
			t.Errorf("fitList(budget %d) = %q, %d bytes", tc.budget, got, len(got))
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s",
		45 * time.Second: "45s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestCABundleChurnDeniedWriteNotRecorded: a write that another rule denies
// replaced nothing, so it is not remembered.
func TestCABundleChurnDeniedWriteNotRecorded(t *testing.T) {
	deny := Rule{Name: "deny-bundle-x", Default: Enforce, Summary: "test", Kinds: []schema.GroupKind{APIServiceKind},
		Check: func(_ context.Context, r *Review, _ cluster.View) []Result {
			if obj, _ := r.Objects(); string(obj.(*apiregv1.APIService).Spec.CABundle) == "x" {
				return []Result{{Message: "no"}}
			}
			return nil
		}}
	e, err := NewEngine(Config{CABundleChurn: ChurnConfig{Replacements: 3}}, []Rule{caBundleChurnRule(), deny})
	if err != nil {
		t.Fatal(err)
	}
	view, err := cluster.NewStatic()
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	write := func(at time.Duration, manager, bundle string) []Finding {
		r := churnReview(churnWrite{at: at, manager: manager, bundle: bundle}, stored, nil)
		return ruleOf(e.Evaluate(t.Context(), r, view), churnRule)
	}
	write(0, "alpha", "a")
	write(time.Second, "beta", "x") // denied: not a replacement
	write(2*time.Second, "beta", "x")
	if got := write(3*time.Second, "beta", "b"); len(got) > 0 {
		t.Errorf("denied writes were counted: %v", got)
	}
	stored[churnAPI] = "b"
	if got := write(4*time.Second, "alpha", "a"); len(got) != 1 {
		t.Errorf("third allowed replacement by two managers: %v, want a warning", got)
	}
}
