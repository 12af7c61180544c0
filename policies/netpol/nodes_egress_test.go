package netpol_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// TestNodesAndHostNetwork: the own-node rule, hostNetwork sources and
// destinations, non-pod destinations.
func TestNodesAndHostNetwork(t *testing.T) {
	dst := netpol.PodEndpoint(kedaPod())
	deny := pols{netpolicy("keda", "deny", types(ing))}
	agentSel := map[string]string{"k8s-app": "konnectivity-agent"}
	bySelectors := pols{netpolicy("keda", "p", in(nil, podNSPeer(agentSel, nil)))}
	runTable(t, []tcase{
		{name: "own node always allowed", from: ownNode(), to: dst, policies: deny, want: sameNode("keda/deny")},
		{name: "another node is subject to policy", from: apiserver(), to: dst, policies: deny, want: denied("keda/deny")},
		{name: "own node, but a rule allows it: the rule is reported", from: ownNode(), to: dst,
			policies: pols{netpolicy("keda", "p", in(nil, ipPeer("192.168.0.0/24")))}, want: allowed("keda/p ingress rule 0", "keda/p")},
		{name: "pod-network pod on the same node is no node", to: dst, policies: deny,
			from: netpol.PodEndpoint(agentPod(false)), want: denied("keda/deny")},
		{name: "hostNetwork pod on the same node is the node", to: dst, policies: deny,
			from: netpol.PodEndpoint(agentPod(true)), want: sameNode("keda/deny")},
		{name: "unknown nodes are not the same node", to: netpol.PodEndpoint(&netpol.Pod{Namespace: "keda"}), policies: deny,
			from: netpol.AddrEndpoint(ip("192.168.0.21"), ""), want: denied("keda/deny")},
		{name: "Endpoint.Node overrides the pod's node", to: netpol.Endpoint{Pod: kedaPod(), Node: "cp-1"}, policies: deny,
			from: apiserver(), want: sameNode("keda/deny")},
		{name: "pod-network agent matched by selectors", to: dst, policies: bySelectors,
			from: netpol.PodEndpoint(agentPod(false)), want: allowed("keda/p ingress rule 0", "keda/p")},
		{name: "hostNetwork agent not matched by selectors", policies: bySelectors,
			from: netpol.Endpoint{Pod: agentPod(true), Node: "cp-1"}, to: dst, want: denied("keda/p")},
		{name: "hostNetwork agent matched by ipBlock of its node IP",
			policies: pols{netpolicy("keda", "p", in(nil, ipPeer("192.168.0.0/24")))},
			from:     netpol.Endpoint{Pod: agentPod(true), Node: "cp-1"}, to: dst, want: allowed("keda/p ingress rule 0", "keda/p")},
		{name: "hostNetwork destination is not policed", from: apiserver(), to: netpol.PodEndpoint(agentPod(true)),
			policies: pols{netpolicy("kube-system", "deny")}, want: notPoliced()},
		{name: "non-pod destination is not policed", from: apiserver(), to: ownNode(), policies: deny, want: notPoliced()},
	})
}

// TestEgress: the source side, used for konnectivity-agent egress.
func TestEgress(t *testing.T) {
	agent := netpol.PodEndpoint(agentPod(false))
	dst := netpol.PodEndpoint(kedaPod())
	eg := func(opts ...policyOpt) pols {
		return pols{netpolicy("kube-system", "e", append([]policyOpt{types(egr)}, opts...)...)}
	}
	ok := allowed("kube-system/e egress rule 0", "kube-system/e")
	no := denied("kube-system/e")
	runTable(t, []tcase{
		{name: "not isolated without policies", egress: true, from: agent, to: dst, want: notIsolated()},
		{name: "ingress-only policy does not isolate egress", egress: true, from: agent, to: dst,
			policies: pols{netpolicy("kube-system", "i", in(nil))}, want: notIsolated()},
		{name: "policyTypes absent with egress rules isolates egress", egress: true, from: agent, to: dst,
			policies: pols{netpolicy("kube-system", "e", out(ports(tcp(443))))}, want: denied("kube-system/e")},
		{name: "egress deny-all", egress: true, from: agent, to: dst, policies: eg(), want: no},
		{name: "egress: [{}] allows everything", egress: true, from: agent, to: dst, policies: eg(out(nil)), want: ok},
		{name: "to ipBlock of the destination pod", egress: true, from: agent, to: dst, policies: eg(out(nil, ipPeer("10.244.1.0/24"))), want: ok},
		{name: "to ipBlock uses the chosen destination IP", egress: true, from: agent, policies: eg(out(nil, ipPeer("10.244.1.0/24"))),
			to: netpol.Endpoint{Pod: kedaPod(), IP: ip("fd00:244::7")}, want: no},
		{name: "to namespaceSelector of the destination", egress: true, from: agent, to: dst,
			policies: eg(out(nil, nsPeer(map[string]string{"team": "platform"}))), want: ok},
		{name: "to pods: selector in the policy namespace only", egress: true, from: agent, to: dst,
			policies: eg(out(nil, podPeer(map[string]string{"app": "keda"}))), want: no},
		{name: "named port resolved on the destination pod", egress: true, from: agent, to: dst,
			policies: eg(out(ports(named("https", "")))), want: ok},
		{name: "named port toward a non-pod destination matches nothing", egress: true, from: agent, to: external(),
			policies: eg(out(ports(named("https", "")))), want: no},
		{name: "named port toward a hostNetwork destination matches nothing", egress: true, from: agent,
			to: netpol.PodEndpoint(&netpol.Pod{Namespace: "keda", HostNetwork: true, IPs: []netip.Addr{ip("192.168.0.21")},
				Ports: []netpol.ContainerPort{{Name: "https", Port: 6443}}}),
			policies: eg(out(ports(named("https", "")))), want: no},
		{name: "numeric port toward a non-pod destination", egress: true, from: agent, to: external(),
			policies: eg(out(ports(tcp(6443)))), want: ok},
		{name: "selectors match no hostNetwork destination", egress: true, from: agent, to: netpol.PodEndpoint(agentPod(true)),
			policies: eg(out(nil, nsPeer(nil))), want: no},
		{name: "no own-node exception for egress", egress: true, from: agent, to: ownNode(), policies: eg(), want: no},
		{name: "hostNetwork source is not policed", egress: true, from: netpol.PodEndpoint(agentPod(true)), to: dst,
			policies: eg(), want: notPoliced()},
		{name: "non-pod source is not policed", egress: true, from: apiserver(), to: dst, policies: eg(), want: notPoliced()},
		{name: "egress selector operators", egress: true, from: agent, to: dst,
			policies: pols{netpolicy("kube-system", "e", types(egr), selectingExpr("k8s-app", metav1.LabelSelectorOpExists))}, want: no},
	})
}

// TestReach combines egress at the source with ingress at the destination.
func TestReach(t *testing.T) {
	agent := netpol.PodEndpoint(agentPod(false))
	tr := netpol.Traffic{Source: agent, Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	egressDeny := netpolicy("kube-system", "deny-egress", types(egr))
	ingressAllow := netpolicy("keda", "allow", in(ports(named("https", corev1.ProtocolTCP))))
	cases := []struct {
		name     string
		policies pols
		want     bool
	}{
		{"nothing isolated", nil, true},
		{"ingress allowed, egress denied", pols{egressDeny, ingressAllow}, false},
		{"ingress denied", pols{netpolicy("keda", "deny")}, false},
		{"both allowed", pols{ingressAllow, netpolicy("kube-system", "e", types(egr), out(nil, nsPeer(nil)))}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := netpol.Evaluate(tc.policies, tr)
			if diff := cmp.Diff(tc.want, p.Allowed()); diff != "" {
				t.Errorf("Allowed (-want +got):\n%s\n%s", diff, p.Explanation())
			}
		})
	}
}

// TestNewPod: labels, node, IPs and ports (sidecar ports included) from a corev1.Pod.
func TestNewPod(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ms", Name: "metrics-server", Labels: map[string]string{"k8s-app": "metrics-server"}},
		Spec: corev1.PodSpec{
			NodeName: "n1",
			InitContainers: []corev1.Container{
				{Name: "init", Ports: []corev1.ContainerPort{{Name: "skip", ContainerPort: 1}}},
				{Name: "proxy", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 9443}}},
			},
			Containers: []corev1.Container{{Name: "ms", Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 10250, Protocol: corev1.ProtocolTCP}}}},
		},
		Status: corev1.PodStatus{PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "bogus"}, {IP: "fd00::1"}}},
	}
	want := &netpol.Pod{
		Namespace: "ms", Name: "metrics-server", NamespaceLabels: map[string]string{"team": "x"},
		Labels: map[string]string{"k8s-app": "metrics-server"}, NodeName: "n1",
		IPs:   []netip.Addr{ip("10.0.0.1"), ip("fd00::1")},
		Ports: []netpol.ContainerPort{{Name: "proxy", Port: 9443}, {Name: "https", Port: 10250, Protocol: corev1.ProtocolTCP}},
	}
	got := netpol.NewPod(pod, map[string]string{"team": "x"})
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("NewPod (-want +got):\n%s", diff)
	}
	tr := netpol.Traffic{Source: apiserver(), Destination: netpol.PodEndpoint(got), Port: 9443}
	if v := netpol.Compile(pols{netpolicy("ms", "p", in(ports(named("proxy", ""))))}).Ingress(tr); !v.Allowed {
		t.Errorf("sidecar named port not resolved: %s", v.Explanation)
	}
}
