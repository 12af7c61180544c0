package netpol_test

import (
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnp "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// The network-policy-api project's conformance suite runs pods of four
// "houses" (namespaces network-policy-conformance-<house>, namespace and
// pods labelled conformance-house: <house>; servers on 80 and 8080/TCP) and
// says, for a few policy sets and their edits, which connections succeed.
// Here those expectations, taken as facts, are rewritten as our own cases
// and checked against our evaluator: an independent reading of the API.

func house(name, pod, ip string) *netpol.Pod {
	labels := map[string]string{"conformance-house": name}
	return &netpol.Pod{Namespace: "network-policy-conformance-" + name, Name: pod, NamespaceLabels: labels, Labels: labels,
		IPs: []netip.Addr{netip.MustParseAddr(ip)}}
}

var (
	harry = house("gryffindor", "harry-potter-0", "10.244.1.10")
	draco = house("slytherin", "draco-malfoy-0", "10.244.2.10")
)

// housePods is a peer or subject of house's pods in house's namespace.
func housePods(h string) *cnp.NamespacedPod {
	l := map[string]string{"conformance-house": h}
	return &cnp.NamespacedPod{NamespaceSelector: metav1.LabelSelector{MatchLabels: l}, PodSelector: metav1.LabelSelector{MatchLabels: l}}
}

func houseNamespaces(h string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"conformance-house": h}}
}

// gress builds a policy of tier/priority on subject with one ingress rule
// from peer and one egress rule to it, both of action.
func gress(name string, tier cnp.Tier, priority int32, subject cnp.ClusterNetworkPolicySubject, action cnp.ClusterNetworkPolicyRuleAction,
	from cnp.ClusterNetworkPolicyIngressPeer, to cnp.ClusterNetworkPolicyEgressPeer) *cnp.ClusterNetworkPolicy {
	return &cnp.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: cnp.ClusterNetworkPolicySpec{
		Tier: tier, Priority: priority, Subject: subject,
		Ingress: []cnp.ClusterNetworkPolicyIngressRule{{Action: action, From: []cnp.ClusterNetworkPolicyIngressPeer{from}}},
		Egress:  []cnp.ClusterNetworkPolicyEgressRule{{Action: action, To: []cnp.ClusterNetworkPolicyEgressPeer{to}}},
	}}
}

// conformanceStep is one state of a scenario and what the suite expects.
type conformanceStep struct {
	name     string
	policies []*networkingv1.NetworkPolicy
	cluster  []*cnp.ClusterNetworkPolicy
	// slytherin to gryffindor (ingress at harry) and gryffindor to
	// slytherin (egress at harry), each on 80 and 8080.
	ingress, egress bool
}

func runConformance(t *testing.T, steps []conformanceStep) {
	t.Helper()
	for _, s := range steps {
		set := netpol.Compile(s.policies).WithCluster(s.cluster)
		for _, port := range []int32{80, 8080} {
			in := set.Reach(netpol.Traffic{Source: netpol.PodEndpoint(draco), Destination: netpol.PodEndpoint(harry), Port: port})
			if in.Allowed() != s.ingress {
				t.Errorf("%s: slytherin -> gryffindor on %d allowed=%v, the suite expects %v: %s", s.name, port, in.Allowed(), s.ingress, in.Explanation())
			}
			out := set.Reach(netpol.Traffic{Source: netpol.PodEndpoint(harry), Destination: netpol.PodEndpoint(draco), Port: port})
			if out.Allowed() != s.egress {
				t.Errorf("%s: gryffindor -> slytherin on %d allowed=%v, the suite expects %v: %s", s.name, port, out.Allowed(), s.egress, out.Explanation())
			}
		}
	}
}

// TestConformanceAdminNPBaseline: the suite's integration of the three
// layers. An Admin Deny of slytherin decides; turned into a Pass, the
// gryffindor NetworkPolicy that admits slytherin decides (allowed); that
// NetworkPolicy deleted, the Baseline Deny decides.
func TestConformanceAdminNPBaseline(t *testing.T) {
	subject := cnp.ClusterNetworkPolicySubject{Namespaces: houseNamespaces("gryffindor")}
	from := cnp.ClusterNetworkPolicyIngressPeer{Namespaces: houseNamespaces("slytherin")}
	to := cnp.ClusterNetworkPolicyEgressPeer{Namespaces: houseNamespaces("slytherin")}
	baseline := gress("default", cnp.BaselineTier, 10, subject, cnp.ClusterNetworkPolicyRuleActionDeny, from, to)
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: harry.Namespace, Name: "allow-gress-from-to-slytherin-to-gryffindor"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: houseNamespaces("slytherin")}}}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: houseNamespaces("slytherin")}}}},
		}}
	nps := []*networkingv1.NetworkPolicy{np}
	runConformance(t, []conformanceStep{
		{name: "admin Deny", policies: nps, cluster: []*cnp.ClusterNetworkPolicy{
			gress("pass-example", cnp.AdminTier, 10, subject, cnp.ClusterNetworkPolicyRuleActionDeny, from, to), baseline}},
		{name: "admin Pass, the NetworkPolicy admits", policies: nps, ingress: true, egress: true, cluster: []*cnp.ClusterNetworkPolicy{
			gress("pass-example", cnp.AdminTier, 10, subject, cnp.ClusterNetworkPolicyRuleActionPass, from, to), baseline}},
		{name: "admin Pass, no NetworkPolicy: the baseline Deny", cluster: []*cnp.ClusterNetworkPolicy{
			gress("pass-example", cnp.AdminTier, 10, subject, cnp.ClusterNetworkPolicyRuleActionPass, from, to), baseline}},
	})
}

// TestConformancePriority: the suite's priority scenario. An Admin Deny at
// 50 wins over a Pass at 60; moved to 40, the Pass wins and the Baseline
// Accept decides (allowed).
func TestConformancePriority(t *testing.T) {
	subject := cnp.ClusterNetworkPolicySubject{Pods: housePods("gryffindor")}
	from := cnp.ClusterNetworkPolicyIngressPeer{Pods: housePods("slytherin")}
	to := cnp.ClusterNetworkPolicyEgressPeer{Pods: housePods("slytherin")}
	deny50 := gress("priority-50-example", cnp.AdminTier, 50, subject, cnp.ClusterNetworkPolicyRuleActionDeny, from, to)
	accept := gress("default", cnp.BaselineTier, 10, subject, cnp.ClusterNetworkPolicyRuleActionAccept, from, to)
	runConformance(t, []conformanceStep{
		{name: "Pass at 60 after the Deny at 50", cluster: []*cnp.ClusterNetworkPolicy{
			deny50, gress("old-priority-60-new-priority-40-example", cnp.AdminTier, 60, subject, cnp.ClusterNetworkPolicyRuleActionPass, from, to), accept}},
		{name: "Pass moved to 40, before the Deny", ingress: true, egress: true, cluster: []*cnp.ClusterNetworkPolicy{
			deny50, gress("old-priority-60-new-priority-40-example", cnp.AdminTier, 40, subject, cnp.ClusterNetworkPolicyRuleActionPass, from, to), accept}},
	})
}

// TestConformanceIngressTCPRuleOrder: the suite's TCP ingress scenario, one
// Admin policy on gryffindor (selected by kubernetes.io/metadata.name) whose
// rules for each house come in an order the suite then permutes: the first
// matching rule decides, a port-limited rule matches its port only, a Pass
// with nothing after it lets the traffic through.
func TestConformanceIngressTCPRuleOrder(t *testing.T) {
	ns := func(h string) cnp.ClusterNetworkPolicyIngressPeer {
		return cnp.ClusterNetworkPolicyIngressPeer{Namespaces: &metav1.LabelSelector{
			MatchLabels: map[string]string{"kubernetes.io/metadata.name": "network-policy-conformance-" + h}}}
	}
	port80 := []cnp.ClusterNetworkPolicyProtocol{tcpPort(80)}
	type rule struct {
		house  string
		action cnp.ClusterNetworkPolicyRuleAction
		ports  []cnp.ClusterNetworkPolicyProtocol
	}
	policy := func(rules ...rule) *cnp.ClusterNetworkPolicy {
		p := &cnp.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "ingress-tcp"}, Spec: cnp.ClusterNetworkPolicySpec{
			Tier: cnp.AdminTier, Priority: 3, Subject: cnp.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": harry.Namespace}}}}}
		for _, r := range rules {
			p.Spec.Ingress = append(p.Spec.Ingress, cnp.ClusterNetworkPolicyIngressRule{Action: r.action, From: []cnp.ClusterNetworkPolicyIngressPeer{ns(r.house)}, Protocols: r.ports})
		}
		return p
	}
	luna := house("ravenclaw", "luna-lovegood-0", "10.244.3.10")
	cedric := house("hufflepuff", "cedric-diggory-0", "10.244.4.10")
	hufflepuff := []rule{{"hufflepuff", accept, port80}, {"hufflepuff", deny, nil}}
	for _, tc := range []struct {
		name         string
		rules        []rule
		client       *netpol.Pod
		on80, on8080 bool
	}{
		{"ravenclaw: Accept first", []rule{{"ravenclaw", accept, nil}, {"ravenclaw", deny, nil}, {"ravenclaw", pass, nil}}, luna, true, true},
		{"ravenclaw: Deny first", []rule{{"ravenclaw", deny, nil}, {"ravenclaw", accept, nil}, {"ravenclaw", pass, nil}}, luna, false, false},
		{"ravenclaw: Pass first", []rule{{"ravenclaw", pass, nil}, {"ravenclaw", deny, nil}, {"ravenclaw", accept, nil}}, luna, true, true},
		{"slytherin: Deny on 80 first", []rule{{"slytherin", deny, port80}, {"slytherin", pass, port80}}, draco, false, true},
		{"slytherin: Pass on 80 first", []rule{{"slytherin", pass, port80}, {"slytherin", deny, port80}}, draco, true, true},
		{"hufflepuff: Accept on 80, Deny the rest", hufflepuff, cedric, true, false},
	} {
		set := netpol.Compile(nil).WithCluster([]*cnp.ClusterNetworkPolicy{policy(tc.rules...)})
		for port, want := range map[int32]bool{80: tc.on80, 8080: tc.on8080} {
			v := set.Ingress(netpol.Traffic{Source: netpol.PodEndpoint(tc.client), Destination: netpol.PodEndpoint(harry), Port: port})
			if v.Allowed != want {
				t.Errorf("%s, port %d: allowed=%v, the suite expects %v: %s", tc.name, port, v.Allowed, want, v.Explanation)
			}
		}
	}
}
