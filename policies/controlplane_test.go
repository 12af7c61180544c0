package policies_test

import (
	"slices"
	"testing"

	"apiservice-guard.io/apiservice-guard/policies"
)

// TestControlPlaneSources runs a default-deny in the KEDA namespace against
// each kind of control-plane source: who is named, and what the fix opens.
func TestControlPlaneSources(t *testing.T) {
	deny := npCreate(netpolicy(kedaNS, "default-deny"))
	enforce := []verdict{{blocksAPIService, policies.Enforce}}
	cidr := func(name string, peer string, except ...string) *policies.Review {
		return npCreate(netpolicy(kedaNS, name, npAllow(ipBlock(peer, except...), 6443)))
	}
	hostAgent := konnectivityAgent("konnectivity-agent-h", "192.168.0.20", podHostNetwork())
	podAgent := konnectivityAgent("konnectivity-agent-p", "10.244.0.5")
	agentsFix := "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: konnectivity-agent}}}"
	runNPCases(t, []npCase{
		// Nothing known: say so rather than guess, without denying.
		{
			name:     "no source known",
			state:    kedaBackend(),
			review:   deny,
			want:     []verdict{{blocksAPIService, policies.Warn}},
			mentions: []string{"cannot verify that the control plane reaches APIService " + kedaAPI, "--control-plane-cidr", "isolated by default-deny"},
		},
		{
			name:     "worker nodes are no source",
			state:    slices.Concat(kedaBackend(), objs(nodeWithIP("node-1", "192.168.0.31", nil))),
			review:   deny,
			want:     []verdict{{blocksAPIService, policies.Warn}},
			mentions: []string{"cannot verify"},
		},
		{
			name:   "no source known, in a namespace without backends",
			state:  kedaBackend(),
			review: npCreate(netpolicy("shop", "default-deny")),
		},
		// Configured CIDRs: every address of a small one.
		{name: "CIDR allowed whole", state: kedaBackend(), cidrs: []string{"172.16.0.0/28"}, review: cidr("allow-cp", "172.16.0.0/28")},
		{name: "CIDR allowed by a wider block", state: kedaBackend(), cidrs: []string{"172.16.0.0/28"}, review: cidr("allow-cp", "172.16.0.0/12")},
		{
			name: "CIDR allowed half", state: kedaBackend(), cidrs: []string{"172.16.0.0/28"}, review: cidr("allow-cp", "172.16.0.0/29"),
			want:     enforce,
			mentions: []string{"control-plane CIDR 172.16.0.0/28 (172.16.0.8) cannot reach pod keda/" + kedaPod, "ipBlock: {cidr: 172.16.0.0/28}", "port: 6443"},
		},
		{
			name: "CIDR allowed but its last address", state: kedaBackend(), cidrs: []string{"172.16.0.0/28"},
			review:   cidr("allow-cp", "172.16.0.0/28", "172.16.0.15/32"),
			want:     enforce,
			mentions: []string{"(172.16.0.15)"},
		},
		{
			name: "CIDR denied", state: kedaBackend(), cidrs: []string{"172.16.0.0/28"}, review: deny,
			want: enforce, mentions: []string{"(172.16.0.0)", "ipBlock: {cidr: 172.16.0.0/28}"},
		},
		// A large CIDR: checked at both ends.
		{name: "/16 allowed whole", state: kedaBackend(), cidrs: []string{"10.1.0.0/16"}, review: cidr("allow-cp", "10.1.0.0/16")},
		{
			name: "/16 allowed lower half", state: kedaBackend(), cidrs: []string{"10.1.0.0/16"}, review: cidr("allow-cp", "10.1.0.0/17"),
			want: enforce, mentions: []string{"control-plane CIDR 10.1.0.0/16 (10.1.255.255)"},
		},
		{
			name: "/16 allowed upper half", state: kedaBackend(), cidrs: []string{"10.1.0.0/16"}, review: cidr("allow-cp", "10.1.128.0/17"),
			want: enforce, mentions: []string{"control-plane CIDR 10.1.0.0/16 (10.1.0.0)"},
		},
		// Control-plane nodes, and the own-node exemption.
		{
			name:     "control-plane node",
			state:    slices.Concat(kedaBackend(), objs(controlPlaneNode("cp-1", "192.168.0.10"))),
			review:   deny,
			want:     enforce,
			mentions: []string{"control-plane node cp-1 cannot reach", "ipBlock: {cidr: 192.168.0.10/32}"},
			detail:   []string{"ingress from 192.168.0.10 (node cp-1) to keda/" + kedaPod},
		},
		{
			name:   "control-plane node running the backend",
			state:  slices.Concat(kedaBackend(podNode("cp-1")), objs(controlPlaneNode("cp-1", "192.168.0.10"))),
			review: deny,
		},
		{
			name:   "API server on the backend's node",
			state:  slices.Concat(kedaBackend(podNode("cp-1")), objs(controlPlaneNode("cp-1", "192.168.0.10"), apiServerSlice("192.168.0.10"))),
			review: deny,
		},
		{
			name:     "API server on a control-plane node, backend elsewhere: named once, as the API server",
			state:    slices.Concat(kedaBackend(), objs(controlPlaneNode("cp-1", "192.168.0.10"), apiServerSlice("192.168.0.10"))),
			review:   deny,
			want:     enforce,
			mentions: []string{"API server 192.168.0.10 cannot reach"},
			detail:   []string{"ingress from 192.168.0.10 (node cp-1)"},
		},
		{
			name:     "API server off the backend's node, control-plane node on it",
			state:    slices.Concat(kedaBackend(podNode("cp-1")), objs(controlPlaneNode("cp-1", "192.168.0.10"), apiServerSlice(apiServerIP))),
			review:   deny,
			want:     enforce,
			mentions: []string{"API server 10.0.0.1 cannot reach"},
		},
		// konnectivity agents: hostNetwork ones are their node's address.
		{
			name:     "hostNetwork agent",
			state:    slices.Concat(kedaBackend(), objs(hostAgent)),
			review:   deny,
			want:     enforce,
			mentions: []string{"konnectivity-agent konnectivity-agent-h (hostNetwork) cannot reach", "ipBlock: {cidr: 192.168.0.20/32}"},
		},
		{
			name:     "hostNetwork agent and a selector allow",
			state:    slices.Concat(kedaBackend(), objs(hostAgent)),
			review:   npCreate(netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443))),
			want:     enforce,
			mentions: []string{"konnectivity-agent konnectivity-agent-h (hostNetwork)", "isolated by allow-agents"},
		},
		{
			name:   "hostNetwork agent and an ipBlock allow",
			state:  slices.Concat(kedaBackend(), objs(hostAgent)),
			review: cidr("allow-agents", "192.168.0.0/24"),
		},
		{
			name:   "hostNetwork agent on the backend's node",
			state:  slices.Concat(kedaBackend(podNode("node-2")), objs(hostAgent)),
			review: deny,
		},
		// Pod-network agents are pods: selectors match them.
		{
			name:     "pod-network agent",
			state:    slices.Concat(kedaBackend(), objs(podAgent)),
			review:   deny,
			want:     enforce,
			mentions: []string{"konnectivity-agent pod kube-system/konnectivity-agent-p cannot reach", "from: [" + agentsFix + "]", "port: 6443"},
			detail:   []string{"ingress from kube-system/konnectivity-agent-p to keda/" + kedaPod},
		},
		{
			name:   "pod-network agent and a selector allow",
			state:  slices.Concat(kedaBackend(), objs(podAgent)),
			review: npCreate(netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443))),
		},
		{
			// The API server reaches pods through the agents: its own
			// address is no source where agents run.
			name:   "pod-network agent allowed, API server not",
			state:  slices.Concat(kedaBackend(), objs(podAgent, apiServerSlice(apiServerIP))),
			review: npCreate(netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443))),
		},
		{
			name:     "API server allowed, pod-network agent not",
			state:    slices.Concat(kedaBackend(), objs(podAgent, apiServerSlice(apiServerIP))),
			review:   npCreate(allowAPIServer(kedaNS, "allow-api-server", 6443)),
			want:     enforce,
			mentions: []string{"konnectivity-agent pod kube-system/konnectivity-agent-p cannot reach", "isolated by allow-api-server"},
			detail:   []string{"control-plane sources: konnectivity agents"},
		},
		{
			name:     "configured CIDRs replace the agents",
			state:    slices.Concat(kedaBackend(), objs(podAgent, apiServerSlice(apiServerIP))),
			cidrs:    []string{"172.16.0.0/28"},
			review:   npCreate(netpolicy(kedaNS, "allow-agents", npAllow(agentsPeer(), 6443))),
			want:     enforce,
			mentions: []string{"control-plane CIDR 172.16.0.0/28 (172.16.0.0) cannot reach"},
			detail:   []string{"control-plane sources: configured CIDRs"},
		},
		{
			name:   "pod-network agent and the backend on the same node: no exemption for pods",
			state:  slices.Concat(kedaBackend(podNode("node-2")), objs(podAgent)),
			review: deny,
			want:   enforce,
		},
	})
}
