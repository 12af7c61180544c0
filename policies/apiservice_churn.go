package policies

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// Fixes for a caBundle fought over, by who takes part in the fight.
const (
	kedaChurnFix = "KEDA: run it with --enable-cert-rotation=false and let cert-manager provide the certificate, " +
		"or with --enable-apiservice-patching=false"
	gitOpsChurnFix = "ignore differences on /spec/caBundle (Argo CD: ignoreDifferences jsonPointers; " +
		"Flux: drop the field from the manifest)"
	genericChurnFix = "let exactly one writer own spec.caBundle; remove it from the other writers' manifests or configuration"
)

// gitOpsManagers are parts of the field-manager names of GitOps tools, which
// put their manifest's caBundle back whenever something else changes it.
var gitOpsManagers = []string{"argocd", "kustomize-controller", "helm-controller", "flux"}

const (
	// maxChurnMessage is the longest message the rule writes, so that the
	// warning "[rule] message" stays short in kubectl output.
	maxChurnMessage = 120
	// maxListedName cuts each manager name in the message.
	maxListedName = 40
	// maxChurnDetail bounds the manager list in Result.Detail.
	maxChurnDetail = 1024
)

// caBundleChurnRule warns when an APIService's caBundle is being replaced
// over and over by two or more writers. It is UPDATE only: a replacement
// needs an old bundle. It does not use apiServiceRule, whose backend facts it
// does not need, but like the other APIService rules it only looks at
// APIServices backed by a Service.
//
// A replacement is an UPDATE whose caBundle bytes differ from the old ones,
// emptying included: a writer that empties the bundle takes part in the
// fight as much as one that sets another (when apiservice-cabundle-preserve
// keeps the old bundle, the bytes do not differ and nothing is counted). Raw
// bytes are compared, not certificates: every change wakes the other writer.
//
// The finding is advisory: denying one writer's write does not stop the
// fight (it retries), and it could block the writer that holds the right CA.
func caBundleChurnRule() Rule {
	return Rule{
		Name: "apiservice-cabundle-churn", Default: Warn,
		Summary: "caBundle replaced repeatedly (default 3 times in 10m) by two or more field managers; names them and the fix",
		Kinds:   []schema.GroupKind{APIServiceKind}, Operations: []Operation{Update},
		Check: checkCABundleChurn,
	}
}

func checkCABundleChurn(_ context.Context, r *Review, _ cluster.View) []Result {
	if r.churn == nil {
		return nil
	}
	obj, old := r.Objects()
	api, _ := obj.(*apiregv1.APIService)
	prev, _ := old.(*apiregv1.APIService)
	if api == nil || prev == nil || api.Spec.Service == nil || bytes.Equal(api.Spec.CABundle, prev.Spec.CABundle) {
		return nil
	}
	e := churnEvent{at: r.now(), manager: caBundleWriter(r, api)}
	events := r.churn.observe(api.Name, e, false)
	if !r.DryRun {
		// Remembered only if the write goes through: a write another rule
		// denies replaced nothing.
		tracker := r.churn
		r.onAllowed = append(r.onAllowed, func() { tracker.observe(api.Name, e, true) })
	}
	managers := countManagers(events)
	if len(events) < r.churn.replacements || len(managers) < 2 {
		return nil
	}
	return []Result{churnResult(api, len(events), r.churn.window, managers)}
}

// caBundleWriter names who replaced the caBundle: the request's field
// manager; else the manager that owns spec.caBundle in the new object's
// managedFields (the API server updates them before admission); else the
// user; else "unknown".
func caBundleWriter(r *Review, api *apiregv1.APIService) string {
	switch {
	case r.FieldManager != "":
		return r.FieldManager
	case caBundleOwner(api.ManagedFields) != "":
		return caBundleOwner(api.ManagedFields)
	case r.User != "":
		return r.User
	}
	return "unknown"
}

// caBundleOwner is the manager of the managedFields entry that owns
// f:spec.f:caBundle, the latest by Time when several do (the first listed
// among equal times); "" when none does.
func caBundleOwner(entries []metav1.ManagedFieldsEntry) string {
	var owner string
	var latest time.Time
	for _, e := range entries {
		if e.Manager == "" || e.FieldsV1 == nil || !ownsCABundle(e.FieldsV1.Raw) {
			continue
		}
		var at time.Time
		if e.Time != nil {
			at = e.Time.Time
		}
		if owner == "" || at.After(latest) {
			owner, latest = e.Manager, at
		}
	}
	return owner
}

// ownsCABundle reports whether a FieldsV1 set holds f:spec -> f:caBundle.
// A set that does not parse owns nothing.
func ownsCABundle(raw []byte) bool {
	var set map[string]json.RawMessage
	if json.Unmarshal(raw, &set) != nil || set["f:spec"] == nil {
		return false
	}
	var spec map[string]json.RawMessage
	if json.Unmarshal(set["f:spec"], &spec) != nil {
		return false
	}
	_, ok := spec["f:caBundle"]
	return ok
}

// managerCount is how many replacements one manager made.
type managerCount struct {
	name string
	n    int
}

// countManagers counts events by manager, sorted by name.
func countManagers(events []churnEvent) []managerCount {
	var out []managerCount
	for _, e := range events {
		i, found := slices.BinarySearchFunc(out, e.manager, func(m managerCount, name string) int {
			return strings.Compare(m.name, name)
		})
		if !found {
			out = slices.Insert(out, i, managerCount{name: e.manager})
		}
		out[i].n++
	}
	return out
}

// churnResult renders the finding: a short message naming the managers, the
// fix for the tools involved, and the full list in the detail.
func churnResult(api *apiregv1.APIService, n int, window time.Duration, managers []managerCount) Result {
	head := fmt.Sprintf("caBundle replaced %d times in %s by %d managers: ", n, shortDuration(window), len(managers))
	listed := make([]string, len(managers))
	full := make([]string, len(managers))
	for i, m := range managers {
		listed[i] = fmt.Sprintf("%s (%d)", cutString(m.name, maxListedName), m.n)
		full[i] = fmt.Sprintf("%s (%d)", m.name, m.n)
	}
	keda := api.Labels[labelPartOf] == "keda-operator" || slices.ContainsFunc(managers, func(m managerCount) bool {
		return containsFold(m.name, "keda")
	})
	gitOps := slices.ContainsFunc(managers, func(m managerCount) bool {
		return slices.ContainsFunc(gitOpsManagers, func(g string) bool { return containsFold(m.name, g) })
	})
	detail := "replacements within " + shortDuration(window) + " by manager: " + fitList(full, maxChurnDetail) +
		". Each writer puts its own bundle back after the other's write; meanwhile the aggregator may use a bundle " +
		"that does not verify the adapter, and writes to the APIService conflict."
	fix := genericChurnFix
	switch {
	case keda && gitOps:
		fix = kedaChurnFix
		detail += " Or, in the GitOps tool: " + gitOpsChurnFix + "."
	case keda:
		fix = kedaChurnFix
	case gitOps:
		fix = gitOpsChurnFix
	}
	return Result{Message: head + fitList(listed, maxChurnMessage-len(head)), Fix: fix, Detail: detail, Advisory: true}
}

// fitList joins items with ", " in at most budget bytes, ending with
// "+N more" for the items that do not fit.
func fitList(items []string, budget int) string {
	var b strings.Builder
	for i, item := range items {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		more := ""
		if rest := len(items) - i - 1; rest > 0 {
			more = fmt.Sprintf(", +%d more", rest)
		}
		if b.Len()+len(sep)+len(item)+len(more) > budget {
			// The previous round made room for exactly this.
			fmt.Fprintf(&b, "%s+%d more", sep, len(items)-i)
			break
		}
		b.WriteString(sep + item)
	}
	return b.String()
}

// cutString cuts s to at most n bytes on a rune boundary, ending in "...".
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func containsFold(s, sub string) bool { return strings.Contains(strings.ToLower(s), sub) }

// shortDuration renders a duration without trailing zero units: "10m", "1h",
// "1m30s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

const (
	// churnTrackedAPIServices bounds the APIServices whose replacements are
	// remembered; the least recently written is forgotten first. A cluster
	// has tens of APIServices; the bound only matters against abuse.
	churnTrackedAPIServices = 1024
	// churnRingSize is how many replacements are remembered per APIService:
	// the largest configurable count, so the count is exact for any config.
	// With maxManagerLength it bounds the tracker to about 1024 * 64 *
	// (40 + 128) bytes (11 MB), 2.6 MB without the names.
	churnRingSize = maxChurnReplacements
	// maxManagerLength cuts the names remembered: the API server allows field
	// managers of up to 128 characters, user names are unbounded.
	maxManagerLength = 128
)

// churnEvent is one replacement of an APIService's caBundle.
type churnEvent struct {
	at      time.Time
	manager string
}

// churnTracker remembers the recent caBundle replacements of each APIService,
// for apiservice-cabundle-churn. Its memory is bounded: at most
// churnTrackedAPIServices APIServices, each with a ring of the last
// churnRingSize replacements. It is safe for concurrent use.
//
// Every replica of the guard has its own tracker and sees only the writes
// sent to it, so with several replicas a fight is noticed later.
type churnTracker struct {
	window       time.Duration
	replacements int // the count that makes a finding
	limit        int // APIServices remembered

	mu     sync.Mutex
	recent *list.List // of *churnHistory, most recently written first
	byName map[string]*list.Element
}

// churnHistory is one APIService's ring of replacements, oldest at head.
type churnHistory struct {
	name string
	ring [churnRingSize]churnEvent
	head int
	n    int
}

// newChurnTracker returns a tracker remembering at most limit APIServices;
// c must have its defaults applied.
func newChurnTracker(c ChurnConfig, limit int) *churnTracker {
	return &churnTracker{window: c.Window, replacements: c.Replacements, limit: max(limit, 1),
		recent: list.New(), byName: map[string]*list.Element{}}
}

// observe returns the replacements of the named APIService's caBundle within
// the window ending at e.at, oldest first, e (the write under review)
// included as the newest. It remembers e when record is true; a dry run is
// answered the same but changes nothing.
func (t *churnTracker) observe(name string, e churnEvent, record bool) []churnEvent {
	e.manager = cutString(e.manager, maxManagerLength)
	t.mu.Lock()
	defer t.mu.Unlock()
	var h *churnHistory
	if el, ok := t.byName[name]; ok {
		h = el.Value.(*churnHistory)
		if record {
			t.recent.MoveToFront(el)
		}
	} else if record {
		h = &churnHistory{name: name}
		t.byName[name] = t.recent.PushFront(h)
		t.evict()
	}
	var out []churnEvent
	if h != nil {
		if record {
			h.prune(e.at, t.window)
		}
		out = h.within(e.at, t.window)
		if record {
			e.manager = h.intern(e.manager)
			h.add(e)
		}
	}
	out = append(out, e)
	if len(out) > churnRingSize {
		out = out[len(out)-churnRingSize:]
	}
	return out
}

// evict forgets the least recently written APIServices beyond the limit.
func (t *churnTracker) evict() {
	for t.recent.Len() > t.limit {
		oldest := t.recent.Back()
		t.recent.Remove(oldest)
		delete(t.byName, oldest.Value.(*churnHistory).name)
	}
}

// inWindow reports whether an event at "at" lies within window before now.
// Concurrent writes may be recorded a little out of order: an event later
// than now counts.
func inWindow(at, now time.Time, window time.Duration) bool { return now.Sub(at) < window }

// prune drops the oldest events while they are outside the window.
func (h *churnHistory) prune(now time.Time, window time.Duration) {
	for h.n > 0 && !inWindow(h.ring[h.head].at, now, window) {
		h.ring[h.head] = churnEvent{} // release the name
		h.head = (h.head + 1) % len(h.ring)
		h.n--
	}
}

// within returns the remembered events within the window, oldest first.
func (h *churnHistory) within(now time.Time, window time.Duration) []churnEvent {
	out := make([]churnEvent, 0, h.n+1)
	for i := range h.n {
		if e := h.ring[(h.head+i)%len(h.ring)]; inWindow(e.at, now, window) {
			out = append(out, e)
		}
	}
	return out
}

// add remembers e, overwriting the oldest event when the ring is full.
func (h *churnHistory) add(e churnEvent) {
	if h.n == len(h.ring) {
		h.ring[h.head] = e
		h.head = (h.head + 1) % len(h.ring)
		return
	}
	h.ring[(h.head+h.n)%len(h.ring)] = e
	h.n++
}

// intern returns the remembered copy of a manager name when the ring holds
// one, else a copy of its own: a fight between two writers keeps two names,
// not one per write, and no name pins the request it was decoded from.
func (h *churnHistory) intern(manager string) string {
	for i := range h.n {
		if m := h.ring[(h.head+i)%len(h.ring)].manager; m == manager {
			return m
		}
	}
	return strings.Clone(manager)
}
