package policies_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// cnpOf is a CiliumNetworkPolicy in ns selecting sel with one rule.
func cnpOf(ns, name string, sel map[string]string, rule netpol.CiliumRule) *cluster.CiliumNetworkPolicy {
	rule.EndpointSelector = &metav1.LabelSelector{MatchLabels: sel}
	return &cluster.CiliumNetworkPolicy{CiliumPolicy: netpol.CiliumPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "cilium.io/v2", Kind: "CiliumNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"}, Spec: &rule}}
}

// ccnpOf is a CiliumClusterwideNetworkPolicy selecting every pod.
func ccnpOf(name string, rule netpol.CiliumRule) *cluster.CiliumClusterwideNetworkPolicy {
	rule.EndpointSelector = &metav1.LabelSelector{}
	return &cluster.CiliumClusterwideNetworkPolicy{CiliumPolicy: netpol.CiliumPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "cilium.io/v2", Kind: "CiliumClusterwideNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"}, Spec: &rule}}
}

func fromEntities(e ...string) netpol.CiliumRule {
	return netpol.CiliumRule{Ingress: []netpol.CiliumIngressRule{{FromEntities: e}}}
}

// ciliumReview reviews a write of a Cilium policy (old nil: CREATE; obj
// nil: DELETE).
func ciliumReview(old, obj runtime.Object) *policies.Review {
	kind, ns, name := policies.CiliumNetworkPolicyKind, "", ""
	for _, o := range []runtime.Object{obj, old} {
		switch p := o.(type) {
		case *cluster.CiliumNetworkPolicy:
			ns, name = p.Namespace, p.Name
		case *cluster.CiliumClusterwideNetworkPolicy:
			kind, name = policies.CiliumClusterwideNetworkPolicyKind, p.Name
		}
	}
	return writeReview(kind, ns, name, old, obj)
}

// TestCiliumPolicyWrites: writes of Cilium policies are judged before and
// after by Cilium's model with the control-plane sources as Cilium sees
// them: KEDA's cluster-only flavour is refused while the API server is out
// of the cluster and passes with pod-network konnectivity agents; a deny
// wins; NetworkPolicies join the union.
func TestCiliumPolicyWrites(t *testing.T) {
	outside := slices.Concat(kedaBackend(), objs(apiServerSlice(apiServerIP)))
	withAgents := slices.Concat(kedaBackend(), objs(konnectivityAgent("konnectivity-agent-p", "10.244.0.5")))
	kedaSel := map[string]string{"app": "keda-operator-metrics-apiserver"}
	clusterOnly := cnpOf(kedaNS, "keda-metrics", kedaSel, fromEntities("cluster"))
	withAPIServer := cnpOf(kedaNS, "keda-metrics", kedaSel, fromEntities("cluster", "kube-apiserver"))
	denyWorld := ccnpOf("deny-world", netpol.CiliumRule{IngressDeny: []netpol.CiliumIngressRule{{FromEntities: []string{"world"}}}})
	agentSel := map[string]string{"k8s-app": "konnectivity-agent"}
	agentsToAPIServer := cnpOf("kube-system", "agents-egress", agentSel, netpol.CiliumRule{Egress: []netpol.CiliumEgressRule{{ToEntities: []string{"kube-apiserver"}}}})
	enforce := []verdict{{blocksAPIService, policies.Enforce}}

	tests := []writeCase{
		{name: "KEDA's Cilium flavour (cluster only) with the API server out of the cluster", state: outside,
			review: ciliumReview(nil, clusterOnly), want: enforce,
			mentions: []string{"API server " + apiServerIP, "(isolated by keda/keda-metrics, Cilium)",
				"fromEntities: [kube-apiserver]", `port: "6443"`, "a deny wins over every allow"}},
		{name: "the same with the kube-apiserver entity", state: outside, review: ciliumReview(nil, withAPIServer)},
		{name: "KEDA's flavour with pod-network konnectivity agents: cluster admits them", state: withAgents,
			review: ciliumReview(nil, clusterOnly)},
		{name: "UPDATE taking kube-apiserver out", state: slices.Concat(outside, objs(withAPIServer)),
			review: ciliumReview(withAPIServer, clusterOnly), want: enforce},
		{name: "a clusterwide deny of world wins over the kube-apiserver allow", state: slices.Concat(outside, objs(withAPIServer)),
			review: ciliumReview(nil, denyWorld), want: enforce,
			mentions: []string{"denied by CiliumClusterwideNetworkPolicy deny-world ingressDeny rule 0", "leave the source out"}},
		{name: "DELETE of the allow a cluster-only policy relied on: a NetworkPolicy admitting the agents stays in the union",
			state:  slices.Concat(withAgents, objs(netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443)), clusterOnly)),
			review: ciliumReview(clusterOnly, nil)},
		{name: "a policy of another namespace is not judged for keda's backend", state: outside,
			review: ciliumReview(nil, cnpOf("shop", "cluster-only", nil, fromEntities("cluster")))},
		{name: "agents' egress to the API server only: their egress to the backend is cut", state: withAgents,
			review: ciliumReview(nil, agentsToAPIServer), want: []verdict{{"networkpolicy-blocks-konnectivity", policies.Warn}},
			mentions: []string{"konnectivity-agent pod kube-system/konnectivity-agent-p", "allow egress from the agents"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectFindings(t, evaluateNP(t, newView(t, tc.state...), tc.review, nil, ""), tc.want, tc.mentions)
		})
	}
}

// TestNetworkPolicyWritesUnderCilium: with Cilium policies in the cluster a
// NetworkPolicy write is judged by Cilium's model: a Cilium allow of the
// API server leaves a default-deny harmless, and an ipBlock of the API
// server's node address does not admit it (Cilium matches nodes by
// identity, not by CIDR).
func TestNetworkPolicyWritesUnderCilium(t *testing.T) {
	onNode := slices.Concat(kedaBackend(), objs(apiServerSlice(apiServerIP), controlPlaneNode("cp-1", apiServerIP)))
	kedaSel := map[string]string{"app": "keda-operator-metrics-apiserver"}
	allowAPIServer := cnpOf(kedaNS, "allow-apiserver", kedaSel, fromEntities("kube-apiserver"))
	unrelated := cnpOf("shop", "unrelated", nil, fromEntities("cluster"))
	ipBlockAllow := netpolicy(kedaNS, "allow-cp", npAllow(ipBlock(apiServerIP+"/32"), 6443))
	for _, tc := range []struct {
		name   string
		extra  []runtime.Object
		review *policies.Review
		want   []verdict
	}{
		{"no Cilium policy: the ipBlock admits the API server's node", nil, npCreate(ipBlockAllow), nil},
		{"Cilium policies: the ipBlock does not", objs(unrelated), npCreate(ipBlockAllow), []verdict{{blocksAPIService, policies.Enforce}}},
		{"a Cilium allow of kube-apiserver: a default-deny is harmless", objs(allowAPIServer), npCreate(netpolicy(kedaNS, "default-deny")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := evaluateNP(t, newView(t, slices.Concat(onNode, tc.extra)...), tc.review, nil, "")
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\nall findings: %v", diff, got)
			}
		})
	}
}
