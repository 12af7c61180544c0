package policies_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// ---- networkpolicy-blocks-apiservice ----

func TestBlocksAPIService(t *testing.T) {
	deny := netpolicy(kedaNS, "default-deny")
	allow := allowAPIServer(kedaNS, "allow-control-plane", 6443)
	cp := objs(apiServerSlice(apiServerIP))
	enforce := []verdict{{blocksAPIService, policies.Enforce}}
	blockedMentions := []string{"APIService " + kedaAPI, "API server " + apiServerIP, "pod " + kedaNS + "/" + kedaPod, "6443/TCP",
		"ipBlock: {cidr: 10.0.0.1/32}", "port: 6443"}
	runNPCases(t, []npCase{
		{
			name:     "default-deny in the backend's namespace",
			state:    slices.Concat(kedaBackend(), cp),
			review:   npCreate(deny),
			want:     enforce,
			mentions: append(blockedMentions, "isolated by default-deny"),
			detail:   []string{"ingress from 10.0.0.1 to keda/" + kedaPod + " on 6443/TCP denied", "keda/default-deny"},
		},
		{
			name:   "default-deny after an allow of the API server on the pod port",
			state:  slices.Concat(kedaBackend(), cp, objs(allow)),
			review: npCreate(deny),
		},
		{
			name: "default-deny after an allow of every source on the pod port",
			state: slices.Concat(kedaBackend(), cp, objs(netpolicy(kedaNS, "allow-6443", func(np *networkingv1.NetworkPolicy) {
				np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: npPorts([]any{6443})}}
			}))),
			review: npCreate(deny),
		},
		{
			name:     "allow on the Service port 443, not the pod port 6443",
			state:    slices.Concat(kedaBackend(), cp),
			review:   npCreate(allowAPIServer(kedaNS, "allow-443", 443)),
			want:     enforce,
			mentions: append(blockedMentions, "isolated by allow-443"),
		},
		{
			name:     "allow of another address only",
			state:    slices.Concat(kedaBackend(), cp),
			review:   npCreate(netpolicy(kedaNS, "allow-lb", npAllow(ipBlock("10.0.0.0/24", "10.0.0.0/30"), 6443))),
			want:     enforce,
			mentions: blockedMentions,
		},
		{
			name:   "policy selecting other pods of the namespace",
			state:  slices.Concat(kedaBackend(), cp),
			review: npCreate(netpolicy(kedaNS, "deny-operator", npSelect(map[string]string{"app": "keda-operator"}))),
		},
		{
			name:   "egress-only default-deny does not touch ingress",
			state:  slices.Concat(kedaBackend(), cp),
			review: npCreate(netpolicy(kedaNS, "deny-egress", npEgress())),
		},
		{
			name:     "DELETE of the only allow while the default-deny remains",
			state:    slices.Concat(kedaBackend(), cp, objs(deny, allow)),
			review:   npDelete(allow),
			want:     enforce,
			mentions: append(blockedMentions, "isolated by default-deny)"),
			detail:   []string{"denied: isolated by keda/default-deny, and no ingress rule allows it"},
		},
		{
			name:   "DELETE of the default-deny",
			state:  slices.Concat(kedaBackend(), cp, objs(deny, allow)),
			review: npDelete(deny),
		},
		{
			// The namespace controller deletes policies in any order while a
			// namespace goes away; refusing would leave it stuck Terminating.
			name:   "DELETE of the only allow in a terminating namespace",
			state:  slices.Concat(kedaBackend(), terminatingNamespace(kedaNS), cp, objs(deny, allow)),
			review: npDelete(allow),
		},
		{
			name:     "UPDATE narrowing the allow from 6443 to 8080",
			state:    slices.Concat(kedaBackend(), cp, objs(deny, allow)),
			review:   npReview(allow, allowAPIServer(kedaNS, "allow-control-plane", 8080)),
			want:     enforce,
			mentions: append(blockedMentions, "isolated by default-deny, allow-control-plane)"),
			detail:   []string{"keda/default-deny, keda/allow-control-plane"},
		},
		{
			name:   "UPDATE widening the allow's source and adding a port",
			state:  slices.Concat(kedaBackend(), cp, objs(deny, allow)),
			review: npReview(allow, netpolicy(kedaNS, "allow-control-plane", npAllow(ipBlock("10.0.0.0/16"), 6443, 8080))),
		},
		{
			name:   "UPDATE allowing the pod port by its name",
			state:  slices.Concat(kedaBackend(), cp, objs(deny, allow)),
			review: npReview(allow, allowAPIServer(kedaNS, "allow-control-plane", "metrics")),
		},
		{
			name:   "already blocked before: not this change's doing",
			state:  slices.Concat(kedaBackend(), cp, objs(deny)),
			review: npCreate(netpolicy(kedaNS, "deny-again")),
		},
		{
			// Offline, the files are both the write and the cluster: a CREATE
			// is judged against the view without the created policy.
			name:     "CREATE of a policy the view already holds",
			state:    slices.Concat(kedaBackend(), cp, objs(deny)),
			review:   npCreate(deny),
			want:     enforce,
			mentions: append(blockedMentions, "isolated by default-deny)"),
		},
		{
			name:   "CREATE of a policy the view already holds, next to its allow",
			state:  slices.Concat(kedaBackend(), cp, objs(deny, allow)),
			review: npCreate(deny),
		},
		{
			name:   "the backend runs hostNetwork: not policed",
			state:  slices.Concat(kedaBackend(podHostNetwork()), cp),
			review: npCreate(deny),
		},
		{
			name:     "audit mode turns Enforce into Audit",
			state:    slices.Concat(kedaBackend(), cp),
			review:   npCreate(deny),
			mode:     policies.ModeAudit,
			want:     []verdict{{blocksAPIService, policies.Audit}},
			mentions: blockedMentions,
		},
	})
}

// TestBlocksAPIServiceFinding pins the whole finding of the first incident:
// message, fix, and the evaluator's own explanation as the detail.
func TestBlocksAPIServiceFinding(t *testing.T) {
	deny := netpolicy(kedaNS, "default-deny")
	state := slices.Concat(kedaBackend(), objs(apiServerSlice(apiServerIP)))
	got := evaluateNP(t, newView(t, state...), npCreate(deny), nil, "")

	backend := netpol.NewPod(kedaBackendPod(), namespace(kedaNS).Labels)
	explanation := netpol.Compile([]*networkingv1.NetworkPolicy{deny}).Ingress(netpol.Traffic{
		Source:      netpol.AddrEndpoint(netip.MustParseAddr(apiServerIP), ""),
		Destination: netpol.PodEndpoint(backend),
		Port:        6443, Protocol: corev1.ProtocolTCP,
	}).Explanation
	want := []policies.Finding{{
		Rule:    blocksAPIService,
		Action:  policies.Enforce,
		Object:  policies.ObjectRef{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: kedaNS, Name: "default-deny"},
		Message: "APIService " + kedaAPI + ": API server 10.0.0.1 cannot reach pod keda/" + kedaPod + " on 6443/TCP (isolated by default-deny)",
		Fix:     "allow it: ingress: [{from: [{ipBlock: {cidr: 10.0.0.1/32}}], ports: [{port: 6443, protocol: TCP}]}]",
		Detail:  explanation + "; control-plane sources: API servers and control-plane nodes",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if wantDetail := "ingress from 10.0.0.1 to keda/" + kedaPod + " on 6443/TCP denied: isolated by keda/default-deny, and no ingress rule allows it"; explanation != wantDetail {
		t.Errorf("explanation = %q, want %q", explanation, wantDetail)
	}
}

// TestFixIsAnAllow applies each suggested fix, as the rule it spells out, next
// to the policy that was refused: the write must then pass.
func TestFixIsAnAllow(t *testing.T) {
	deny := netpolicy(kedaNS, "default-deny")
	tests := []struct {
		name  string
		state []runtime.Object
		cidrs []string
	}{
		{name: "API server", state: objs(apiServerSlice(apiServerIP))},
		{name: "control-plane node", state: objs(controlPlaneNode("cp-1", "192.168.0.10"))},
		{name: "hostNetwork konnectivity agent", state: objs(konnectivityAgent("konnectivity-agent-h", "192.168.0.20", podHostNetwork()))},
		{name: "pod-network konnectivity agent", state: objs(konnectivityAgent("konnectivity-agent-p", "10.244.0.5"))},
		{name: "configured CIDR", cidrs: []string{"172.16.0.0/28"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state := slices.Concat(kedaBackend(), tc.state)
			got := ruleFindings(evaluateNP(t, newView(t, state...), npCreate(deny), tc.cidrs, ""), blocksAPIService)
			if len(got) != 1 {
				t.Fatalf("findings of %s: %v, want one", blocksAPIService, got)
			}
			rule, ok := strings.CutPrefix(got[0].Fix, "allow it: ")
			if !ok {
				t.Fatalf("fix %q does not start with \"allow it: \"", got[0].Fix)
			}
			var spec networkingv1.NetworkPolicySpec
			if err := yaml.UnmarshalStrict([]byte("{"+rule+"}"), &spec); err != nil {
				t.Fatalf("fix %q is not an ingress rule: %v", rule, err)
			}
			fix := netpolicy(kedaNS, "allow-control-plane", func(np *networkingv1.NetworkPolicy) { np.Spec.Ingress = spec.Ingress })
			if got := evaluateNP(t, newView(t, append(state, fix)...), npCreate(deny), tc.cidrs, ""); len(got) != 0 {
				t.Errorf("with the fix %q applied, findings: %v", rule, got)
			}
		})
	}
}

// TestUnrelatedNamespaceIsCheap: a policy where no protected backend runs
// finds nothing and resolves no backend and no control-plane source.
func TestUnrelatedNamespaceIsCheap(t *testing.T) {
	v := &countingView{
		Static: newView(t, slices.Concat(kedaBackend(), metricsServerBackend(), guardWebhookBackend(),
			objs(apiServerSlice(apiServerIP), konnectivityAgent("konnectivity-agent-p", "10.244.0.5")))...),
		calls: map[string]int{},
	}
	got := evaluateNP(t, v, npCreate(netpolicy("shop", "default-deny")), nil, "")
	if len(got) != 0 {
		t.Errorf("findings: %v, want none", got)
	}
	if len(v.calls) != 0 {
		t.Errorf("look-ups for a namespace without backends: %v, want none", v.calls)
	}
}

// ---- networkpolicy-blocks-konnectivity ----

func TestBlocksKonnectivity(t *testing.T) {
	agents := objs(konnectivityAgent("konnectivity-agent-p", "10.244.0.5"))
	denyEgress := netpolicy("kube-system", "deny-egress", npEgress())
	allowEgress := netpolicy("kube-system", "allow-egress-6443", npEgress(), npAllowEgressTo(6443))
	runNPCases(t, []npCase{
		{
			name:   "egress default-deny in kube-system",
			state:  slices.Concat(kedaBackend(), agents),
			review: npCreate(denyEgress),
			want:   []verdict{{blocksKonnectivity, policies.Warn}},
			mentions: []string{"APIService " + kedaAPI, "konnectivity-agent pod kube-system/konnectivity-agent-p",
				"pod keda/" + kedaPod, "6443/TCP", "isolated by kube-system/deny-egress", "allow egress from the agents"},
			detail: []string{"egress from kube-system/konnectivity-agent-p to keda/" + kedaPod + " on 6443/TCP denied"},
		},
		{
			name:   "egress default-deny after an egress allow to the backend port",
			state:  slices.Concat(kedaBackend(), agents, objs(allowEgress)),
			review: npCreate(denyEgress),
		},
		{
			name:   "egress policy allowing the backend port",
			state:  slices.Concat(kedaBackend(), agents),
			review: npCreate(allowEgress),
		},
		{
			name:     "egress policy allowing the Service port only",
			state:    slices.Concat(kedaBackend(), agents),
			review:   npCreate(netpolicy("kube-system", "allow-egress-443", npEgress(), npAllowEgressTo(443))),
			want:     []verdict{{blocksKonnectivity, policies.Warn}},
			mentions: []string{"6443/TCP", "kube-system/allow-egress-443"},
		},
		{
			name:   "egress default-deny selecting other pods",
			state:  slices.Concat(kedaBackend(), agents),
			review: npCreate(netpolicy("kube-system", "deny-dns-egress", npEgress(), npSelect(map[string]string{"k8s-app": "kube-dns"}))),
		},
		{
			name:   "hostNetwork agents are not policed",
			state:  slices.Concat(kedaBackend(), objs(konnectivityAgent("konnectivity-agent-h", "192.168.0.20", podHostNetwork()))),
			review: npCreate(denyEgress),
		},
		{
			name:   "egress default-deny outside kube-system",
			state:  slices.Concat(kedaBackend(), agents),
			review: npCreate(netpolicy(kedaNS, "deny-egress", npEgress())),
		},
		{
			name:     "DELETE of the egress allow while the deny remains",
			state:    slices.Concat(kedaBackend(), agents, objs(denyEgress, allowEgress)),
			review:   npDelete(allowEgress),
			want:     []verdict{{blocksKonnectivity, policies.Warn}},
			mentions: []string{"konnectivity-agent pod kube-system/konnectivity-agent-p", "isolated by kube-system/deny-egress"},
		},
		{
			// The agents reach metrics-server in their own namespace: a
			// default-deny both ways cuts them and the API server off.
			name:  "default-deny both ways in kube-system next to metrics-server",
			state: slices.Concat(metricsServerBackend(), agents, objs(apiServerSlice(apiServerIP))),
			review: npCreate(netpolicy("kube-system", "default-deny", func(np *networkingv1.NetworkPolicy) {
				np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
			})),
			want:     []verdict{{blocksAPIService, policies.Enforce}, {blocksKonnectivity, policies.Warn}},
			mentions: []string{"APIService " + msAPI, "pod kube-system/" + msPod, "10250/TCP", "isolated by default-deny"},
		},
	})
}
