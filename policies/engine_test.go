package policies_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/k0s"
	"apiservice-guard.io/apiservice-guard/policies"
)

// TestDefaultRules pins the catalogue and its default actions to DESIGN.md.
func TestDefaultRules(t *testing.T) {
	want := []verdict{
		{"apiservice-backend-missing", policies.Warn},
		{"apiservice-port-mismatch", policies.Enforce},
		{"apiservice-no-ready-endpoints", policies.Warn},
		{"apiservice-cabundle-invalid", policies.Enforce},
		{"apiservice-insecure-skip-tls", policies.Warn},
		{"apiservice-cabundle-mismatch", policies.Enforce},
		{"apiservice-serving-cert-san", policies.Warn},
		{"apiservice-backend-replaced", policies.Warn},
		{"apiservice-auth-delegation", policies.Warn},
		{"apiservice-firewall-port", policies.Warn},
		{"apiservice-unreachable", policies.Warn},
		{"apiservice-cabundle-churn", policies.Warn},
		{"apiservice-cabundle-inject", policies.Warn},
		{"apiservice-cabundle-preserve", policies.Warn},
		{"networkpolicy-blocks-apiservice", policies.Enforce},
		{"networkpolicy-blocks-webhook", policies.Warn},
		{"networkpolicy-blocks-konnectivity", policies.Warn},
		{"networkpolicy-invalid", policies.Warn},
		{"k0s-konnectivity-disabled", policies.Warn},
		{"k0s-config-invalid", policies.Enforce},
		{"k0s-immutable-network-change", policies.Enforce},
		{"k0s-calico-autodetect", policies.Warn},
	}
	var got []verdict
	for _, r := range policies.DefaultRules() {
		got = append(got, verdict{r.Name, r.Default})
		if r.Summary == "" || (r.Check == nil) == (r.Mutate == nil) {
			t.Errorf("rule %s lacks a summary, or has not exactly one of check and mutation", r.Name)
		}
		// APIService rules review CREATE and UPDATE; NetworkPolicy rules
		// every operation (a DELETE can remove the only allow).
		wantKinds, wantOps := []schema.GroupKind{policies.APIServiceKind}, []policies.Operation{policies.Create, policies.Update}
		switch {
		case r.Name == "networkpolicy-blocks-apiservice" || r.Name == "networkpolicy-blocks-webhook" || r.Name == "networkpolicy-blocks-konnectivity":
			// Cluster-scoped and Cilium policies cut paths too.
			wantKinds, wantOps = []schema.GroupKind{policies.NetworkPolicyKind, policies.ClusterNetworkPolicyKind,
				policies.AdminNetworkPolicyKind, policies.BaselineAdminNetworkPolicyKind,
				policies.CiliumNetworkPolicyKind, policies.CiliumClusterwideNetworkPolicyKind}, nil
		case strings.HasPrefix(r.Name, "networkpolicy-"):
			wantKinds, wantOps = []schema.GroupKind{policies.NetworkPolicyKind}, nil
		case r.Name == "apiservice-cabundle-preserve":
			wantOps = []policies.Operation{policies.Update} // only an UPDATE can empty a caBundle
		case r.Name == "apiservice-cabundle-churn":
			wantOps = []policies.Operation{policies.Update} // only an UPDATE replaces a caBundle
		case r.Name == "k0s-konnectivity-disabled":
			wantKinds = []schema.GroupKind{policies.ConfigMapKind} // only worker-configs carry it
		case r.Name == "k0s-immutable-network-change":
			wantKinds, wantOps = []schema.GroupKind{policies.ConfigMapKind, k0s.ClusterConfigKind}, []policies.Operation{policies.Update}
		case strings.HasPrefix(r.Name, "k0s-"):
			wantKinds = []schema.GroupKind{policies.ConfigMapKind, k0s.ClusterConfigKind}
		}
		if diff := cmp.Diff(wantKinds, r.Kinds); diff != "" {
			t.Errorf("rule %s kinds (-want +got):\n%s", r.Name, diff)
		}
		if diff := cmp.Diff(wantOps, r.Operations); diff != "" {
			t.Errorf("rule %s operations (-want +got):\n%s", r.Name, diff)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DefaultRules() (-want +got):\n%s", diff)
	}
}

var (
	configMapKind = schema.GroupKind{Kind: "ConfigMap"}
	secretKind    = schema.GroupKind{Kind: "Secret"}
)

// fixedRule reports one result on every review of a ConfigMap.
func fixedRule(name string, def policies.Action, ops ...policies.Operation) policies.Rule {
	return policies.Rule{
		Name: name, Default: def, Summary: "test rule",
		Kinds: []schema.GroupKind{configMapKind}, Operations: ops,
		Check: func(context.Context, *policies.Review, cluster.View) []policies.Result {
			return []policies.Result{{Message: name + " found something", Fix: "fix it"}}
		},
	}
}

func configMapReview(op policies.Operation, namespace string) *policies.Review {
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "cm"}}
	r := &policies.Review{Operation: op, Kind: configMapKind, Namespace: namespace, Name: "cm", Object: cm}
	if op == policies.Delete {
		r.Object, r.OldObject = nil, cm
	}
	return r
}

func TestNewEngineRejectsIncompleteRules(t *testing.T) {
	ok := fixedRule("ok", policies.Warn)
	noName, noCheck, noKinds := ok, ok, ok
	noName.Name = ""
	noCheck.Check = nil
	noKinds.Kinds = nil
	for name, r := range map[string]policies.Rule{"no name": noName, "no check": noCheck, "no kinds": noKinds} {
		if _, err := policies.NewEngine(policies.Config{}, []policies.Rule{ok, r}); err == nil || !strings.Contains(err.Error(), "rule 1") {
			t.Errorf("%s: NewEngine() error = %v, want one naming rule 1", name, err)
		}
	}
}

func TestEngineEvaluate(t *testing.T) {
	rules := []policies.Rule{
		fixedRule("first", policies.Enforce),
		fixedRule("delete-only", policies.Warn, policies.Delete),
		fixedRule("last", policies.Audit, policies.Create, policies.Update),
	}
	ref := policies.ObjectRef{APIVersion: "v1", Kind: "ConfigMap", Namespace: "apps", Name: "cm"}
	finding := func(rule string, a policies.Action) policies.Finding {
		return policies.Finding{Rule: rule, Action: a, Object: ref, Message: rule + " found something", Fix: "fix it"}
	}
	tests := []struct {
		name   string
		config policies.Config
		review *policies.Review
		want   []policies.Finding
	}{
		{
			name:   "create: rules for CREATE, in catalogue order",
			review: configMapReview(policies.Create, "apps"),
			want:   []policies.Finding{finding("first", policies.Enforce), finding("last", policies.Audit)},
		},
		{
			name:   "delete: rules for DELETE",
			review: configMapReview(policies.Delete, "apps"),
			want:   []policies.Finding{finding("first", policies.Enforce), finding("delete-only", policies.Warn)},
		},
		{
			name:   "object in an exempt namespace",
			config: policies.Config{ExemptNamespaces: []string{"apps"}},
			review: configMapReview(policies.Create, "apps"),
		},
		{
			name:   "mode audit",
			config: policies.Config{Mode: policies.ModeAudit, Rules: map[string]policies.Action{"last": policies.Enforce}},
			review: configMapReview(policies.Create, "apps"),
			want:   []policies.Finding{finding("first", policies.Audit), finding("last", policies.Audit)},
		},
		{
			name:   "rule off",
			config: policies.Config{Rules: map[string]policies.Action{"first": policies.Off}},
			review: configMapReview(policies.Create, "apps"),
			want:   []policies.Finding{finding("last", policies.Audit)},
		},
		{
			name:   "kind no rule reviews",
			review: &policies.Review{Operation: policies.Create, Kind: schema.GroupKind{Kind: "Secret"}, Namespace: "apps", Name: "cm"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := policies.NewEngine(tc.config, rules)
			if err != nil {
				t.Fatal(err)
			}
			got := e.Evaluate(t.Context(), tc.review, newView(t))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Evaluate() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEngineStopsWhenTheContextEnds: a rule that ends the review's
// context (its budget spent) is the last to run.
func TestEngineStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	spender := fixedRule("spends-the-budget", policies.Warn)
	check := spender.Check
	spender.Check = func(ctx context.Context, r *policies.Review, v cluster.View) []policies.Result {
		cancel()
		return check(ctx, r, v)
	}
	e, err := policies.NewEngine(policies.Config{}, []policies.Rule{fixedRule("first", policies.Enforce), spender, fixedRule("last", policies.Audit)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range e.Evaluate(ctx, configMapReview(policies.Create, "apps"), newView(t)) {
		got = append(got, f.Rule)
	}
	if diff := cmp.Diff([]string{"first", "spends-the-budget"}, got); diff != "" {
		t.Errorf("rules run (-want +got):\n%s", diff)
	}
}

func TestEngineHandles(t *testing.T) {
	tests := []struct {
		name   string
		config policies.Config
		want   bool
	}{
		{name: "defaults", want: true},
		{name: "one rule left", config: offExcept("apiservice-firewall-port"), want: true},
		{name: "every rule off", config: offExcept(), want: false},
	}
	for _, tc := range tests {
		e := mustEngine(t, tc.config)
		if got := e.Handles(policies.APIServiceKind); got != tc.want {
			t.Errorf("%s: Handles(APIService) = %v, want %v", tc.name, got, tc.want)
		}
		if e.Handles(secretKind) {
			t.Errorf("%s: Handles(Secret) = true, want false", tc.name)
		}
	}
}

// offExcept turns every default rule off but the named ones.
func offExcept(names ...string) policies.Config {
	cfg := policies.Config{Mode: policies.ModeEnforce, Rules: map[string]policies.Action{}}
	for _, r := range policies.DefaultRules() {
		cfg.Rules[r.Name] = policies.Off
	}
	for _, n := range names {
		delete(cfg.Rules, n)
	}
	return cfg
}

func TestFindingString(t *testing.T) {
	f := policies.Finding{Rule: "apiservice-port-mismatch", Message: "port 8443 is not a Service port"}
	if got, want := f.String(), "[apiservice-port-mismatch] port 8443 is not a Service port"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	f.Fix = "use 443"
	if got, want := f.String(), "[apiservice-port-mismatch] port 8443 is not a Service port Fix: use 443"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
