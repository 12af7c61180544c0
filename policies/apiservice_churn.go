package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/internal/shorten"
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
		listed[i] = fmt.Sprintf("%s (%d)", shorten.String(m.name, maxListedName), m.n)
		full[i] = fmt.Sprintf("%s (%d)", m.name, m.n)
	}
	keda := api.Labels[labelPartOf] == "keda-operator" || slices.ContainsFunc(managers, func(m managerCount) bool {
		return containsFold(m.name, "keda")
	})
	gitOps := slices.ContainsFunc(managers, func(m managerCount) bool {
		return slices.ContainsFunc(gitOpsManagers, func(g string) bool { return containsFold(m.name, g) })
	})
	detail := "replacements within " + shortDuration(window) + " by manager: " + shorten.List(full, maxChurnDetail) +
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
	return Result{Message: head + shorten.List(listed, maxChurnMessage-len(head)), Fix: fix, Detail: detail, Advisory: true}
}

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
