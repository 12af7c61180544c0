package netpol_test

import (
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// ciliumPolicy builds a CiliumNetworkPolicy in ns (clusterwide when ns is
// empty) of one rule selecting sel with the given ingress and ingressDeny.
func ciliumPolicy(ns, name string, sel map[string]string, ingress, deny []netpol.CiliumIngressRule) *netpol.CiliumPolicy {
	return &netpol.CiliumPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: &netpol.CiliumRule{EndpointSelector: &metav1.LabelSelector{MatchLabels: sel}, Ingress: ingress, IngressDeny: deny}}
}

func fromEntities(e ...string) netpol.CiliumIngressRule {
	return netpol.CiliumIngressRule{FromEntities: e}
}

func onPorts(r netpol.CiliumIngressRule, ports ...netpol.CiliumPortProtocol) netpol.CiliumIngressRule {
	r.ToPorts = []netpol.CiliumPortRule{{Ports: ports}}
	return r
}

func ingress(rs ...netpol.CiliumIngressRule) []netpol.CiliumIngressRule { return rs }

// Sources as Cilium sees them, toward kedaPod on worker-1.
func apiServerOutside() netpol.Endpoint {
	return netpol.Endpoint{IP: netip.MustParseAddr("203.0.113.10"), KubeAPIServer: true}
}

func apiServerOnNode(node string) netpol.Endpoint {
	return netpol.Endpoint{IP: netip.MustParseAddr("192.168.0.10"), Node: node, KubeAPIServer: true}
}

// TestCiliumIngress: verdict tables for each construct of Cilium's model
// that decides whether the control plane reaches a backend.
func TestCiliumIngress(t *testing.T) {
	keda := map[string]string{"app": "keda"}
	agentPeer := netpol.CiliumIngressRule{FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{
		"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "konnectivity-agent"}}}}
	tests := []struct {
		name     string
		policies []*netpol.CiliumPolicy
		src      netpol.Endpoint
		port     int32
		allowed  bool
		reason   netpol.Reason
	}{
		{"no policy", nil, apiServerOutside(), 6443, true, netpol.NotIsolated},
		{"KEDA's cilium flavour (fromEntities: cluster): an API server out of the cluster is denied",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "keda-metrics", keda, ingress(fromEntities("cluster")), nil)},
			apiServerOutside(), 6443, false, netpol.CiliumDefaultDeny},
		{"fromEntities: cluster admits an API server on another node (remote-node)",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "keda-metrics", keda, ingress(fromEntities("cluster")), nil)},
			apiServerOnNode("cp-1"), 6443, true, netpol.CiliumAllowed},
		{"fromEntities: cluster admits pod-network konnectivity agents",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "keda-metrics", keda, ingress(fromEntities("cluster")), nil)},
			netpol.PodEndpoint(agentPod(false)), 6443, true, netpol.CiliumAllowed},
		{"fromEntities: kube-apiserver admits the API server out of the cluster",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(fromEntities("kube-apiserver")), nil)},
			apiServerOutside(), 6443, true, netpol.CiliumAllowed},
		{"fromEntities: kube-apiserver does not admit another outside address",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(fromEntities("kube-apiserver")), nil)},
			external(), 6443, false, netpol.CiliumDefaultDeny},
		{"fromCIDR holding the API server out of the cluster",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(netpol.CiliumIngressRule{FromCIDR: []string{"203.0.113.0/24"}}), nil)},
			apiServerOutside(), 6443, true, netpol.CiliumAllowed},
		{"fromCIDR does not match a node, not even the API server's",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(netpol.CiliumIngressRule{FromCIDR: []string{"192.168.0.0/16"}}), nil)},
			apiServerOnNode("cp-1"), 6443, false, netpol.CiliumDefaultDeny},
		{"fromCIDRSet with the API server excepted",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(netpol.CiliumIngressRule{FromCIDRSet: []netpol.CiliumCIDRRule{
				{CIDR: "203.0.113.0/24", Except: []string{"203.0.113.10/32"}}}}), nil)},
			apiServerOutside(), 6443, false, netpol.CiliumDefaultDeny},
		{"a deny wins over an allow of everything",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(fromEntities("all")), ingress(fromEntities("world")))},
			apiServerOutside(), 6443, false, netpol.CiliumDenied},
		{"a deny in another policy wins too",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "allow", keda, ingress(fromEntities("all")), nil),
				ciliumPolicy("", "deny-world", nil, nil, ingress(fromEntities("world")))},
			apiServerOutside(), 6443, false, netpol.CiliumDenied},
		{"toPorts: the port allowed",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(onPorts(fromEntities("world"), netpol.CiliumPortProtocol{Port: "6443", Protocol: "TCP"})), nil)},
			apiServerOutside(), 6443, true, netpol.CiliumAllowed},
		{"toPorts: another port only",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(onPorts(fromEntities("world"), netpol.CiliumPortProtocol{Port: "8080"})), nil)},
			apiServerOutside(), 6443, false, netpol.CiliumDefaultDeny},
		{"toPorts: a named port of the pod",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(onPorts(fromEntities("world"), netpol.CiliumPortProtocol{Port: "https"})), nil)},
			apiServerOutside(), 6443, true, netpol.CiliumAllowed},
		{"toPorts: a range",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(onPorts(fromEntities("world"), netpol.CiliumPortProtocol{Port: "6000", EndPort: 7000, Protocol: "ANY"})), nil)},
			apiServerOutside(), 6443, true, netpol.CiliumAllowed},
		{"fromEndpoints with the namespace label admits the agents",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(agentPeer), nil)},
			netpol.PodEndpoint(agentPod(false)), 6443, true, netpol.CiliumAllowed},
		{"fromEndpoints of a CiliumNetworkPolicy without the namespace label: its own namespace only",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(netpol.CiliumIngressRule{FromEndpoints: []metav1.LabelSelector{{
				MatchLabels: map[string]string{"k8s-app": "konnectivity-agent"}}}}), nil)},
			netpol.PodEndpoint(agentPod(false)), 6443, false, netpol.CiliumDefaultDeny},
		{"the same selector in a clusterwide policy: every namespace",
			[]*netpol.CiliumPolicy{ciliumPolicy("", "ccnp", keda, ingress(netpol.CiliumIngressRule{FromEndpoints: []metav1.LabelSelector{{
				MatchLabels: map[string]string{"k8s-app": "konnectivity-agent"}}}}), nil)},
			netpol.PodEndpoint(agentPod(false)), 6443, true, netpol.CiliumAllowed},
		{"fromEndpoints reserved:remote-node is the entity",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(netpol.CiliumIngressRule{FromEndpoints: []metav1.LabelSelector{{
				MatchLabels: map[string]string{"reserved:remote-node": ""}}}}), nil)},
			apiServerOnNode("cp-1"), 6443, true, netpol.CiliumAllowed},
		{"a policy of another namespace does not select the pod",
			[]*netpol.CiliumPolicy{ciliumPolicy("shop", "p", nil, ingress(fromEntities("cluster")), nil)},
			apiServerOutside(), 6443, true, netpol.NotIsolated},
		{"a clusterwide policy selecting the namespace by its label",
			[]*netpol.CiliumPolicy{ciliumPolicy("", "ccnp", map[string]string{"k8s:io.kubernetes.pod.namespace": "keda"}, ingress(fromEntities("cluster")), nil)},
			apiServerOutside(), 6443, false, netpol.CiliumDefaultDeny},
		{"the pod's own host is always let in",
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(fromEntities("world")), nil)},
			apiServerOnNode("worker-1"), 6443, true, netpol.SameNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := netpol.CompileCilium(tt.policies)
			v := set.Ingress(netpol.Traffic{Source: tt.src, Destination: netpol.PodEndpoint(kedaPod()), Port: tt.port})
			if v.Allowed != tt.allowed || v.Reason != tt.reason {
				t.Fatalf("allowed=%v reason=%s, want %v %s: %s", v.Allowed, v.Reason, tt.allowed, tt.reason, v.Explanation)
			}
			if (v.Reason == netpol.CiliumAllowed || v.Reason == netpol.CiliumDenied) && (v.DecidedBy == nil || v.Tier != netpol.TierCilium) {
				t.Errorf("a Cilium decision without its rule: %+v", v)
			}
		})
	}
}

// TestCiliumDefaultDenyOff: enableDefaultDeny.ingress false makes a rule
// add allows without denying the rest.
func TestCiliumDefaultDenyOff(t *testing.T) {
	off := false
	p := ciliumPolicy("keda", "p", map[string]string{"app": "keda"}, ingress(fromEntities("cluster")), nil)
	p.Spec.EnableDefaultDeny = &netpol.CiliumDefaultDenyConfig{Ingress: &off}
	v := netpol.CompileCilium([]*netpol.CiliumPolicy{p}).Ingress(netpol.Traffic{Source: apiServerOutside(), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443})
	if !v.Allowed || v.Reason != netpol.NotIsolated {
		t.Errorf("allowed=%v reason=%s: %s", v.Allowed, v.Reason, v.Explanation)
	}
}

// ciliumEgressPolicy builds a policy of one rule selecting sel with the
// given egress rules.
func ciliumEgressPolicy(ns, name string, sel map[string]string, egress ...netpol.CiliumEgressRule) *netpol.CiliumPolicy {
	return &netpol.CiliumPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: &netpol.CiliumRule{EndpointSelector: &metav1.LabelSelector{MatchLabels: sel}, Egress: egress}}
}

// TestCiliumEgress: a konnectivity agent's egress to the API server under
// Cilium's egress rules.
func TestCiliumEgress(t *testing.T) {
	agent := map[string]string{"k8s-app": "konnectivity-agent"}
	toEntities := func(e ...string) netpol.CiliumEgressRule { return netpol.CiliumEgressRule{ToEntities: e} }
	tests := []struct {
		name     string
		policies []*netpol.CiliumPolicy
		dst      netpol.Endpoint
		allowed  bool
		reason   netpol.Reason
	}{
		{"no policy", nil, apiServerOutside(), true, netpol.NotIsolated},
		{"toEntities: cluster does not reach an API server out of the cluster",
			[]*netpol.CiliumPolicy{ciliumEgressPolicy("kube-system", "p", agent, toEntities("cluster"))},
			apiServerOutside(), false, netpol.CiliumDefaultDeny},
		{"toEntities: kube-apiserver reaches it",
			[]*netpol.CiliumPolicy{ciliumEgressPolicy("kube-system", "p", agent, toEntities("kube-apiserver"))},
			apiServerOutside(), true, netpol.CiliumAllowed},
		{"toCIDR holding it reaches it",
			[]*netpol.CiliumPolicy{ciliumEgressPolicy("kube-system", "p", agent, netpol.CiliumEgressRule{ToCIDR: []string{"203.0.113.0/24"}})},
			apiServerOutside(), true, netpol.CiliumAllowed},
		{"toCIDR does not reach an API server on a node",
			[]*netpol.CiliumPolicy{ciliumEgressPolicy("kube-system", "p", agent, netpol.CiliumEgressRule{ToCIDR: []string{"192.168.0.0/16"}})},
			apiServerOnNode("cp-1"), false, netpol.CiliumDefaultDeny},
		{"egress to the own host is policed (no allow-localhost for egress)",
			[]*netpol.CiliumPolicy{ciliumEgressPolicy("kube-system", "p", agent, toEntities("world"))},
			apiServerOnNode("worker-1"), false, netpol.CiliumDefaultDeny},
		{"toPorts of another port only",
			[]*netpol.CiliumPolicy{ciliumEgressPolicy("kube-system", "p", agent, netpol.CiliumEgressRule{ToEntities: []string{"all"},
				ToPorts: []netpol.CiliumPortRule{{Ports: []netpol.CiliumPortProtocol{{Port: "8132"}}}}})},
			apiServerOutside(), false, netpol.CiliumDefaultDeny},
		{"an egressDeny wins",
			[]*netpol.CiliumPolicy{ciliumEgressPolicy("kube-system", "p", agent, toEntities("all")),
				{ObjectMeta: metav1.ObjectMeta{Name: "deny"}, Spec: &netpol.CiliumRule{EndpointSelector: &metav1.LabelSelector{},
					EgressDeny: []netpol.CiliumEgressRule{toEntities("kube-apiserver")}}}},
			apiServerOutside(), false, netpol.CiliumDenied},
		{"an ingress-only rule does not police egress",
			[]*netpol.CiliumPolicy{ciliumPolicy("kube-system", "p", agent, ingress(fromEntities("cluster")), nil)},
			apiServerOutside(), true, netpol.NotIsolated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := netpol.CompileCilium(tt.policies).Egress(netpol.Traffic{Source: netpol.PodEndpoint(agentPod(false)), Destination: tt.dst, Port: 6443})
			if v.Allowed != tt.allowed || v.Reason != tt.reason {
				t.Fatalf("allowed=%v reason=%s, want %v %s: %s", v.Allowed, v.Reason, tt.allowed, tt.reason, v.Explanation)
			}
		})
	}
}

// TestCiliumWithNetworkPolicies: NetworkPolicies join Cilium's union, with
// their ipBlocks matching addresses outside the cluster only.
func TestCiliumWithNetworkPolicies(t *testing.T) {
	keda := map[string]string{"app": "keda"}
	cnp := ciliumPolicy("keda", "keda-metrics", keda, ingress(fromEntities("cluster")), nil)
	tests := []struct {
		name    string
		nps     []*networkingv1.NetworkPolicy
		cilium  []*netpol.CiliumPolicy
		src     netpol.Endpoint
		allowed bool
		reason  netpol.Reason
	}{
		{"a NetworkPolicy allow joins the union: the API server's CIDR admits it out of the cluster",
			[]*networkingv1.NetworkPolicy{netpolicy("keda", "allow-cp", selecting(keda), in(nil, ipPeer("203.0.113.0/24")))},
			[]*netpol.CiliumPolicy{cnp}, apiServerOutside(), true, netpol.AllowedByRule},
		{"an ipBlock of the node network does not admit the API server on a node",
			[]*networkingv1.NetworkPolicy{netpolicy("keda", "deny", selecting(keda), in(nil, ipPeer("192.168.0.0/16")))},
			[]*netpol.CiliumPolicy{ciliumPolicy("shop", "unrelated", nil, ingress(fromEntities("cluster")), nil)},
			apiServerOnNode("cp-1"), false, netpol.CiliumDefaultDeny},
		{"a NetworkPolicy isolates under Cilium too; a Cilium allow lets the source in",
			[]*networkingv1.NetworkPolicy{netpolicy("keda", "deny-all", selecting(keda), types(networkingv1.PolicyTypeIngress))},
			[]*netpol.CiliumPolicy{ciliumPolicy("keda", "p", keda, ingress(fromEntities("kube-apiserver")), nil)},
			apiServerOutside(), true, netpol.CiliumAllowed},
		{"a NetworkPolicy deny-all with a Cilium policy elsewhere: denied",
			[]*networkingv1.NetworkPolicy{netpolicy("keda", "deny-all", selecting(keda), types(networkingv1.PolicyTypeIngress))},
			[]*netpol.CiliumPolicy{ciliumPolicy("shop", "unrelated", nil, ingress(fromEntities("cluster")), nil)},
			apiServerOutside(), false, netpol.CiliumDefaultDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := netpol.Compile(tt.nps).WithCilium(netpol.CompileCilium(tt.cilium))
			v := set.Ingress(netpol.Traffic{Source: tt.src, Destination: netpol.PodEndpoint(kedaPod()), Port: 6443})
			if v.Allowed != tt.allowed || v.Reason != tt.reason {
				t.Fatalf("allowed=%v reason=%s, want %v %s: %s", v.Allowed, v.Reason, tt.allowed, tt.reason, v.Explanation)
			}
		})
	}
	// Without Cilium policies the same ipBlock admits the node address.
	v := netpol.Compile([]*networkingv1.NetworkPolicy{netpolicy("keda", "p", selecting(keda), in(nil, ipPeer("192.168.0.0/16")))}).
		WithCilium(nil).Ingress(netpol.Traffic{Source: apiServerOnNode("cp-1"), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443})
	if !v.Allowed || v.Reason != netpol.AllowedByRule {
		t.Errorf("no Cilium policy: %s", v.Explanation)
	}
}

// TestCiliumReplace: replacing a policy gives the verdicts of compiling the
// new list; removing one, those of the list without it.
func TestCiliumReplace(t *testing.T) {
	keda := map[string]string{"app": "keda"}
	clusterOnly := ciliumPolicy("keda", "p", keda, ingress(fromEntities("cluster")), nil)
	withAPIServer := ciliumPolicy("keda", "p", keda, ingress(fromEntities("cluster", "kube-apiserver")), nil)
	sameNameClusterwide := ciliumPolicy("", "p", nil, nil, ingress(fromEntities("world")))
	tr := netpol.Traffic{Source: apiServerOutside(), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	base := netpol.CompileCilium([]*netpol.CiliumPolicy{clusterOnly})
	if v := base.Ingress(tr); v.Allowed {
		t.Fatalf("cluster only: %s", v.Explanation)
	}
	if v := base.Replace(clusterOnly, withAPIServer).Ingress(tr); !v.Allowed {
		t.Errorf("replaced with kube-apiserver admitted: %s", v.Explanation)
	}
	if v := base.Replace(clusterOnly, nil).Ingress(tr); !v.Allowed || v.Reason != netpol.NotIsolated {
		t.Errorf("removed: %s", v.Explanation)
	}
	// A clusterwide policy of the same name is another policy.
	both := base.Replace(nil, sameNameClusterwide)
	if v := both.Replace(withAPIServer, withAPIServer).Ingress(tr); v.Reason != netpol.CiliumDenied {
		t.Errorf("the clusterwide deny was taken out with the namespaced policy: %s", v.Explanation)
	}
	if v := base.Ingress(tr); v.Allowed {
		t.Errorf("Replace changed the set it was called on: %s", v.Explanation)
	}
}

// TestCiliumReplaceIssues: the replaced policy's issues go, the new one's
// come.
func TestCiliumReplaceIssues(t *testing.T) {
	bad := ciliumPolicy("keda", "p", nil, ingress(netpol.CiliumIngressRule{FromCIDR: []string{"not-a-cidr"}}), nil)
	good := ciliumPolicy("keda", "p", nil, ingress(fromEntities("cluster")), nil)
	other := ciliumPolicy("", "p", nil, ingress(netpol.CiliumIngressRule{FromCIDR: []string{"x"}}), nil)
	set := netpol.CompileCilium([]*netpol.CiliumPolicy{bad, other})
	if n := len(set.Issues()); n != 2 {
		t.Fatalf("%d issues, want 2: %v", n, set.Issues())
	}
	fixed := set.Replace(bad, good)
	if is := fixed.Issues(); len(is) != 1 || is[0].Kind != netpol.CiliumClusterwideNetworkPolicyKind {
		t.Errorf("after the fix: %v", is)
	}
	if is := fixed.Replace(good, bad).Issues(); len(is) != 2 {
		t.Errorf("broken again: %v", is)
	}
}
