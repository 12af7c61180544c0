package policies

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// sourceRow is what a test asserts about a source.
type sourceRow struct {
	What, Peer, Node string
	// Addr is the source's address, "" for a pod-network agent.
	Addr string
}

func rows(srcs []source) []sourceRow {
	var out []sourceRow
	for _, s := range srcs {
		r := sourceRow{What: s.what, Peer: s.peer, Node: s.endpoint.Node}
		if s.endpoint.IP.IsValid() {
			r.Addr = s.endpoint.IP.String()
		}
		out = append(out, r)
	}
	return out
}

func staticView(t *testing.T, objs ...runtime.Object) *cluster.Static {
	t.Helper()
	v, err := cluster.NewStatic(objs...)
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	return v
}

func kubernetesSlice(addrs ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return s
}

func testNode(name, ip string, controlPlane bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if controlPlane {
		n.Labels = map[string]string{controlPlaneNodeLabel: ""}
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	return n
}

func agentPod(name, ip, node string, hostNetwork bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name, Labels: map[string]string{"k8s-app": "konnectivity-agent"}},
		Spec:       corev1.PodSpec{NodeName: node, HostNetwork: hostNetwork},
		Status:     corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// cidrRows are the sources of a configured CIDR at addrs.
func cidrRows(p string, addrs ...string) []sourceRow {
	var out []sourceRow
	for _, a := range addrs {
		out = append(out, sourceRow{What: fmt.Sprintf("control-plane CIDR %s (%s)", p, a), Peer: "{ipBlock: {cidr: " + p + "}}", Addr: a})
	}
	return out
}

// agentsFix is the peer admitting the default konnectivity agents.
const agentsFix = "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: konnectivity-agent}}}"

// seq is base.0 .. base.(n-1) of an IPv4 /24.
func seq(base string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s.%d", base, i))
	}
	return out
}

func TestControlPlaneSourcesList(t *testing.T) {
	tests := []struct {
		name  string
		objs  []runtime.Object
		cidrs []string
		cp    ControlPlane // CIDRs from cidrs
		model sourceModel  // default modelDirect, or modelConfigured with cidrs
		want  []sourceRow
	}{
		{name: "nothing known"},
		{
			name: "worker nodes and other pods are no sources",
			objs: []runtime.Object{testNode("node-1", "192.168.0.31", false),
				&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns", Labels: map[string]string{"k8s-app": "kube-dns"}}}},
		},
		{
			name: "API servers, in slice order",
			objs: []runtime.Object{kubernetesSlice("10.0.0.2", "10.0.0.1", "not-an-ip")},
			want: []sourceRow{
				{What: "API server 10.0.0.2", Peer: "{ipBlock: {cidr: 10.0.0.2/32}}", Addr: "10.0.0.2"},
				{What: "API server 10.0.0.1", Peer: "{ipBlock: {cidr: 10.0.0.1/32}}", Addr: "10.0.0.1"},
			},
		},
		{
			name: "the same address from the slice and a node: listed once, as the API server on its node",
			objs: []runtime.Object{testNode("cp-1", "192.168.0.10", true), kubernetesSlice("192.168.0.10")},
			want: []sourceRow{{What: "API server 192.168.0.10", Peer: "{ipBlock: {cidr: 192.168.0.10/32}}", Node: "cp-1", Addr: "192.168.0.10"}},
		},
		{
			name: "API servers, then control-plane nodes",
			objs: []runtime.Object{
				testNode("cp-1", "192.168.0.10", true),
				testNode("node-2", "192.168.0.20", false),
				kubernetesSlice("10.0.0.1"),
			},
			want: []sourceRow{
				{What: "API server 10.0.0.1", Peer: "{ipBlock: {cidr: 10.0.0.1/32}}", Addr: "10.0.0.1"},
				{What: "control-plane node cp-1", Peer: "{ipBlock: {cidr: 192.168.0.10/32}}", Node: "cp-1", Addr: "192.168.0.10"},
			},
		},
		{
			name: "where konnectivity agents run, they are the sources and the API servers are not",
			objs: []runtime.Object{
				agentPod("konnectivity-agent-p", "10.244.0.5", "node-2", false),
				agentPod("konnectivity-agent-h", "192.168.0.20", "node-2", true),
				agentPod("konnectivity-agent-n", "", "node-3", true),
				testNode("cp-1", "192.168.0.10", true),
				testNode("node-2", "192.168.0.20", false),
				testNode("node-3", "192.168.0.30", false),
				kubernetesSlice("10.0.0.1"),
			},
			model: modelKonnectivity,
			want: []sourceRow{
				{What: "konnectivity-agent pod kube-system/konnectivity-agent-p", Peer: agentsFix},
				{What: "konnectivity-agent konnectivity-agent-h (hostNetwork)", Peer: "{ipBlock: {cidr: 192.168.0.20/32}}", Node: "node-2", Addr: "192.168.0.20"},
				{What: "konnectivity-agent konnectivity-agent-n (hostNetwork)", Peer: "{ipBlock: {cidr: 192.168.0.30/32}}", Node: "node-3", Addr: "192.168.0.30"},
			},
		},
		{
			name: "a configured agent selector and namespace",
			objs: []runtime.Object{
				agentPod("konnectivity-agent-p", "10.244.0.5", "node-2", false),
				&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "konnectivity", Name: "agent-1", Labels: map[string]string{"app": "agent"}},
					Status: corev1.PodStatus{PodIP: "10.244.0.9"}},
				kubernetesSlice("10.0.0.1"),
			},
			cp:    ControlPlane{KonnectivityAgentSelector: map[string]string{"app": "agent"}, KonnectivityAgentNamespace: "konnectivity"},
			model: modelKonnectivity,
			want: []sourceRow{{What: "konnectivity-agent pod konnectivity/agent-1",
				Peer: "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: konnectivity}}, podSelector: {matchLabels: {app: agent}}}"}},
		},
		{
			name: "configured CIDRs replace everything autodetected",
			objs: []runtime.Object{
				agentPod("konnectivity-agent-p", "10.244.0.5", "node-2", false),
				testNode("cp-1", "192.168.0.10", true),
				kubernetesSlice("10.0.0.1"),
			},
			cidrs: []string{"172.16.0.0/32"},
			want:  cidrRows("172.16.0.0/32", "172.16.0.0"),
		},
		{name: "a /28 is its 16 addresses", cidrs: []string{"172.16.0.0/28"}, want: cidrRows("172.16.0.0/28", seq("172.16.0", 16)...)},
		{name: "a /24 is its 256 addresses", cidrs: []string{"10.9.8.0/24"}, want: cidrRows("10.9.8.0/24", seq("10.9.8", 256)...)},
		{name: "a /23 is checked at both ends", cidrs: []string{"10.9.8.0/23"}, want: cidrRows("10.9.8.0/23", "10.9.8.0", "10.9.9.255")},
		{name: "a /16 is checked at both ends", cidrs: []string{"10.1.0.0/16"}, want: cidrRows("10.1.0.0/16", "10.1.0.0", "10.1.255.255")},
		{name: "an IPv6 /126", cidrs: []string{"fd00::/126"}, want: cidrRows("fd00::/126", "fd00::", "fd00::1", "fd00::2", "fd00::3")},
		{name: "an IPv6 /64 at both ends", cidrs: []string{"fd00::/64"}, want: cidrRows("fd00::/64", "fd00::", "fd00::ffff:ffff:ffff:ffff")},
		{
			name:  "overlapping CIDRs: each address once",
			cidrs: []string{"172.16.0.0/31", "172.16.0.0/30"},
			want:  append(cidrRows("172.16.0.0/31", "172.16.0.0", "172.16.0.1"), cidrRows("172.16.0.0/30", "172.16.0.2", "172.16.0.3")...),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Review{evaluation: &evaluation{controlPlane: tc.cp}}
			for _, c := range tc.cidrs {
				r.controlPlane.CIDRs = append(r.controlPlane.CIDRs, netip.MustParsePrefix(c))
			}
			srcs := controlPlaneSources(t.Context(), r, staticView(t, tc.objs...))
			if diff := cmp.Diff(tc.want, rows(srcs.list)); diff != "" {
				t.Errorf("controlPlaneSources (-want +got):\n%s", diff)
			}
			want := tc.model
			if want == "" {
				want = modelDirect
				if len(tc.cidrs) > 0 {
					want = modelConfigured
				}
			}
			if srcs.model != want {
				t.Errorf("model = %q, want %q", srcs.model, want)
			}
		})
	}
}

func TestLastAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.1.0.0/16", "10.1.255.255"},
		{"10.0.0.7/32", "10.0.0.7"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"172.16.0.0/12", "172.31.255.255"},
		{"fd00::/64", "fd00::ffff:ffff:ffff:ffff"},
		{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tc := range tests {
		if got := lastAddr(netip.MustParsePrefix(tc.in)).String(); got != tc.want {
			t.Errorf("lastAddr(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
