package policies_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	anp "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnp "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/policies"
)

// clusterNP is a ClusterNetworkPolicy of tier and priority whose subject is
// every pod, with one ingress rule from every namespace's pods.
func clusterNP(name string, tier cnp.Tier, priority int32, action cnp.ClusterNetworkPolicyRuleAction, from cnp.ClusterNetworkPolicyIngressPeer) *cnp.ClusterNetworkPolicy {
	return &cnp.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: cnp.GroupVersion.String(), Kind: "ClusterNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Spec: cnp.ClusterNetworkPolicySpec{Tier: tier, Priority: priority,
			Subject: cnp.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []cnp.ClusterNetworkPolicyIngressRule{{Name: "r", Action: action, From: []cnp.ClusterNetworkPolicyIngressPeer{from}}}},
	}
}

var (
	everyPod  = cnp.ClusterNetworkPolicyIngressPeer{Namespaces: &metav1.LabelSelector{}}
	agentPods = cnp.ClusterNetworkPolicyIngressPeer{Pods: &cnp.NamespacedPod{
		NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
		PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "konnectivity-agent"}}}}
)

// cnpReview reviews a write of a cluster-scoped policy (old nil: CREATE;
// obj nil: DELETE).
func cnpReview(old, obj runtime.Object, name string) *policies.Review {
	return writeReview(policies.ClusterNetworkPolicyKind, "", name, old, obj)
}

// writeReview reviews a write of kind (old nil: CREATE; obj nil: DELETE).
func writeReview(kind schema.GroupKind, ns, name string, old, obj runtime.Object) *policies.Review {
	r := &policies.Review{Kind: kind, Operation: policies.Update, Object: obj, OldObject: old, Namespace: ns, Name: name}
	switch {
	case old == nil:
		r.Operation = policies.Create
	case obj == nil:
		r.Operation = policies.Delete
	}
	return r
}

// writeCase is a write reviewed on a state, and what it must find.
type writeCase struct {
	name     string
	state    []runtime.Object
	review   *policies.Review
	want     []verdict
	mentions []string
}

// expectFindings checks the findings' rules and actions, that each
// mentions every string of mentions (in its text or detail), and that each
// fits a warning line.
func expectFindings(t *testing.T, got []policies.Finding, want []verdict, mentions []string) {
	t.Helper()
	if diff := cmp.Diff(want, verdicts(got)); diff != "" {
		t.Fatalf("findings (-want +got):\n%s\nall findings: %v", diff, got)
	}
	for _, f := range got {
		for _, m := range mentions {
			if !strings.Contains(f.String()+" "+f.Detail, m) {
				t.Errorf("finding %q (detail %q) does not mention %q", f.String(), f.Detail, m)
			}
		}
		checkWarningLines(t, f)
	}
}

// TestClusterPolicyWrites: a write of a ClusterNetworkPolicy (or its
// v1alpha1 predecessors) is judged on the whole stack, before and after,
// for every protected backend: the Baseline deny-all that stops the
// konnectivity agents is refused, naming the policy, its tier and the
// Accept that fixes it; what does not cut the control plane off passes.
func TestClusterPolicyWrites(t *testing.T) {
	agents := objs(konnectivityAgent("konnectivity-agent-p", "10.244.0.5"))
	state := slices.Concat(kedaBackend(), agents)
	baselineDeny := clusterNP("baseline-deny", cnp.BaselineTier, 50, cnp.ClusterNetworkPolicyRuleActionDeny, everyPod)
	acceptAgents := clusterNP("accept-agents", cnp.BaselineTier, 10, cnp.ClusterNetworkPolicyRuleActionAccept, agentPods)
	adminDeny := clusterNP("admin-deny", cnp.AdminTier, 5, cnp.ClusterNetworkPolicyRuleActionDeny, everyPod)
	adminPass := clusterNP("admin-pass-agents", cnp.AdminTier, 1, cnp.ClusterNetworkPolicyRuleActionPass, agentPods)
	banp := &anp.BaselineAdminNetworkPolicy{TypeMeta: metav1.TypeMeta{Kind: "BaselineAdminNetworkPolicy"}, ObjectMeta: metav1.ObjectMeta{Name: "default", ResourceVersion: "1"},
		Spec: anp.BaselineAdminNetworkPolicySpec{Subject: anp.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []anp.BaselineAdminNetworkPolicyIngressRule{{Action: anp.BaselineAdminNetworkPolicyRuleActionDeny,
				From: []anp.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}}}}
	enforce := []verdict{{blocksAPIService, policies.Enforce}}

	tests := []writeCase{
		{name: "Baseline deny-all of every namespace's pods stops the agents", state: state,
			review: cnpReview(nil, baselineDeny, "baseline-deny"), want: enforce,
			mentions: []string{"APIService " + kedaAPI, "konnectivity-agent pod kube-system/konnectivity-agent-p", "denied by Baseline-tier baseline-deny",
				"ClusterNetworkPolicy baseline-deny (Baseline tier, priority 50) ingress rule 0",
				"action: Accept", "{pods: {namespaceSelector:", "priority below 50"}},
		{name: "Baseline deny-all after a Baseline Accept of the agents", state: slices.Concat(state, objs(acceptAgents)),
			review: cnpReview(nil, baselineDeny, "baseline-deny")},
		{name: "Baseline deny-all where a NetworkPolicy isolates the backend and admits the agents",
			state:  slices.Concat(state, objs(netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443)))),
			review: cnpReview(nil, baselineDeny, "baseline-deny")},
		{name: "Admin deny-all overrides that NetworkPolicy",
			state:  slices.Concat(state, objs(netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443)))),
			review: cnpReview(nil, adminDeny, "admin-deny"), want: enforce, mentions: []string{"denied by Admin-tier admin-deny"}},
		{name: "Admin deny-all after an Admin Pass of the agents to a NetworkPolicy that admits them",
			state:  slices.Concat(state, objs(adminPass, netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443)))),
			review: cnpReview(nil, adminDeny, "admin-deny")},
		{name: "DELETE of the Baseline Accept that the deny-all relied on", state: slices.Concat(state, objs(acceptAgents, baselineDeny)),
			review: cnpReview(acceptAgents, nil, "accept-agents"), want: enforce, mentions: []string{"denied by Baseline-tier baseline-deny"}},
		{name: "UPDATE narrowing an Accept to other pods", state: slices.Concat(state, objs(acceptAgents, baselineDeny)),
			review: cnpReview(acceptAgents, clusterNP("accept-agents", cnp.BaselineTier, 10, cnp.ClusterNetworkPolicyRuleActionAccept,
				cnp.ClusterNetworkPolicyIngressPeer{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}}), "accept-agents"),
			want: enforce},
		{name: "a BaselineAdminNetworkPolicy deny-all, v1alpha1, stops the agents too", state: state,
			review: &policies.Review{Kind: policies.BaselineAdminNetworkPolicyKind, Operation: policies.Create, Object: banp, Name: "default"},
			want:   enforce, mentions: []string{"denied by Baseline-tier default", "BaselineAdminNetworkPolicy default"}},
		{name: "an API server that is no pod: a deny of every namespace's pods does not touch it",
			state:  slices.Concat(kedaBackend(), objs(apiServerSlice(apiServerIP))),
			review: cnpReview(nil, baselineDeny, "baseline-deny")},
		{name: "a Deny whose peer sets no field fails closed and stops the API server",
			state:  slices.Concat(kedaBackend(), objs(apiServerSlice(apiServerIP))),
			review: cnpReview(nil, clusterNP("broken", cnp.AdminTier, 1, cnp.ClusterNetworkPolicyRuleActionDeny, cnp.ClusterNetworkPolicyIngressPeer{}), "broken"),
			want:   enforce, mentions: []string{"API server " + apiServerIP, "fails closed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectFindings(t, evaluateNP(t, newView(t, tc.state...), tc.review, nil, ""), tc.want, tc.mentions)
		})
	}
}

// TestNetworkPolicyWritesSeeTheTiers: a NetworkPolicy write is judged with
// the cluster's tiers around it: an Admin Accept of the agents leaves a
// default-deny harmless; an Admin Deny that already stops them makes the
// default-deny no change.
func TestNetworkPolicyWritesSeeTheTiers(t *testing.T) {
	state := slices.Concat(kedaBackend(), objs(konnectivityAgent("konnectivity-agent-p", "10.244.0.5")))
	deny := netpolicy(kedaNS, "default-deny")
	for _, tc := range []struct {
		name  string
		extra []runtime.Object
		want  []verdict
	}{
		{"no cluster policy: the default-deny stops the agents", nil, []verdict{{blocksAPIService, policies.Enforce}}},
		{"an Admin Accept of the agents", objs(clusterNP("accept", cnp.AdminTier, 1, cnp.ClusterNetworkPolicyRuleActionAccept, agentPods)), nil},
		{"an Admin Deny stops them already", objs(clusterNP("deny", cnp.AdminTier, 1, cnp.ClusterNetworkPolicyRuleActionDeny, everyPod)), nil},
		{"a Baseline Accept does not count for a pod the policy isolates", objs(clusterNP("accept", cnp.BaselineTier, 1, cnp.ClusterNetworkPolicyRuleActionAccept, agentPods)),
			[]verdict{{blocksAPIService, policies.Enforce}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := evaluateNP(t, newView(t, slices.Concat(state, tc.extra)...), npCreate(deny), nil, "")
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\nall findings: %v", diff, got)
			}
		})
	}
}
