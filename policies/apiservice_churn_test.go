package policies

// Internal tests: the tracker's bounds can only be seen from inside. The rule
// itself is tested through Engine.Evaluate, as the webhook calls it.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	if n := e.churn.histories.Len(); n != 0 {
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
