package netpol_test

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	anp "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnp "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// Builders for ClusterNetworkPolicies.

type cnpOpt func(*cnp.ClusterNetworkPolicy)

// clusterPolicy builds a ClusterNetworkPolicy of tier and priority whose
// subject is every pod of every namespace; opts fill it in.
func clusterPolicy(name string, tier cnp.Tier, priority int32, opts ...cnpOpt) *cnp.ClusterNetworkPolicy {
	p := &cnp.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: cnp.ClusterNetworkPolicySpec{Tier: tier, Priority: priority,
			Subject: cnp.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// subjectNS makes the subject the pods of namespaces with labels.
func subjectNS(labels map[string]string) cnpOpt {
	return func(p *cnp.ClusterNetworkPolicy) {
		p.Spec.Subject = cnp.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: labels}}
	}
}

// subjectPods makes the subject the pods with labels in namespaces with nsLabels.
func subjectPods(nsLabels, labels map[string]string) cnpOpt {
	return func(p *cnp.ClusterNetworkPolicy) {
		p.Spec.Subject = cnp.ClusterNetworkPolicySubject{Pods: &cnp.NamespacedPod{
			NamespaceSelector: metav1.LabelSelector{MatchLabels: nsLabels}, PodSelector: metav1.LabelSelector{MatchLabels: labels}}}
	}
}

// ingressRule appends an ingress rule.
func ingressRule(name string, action cnp.ClusterNetworkPolicyRuleAction, protos []cnp.ClusterNetworkPolicyProtocol, from ...cnp.ClusterNetworkPolicyIngressPeer) cnpOpt {
	return func(p *cnp.ClusterNetworkPolicy) {
		p.Spec.Ingress = append(p.Spec.Ingress, cnp.ClusterNetworkPolicyIngressRule{Name: name, Action: action, From: from, Protocols: protos})
	}
}

// egressRule appends an egress rule.
func egressRule(name string, action cnp.ClusterNetworkPolicyRuleAction, protos []cnp.ClusterNetworkPolicyProtocol, to ...cnp.ClusterNetworkPolicyEgressPeer) cnpOpt {
	return func(p *cnp.ClusterNetworkPolicy) {
		p.Spec.Egress = append(p.Spec.Egress, cnp.ClusterNetworkPolicyEgressRule{Name: name, Action: action, To: to, Protocols: protos})
	}
}

func fromNamespaces(labels map[string]string) cnp.ClusterNetworkPolicyIngressPeer {
	return cnp.ClusterNetworkPolicyIngressPeer{Namespaces: &metav1.LabelSelector{MatchLabels: labels}}
}

func fromPods(nsLabels, labels map[string]string) cnp.ClusterNetworkPolicyIngressPeer {
	return cnp.ClusterNetworkPolicyIngressPeer{Pods: &cnp.NamespacedPod{
		NamespaceSelector: metav1.LabelSelector{MatchLabels: nsLabels}, PodSelector: metav1.LabelSelector{MatchLabels: labels}}}
}

func toNetworks(cidrs ...cnp.CIDR) cnp.ClusterNetworkPolicyEgressPeer {
	return cnp.ClusterNetworkPolicyEgressPeer{Networks: cidrs}
}

func tcpPort(n int32) cnp.ClusterNetworkPolicyProtocol {
	return cnp.ClusterNetworkPolicyProtocol{TCP: &cnp.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnp.Port{Number: n}}}
}

func tcpRange(start, end int32) cnp.ClusterNetworkPolicyProtocol {
	return cnp.ClusterNetworkPolicyProtocol{TCP: &cnp.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnp.Port{Range: &cnp.PortRange{Start: start, End: end}}}}
}

func namedPort(name string) cnp.ClusterNetworkPolicyProtocol {
	return cnp.ClusterNetworkPolicyProtocol{DestinationNamedPort: name}
}

func protos(ps ...cnp.ClusterNetworkPolicyProtocol) []cnp.ClusterNetworkPolicyProtocol { return ps }

const (
	accept = cnp.ClusterNetworkPolicyRuleActionAccept
	deny   = cnp.ClusterNetworkPolicyRuleActionDeny
	pass   = cnp.ClusterNetworkPolicyRuleActionPass
)

var everyNamespace = map[string]string{}

// TestClusterTiers: the verdict over the whole stack, Admin tier by
// priority (first matching rule: Accept, Deny, or Pass to the next layer),
// NetworkPolicies, then the Baseline tier for pods no NetworkPolicy
// isolates; and the layer and rule that decided.
func TestClusterTiers(t *testing.T) {
	fromProm := netpol.Traffic{Source: netpol.PodEndpoint(promPod()), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	fromAgent := netpol.Traffic{Source: netpol.PodEndpoint(agentPod(false)), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	fromAPIServer := netpol.Traffic{Source: apiserver(), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	allowAll := netpolicy("keda", "allow-all", in(nil))
	denyAll := netpolicy("keda", "deny-all", types(networkingv1.PolicyTypeIngress))
	kube := map[string]string{"kubernetes.io/metadata.name": "kube-system"}

	tests := []struct {
		name       string
		policies   []*networkingv1.NetworkPolicy
		cluster    []*cnp.ClusterNetworkPolicy
		traffic    netpol.Traffic
		allowed    bool
		reason     netpol.Reason
		tier       netpol.Tier
		decidedBy  string // the deciding cluster policy's name
		passedBy   string
		explaining string
	}{
		{name: "no policy at all", traffic: fromProm, allowed: true, reason: netpol.NotIsolated},
		{name: "baseline deny-all: pods of every namespace denied",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("baseline-deny", cnp.BaselineTier, 10, ingressRule("all", deny, nil, fromNamespaces(everyNamespace)))},
			traffic: fromAgent, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierBaseline, decidedBy: "baseline-deny",
			explaining: `denied by ClusterNetworkPolicy baseline-deny (Baseline tier, priority 10) ingress rule 0 "all" (Deny)`},
		{name: "baseline deny-all does not match an address that is no pod",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("baseline-deny", cnp.BaselineTier, 10, ingressRule("all", deny, nil, fromNamespaces(everyNamespace)))},
			traffic: fromAPIServer, allowed: true, reason: netpol.NotIsolated},
		{name: "baseline is not consulted for a pod a NetworkPolicy isolates",
			policies: []*networkingv1.NetworkPolicy{allowAll},
			cluster:  []*cnp.ClusterNetworkPolicy{clusterPolicy("baseline-deny", cnp.BaselineTier, 10, ingressRule("all", deny, nil, fromNamespaces(everyNamespace)))},
			traffic:  fromAgent, allowed: true, reason: netpol.AllowedByRule, tier: netpol.TierNetworkPolicy},
		{name: "baseline accept before a baseline deny of higher priority value",
			cluster: []*cnp.ClusterNetworkPolicy{
				clusterPolicy("baseline-deny", cnp.BaselineTier, 20, ingressRule("", deny, nil, fromNamespaces(everyNamespace))),
				clusterPolicy("baseline-kube", cnp.BaselineTier, 5, ingressRule("kube", accept, nil, fromNamespaces(kube))),
			},
			traffic: fromAgent, allowed: true, reason: netpol.ClusterAccept, tier: netpol.TierBaseline, decidedBy: "baseline-kube"},
		{name: "admin deny wins over a NetworkPolicy that allows",
			policies: []*networkingv1.NetworkPolicy{allowAll},
			cluster:  []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1, ingressRule("", deny, nil, fromNamespaces(everyNamespace)))},
			traffic:  fromAgent, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierAdmin, decidedBy: "admin-deny"},
		{name: "admin accept wins over a NetworkPolicy that denies",
			policies: []*networkingv1.NetworkPolicy{denyAll},
			cluster:  []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-accept", cnp.AdminTier, 1, ingressRule("", accept, nil, fromNamespaces(kube)))},
			traffic:  fromAgent, allowed: true, reason: netpol.ClusterAccept, tier: netpol.TierAdmin, decidedBy: "admin-accept"},
		{name: "admin priorities: the lower value is checked first",
			cluster: []*cnp.ClusterNetworkPolicy{
				clusterPolicy("admin-deny", cnp.AdminTier, 50, ingressRule("", deny, nil, fromNamespaces(everyNamespace))),
				clusterPolicy("admin-accept", cnp.AdminTier, 40, ingressRule("", accept, nil, fromNamespaces(kube))),
			},
			traffic: fromAgent, allowed: true, reason: netpol.ClusterAccept, tier: netpol.TierAdmin, decidedBy: "admin-accept"},
		{name: "rules of one policy in order: the first matching decides",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin", cnp.AdminTier, 1,
				ingressRule("deny-kube", deny, nil, fromNamespaces(kube)),
				ingressRule("accept-all", accept, nil, fromNamespaces(everyNamespace)))},
			traffic: fromAgent, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierAdmin, decidedBy: "admin"},
		{name: "admin pass skips the rest of the Admin tier: the NetworkPolicy decides",
			policies: []*networkingv1.NetworkPolicy{allowAll},
			cluster: []*cnp.ClusterNetworkPolicy{
				clusterPolicy("admin-pass", cnp.AdminTier, 1, ingressRule("", pass, nil, fromNamespaces(kube))),
				clusterPolicy("admin-deny", cnp.AdminTier, 2, ingressRule("", deny, nil, fromNamespaces(everyNamespace))),
			},
			traffic: fromAgent, allowed: true, reason: netpol.AllowedByRule, tier: netpol.TierNetworkPolicy, passedBy: "admin-pass",
			explaining: "passed on by ClusterNetworkPolicy admin-pass"},
		{name: "admin pass with no NetworkPolicy: the Baseline tier decides",
			cluster: []*cnp.ClusterNetworkPolicy{
				clusterPolicy("admin-pass", cnp.AdminTier, 1, ingressRule("", pass, nil, fromNamespaces(kube))),
				clusterPolicy("baseline-deny", cnp.BaselineTier, 1, ingressRule("", deny, nil, fromNamespaces(everyNamespace))),
			},
			traffic: fromAgent, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierBaseline, decidedBy: "baseline-deny", passedBy: "admin-pass"},
		{name: "a subject that does not select the pod: no effect",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1, subjectNS(map[string]string{"team": "ops"}),
				ingressRule("", deny, nil, fromNamespaces(everyNamespace)))},
			traffic: fromAgent, allowed: true, reason: netpol.NotIsolated},
		{name: "a pods subject that selects the pod",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1, subjectPods(map[string]string{"team": "platform"}, map[string]string{"app": "keda"}),
				ingressRule("", deny, nil, fromPods(kube, map[string]string{"k8s-app": "konnectivity-agent"})))},
			traffic: fromAgent, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierAdmin, decidedBy: "admin-deny"},
		{name: "pods peer with other labels: no match",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1,
				ingressRule("", deny, nil, fromPods(kube, map[string]string{"k8s-app": "coredns"})))},
			traffic: fromAgent, allowed: true, reason: netpol.NotIsolated},
		{name: "a port that the rule does not list: no match",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1,
				ingressRule("", deny, protos(tcpPort(8080)), fromNamespaces(everyNamespace)))},
			traffic: fromAgent, allowed: true, reason: netpol.NotIsolated},
		{name: "a port range that holds the port",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1,
				ingressRule("", deny, protos(tcpRange(6000, 7000)), fromNamespaces(everyNamespace)))},
			traffic: fromAgent, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierAdmin, decidedBy: "admin-deny"},
		{name: "a named port of the destination pod",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1,
				ingressRule("", deny, protos(namedPort("https")), fromNamespaces(everyNamespace)))},
			traffic: fromAgent, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierAdmin, decidedBy: "admin-deny"},
		{name: "a Deny peer that sets no field fails closed: matches everything, the API server too",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-deny", cnp.AdminTier, 1,
				ingressRule("", deny, nil, cnp.ClusterNetworkPolicyIngressPeer{}))},
			traffic: fromAPIServer, allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierAdmin, decidedBy: "admin-deny"},
		{name: "an Accept peer that sets no field fails closed: matches nothing",
			policies: []*networkingv1.NetworkPolicy{denyAll},
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-accept", cnp.AdminTier, 1,
				ingressRule("", accept, nil, cnp.ClusterNetworkPolicyIngressPeer{}))},
			traffic: fromAgent, allowed: false, reason: netpol.NoRuleAllows, tier: netpol.TierNetworkPolicy},
		{name: "a host-networked agent is no pod for a namespaces peer",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("baseline-deny", cnp.BaselineTier, 1, ingressRule("", deny, nil, fromNamespaces(everyNamespace)))},
			traffic: netpol.Traffic{Source: netpol.PodEndpoint(agentPod(true)), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443},
			allowed: true, reason: netpol.NotIsolated},
		{name: "egress: a Deny of the networks holding the destination",
			cluster: []*cnp.ClusterNetworkPolicy{clusterPolicy("admin-egress", cnp.AdminTier, 1, subjectNS(kube),
				egressRule("", deny, nil, toNetworks("10.244.0.0/16")))},
			traffic: netpol.Traffic{Source: netpol.PodEndpoint(agentPod(false)), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443},
			allowed: false, reason: netpol.ClusterDeny, tier: netpol.TierAdmin, decidedBy: "admin-egress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := netpol.Compile(tt.policies).WithCluster(tt.cluster)
			path := set.Reach(tt.traffic)
			v := path.Ingress
			if !path.Egress.Allowed {
				v = path.Egress
			}
			if v.Allowed != tt.allowed || v.Reason != tt.reason || v.Tier != tt.tier {
				t.Fatalf("allowed=%v reason=%s tier=%q, want %v %s %q: %s", v.Allowed, v.Reason, v.Tier, tt.allowed, tt.reason, tt.tier, v.Explanation)
			}
			if got := refName(v.DecidedBy); got != tt.decidedBy {
				t.Errorf("decided by %q, want %q", got, tt.decidedBy)
			}
			if got := refName(v.PassedBy); got != tt.passedBy {
				t.Errorf("passed by %q, want %q", got, tt.passedBy)
			}
			if !strings.Contains(v.Explanation, tt.explaining) {
				t.Errorf("explanation %q lacks %q", v.Explanation, tt.explaining)
			}
		})
	}
}

func refName(r *netpol.ClusterRuleRef) string {
	if r == nil {
		return ""
	}
	return r.Policy.Name
}

// TestClusterIssues: invalid content is named and decided as the API says.
func TestClusterIssues(t *testing.T) {
	set := netpol.Compile(nil).WithCluster([]*cnp.ClusterNetworkPolicy{
		clusterPolicy("bad-tier", "Middle", 1),
		clusterPolicy("bad-action", cnp.AdminTier, 1, ingressRule("", "Drop", nil, fromNamespaces(everyNamespace))),
		clusterPolicy("bad-peer", cnp.AdminTier, 2, egressRule("", accept, nil, toNetworks("10.0.0.0/33"))),
		clusterPolicy("bad-priority", cnp.BaselineTier, 1001),
	})
	var got []string
	for _, is := range set.Issues() {
		got = append(got, is.String())
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		`policy ClusterNetworkPolicy bad-tier spec.tier: unknown tier "Middle"`,
		`policy ClusterNetworkPolicy bad-action spec.ingress[0].action: unknown action "Drop"`,
		`policy ClusterNetworkPolicy bad-peer spec.egress[0].to[0].networks[0]: not a CIDR`,
		`policy ClusterNetworkPolicy bad-priority spec.priority: must be from 0 to 1000`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("issues lack %q:\n%s", want, joined)
		}
	}
}

// TestV1Alpha1MapsOntoTiers: an AdminNetworkPolicy is an Admin tier policy
// (Allow as Accept), a BaselineAdminNetworkPolicy a Baseline one after the
// Baseline ClusterNetworkPolicies; their ports map onto protocols; their
// kinds name them.
func TestV1Alpha1MapsOntoTiers(t *testing.T) {
	kube := map[string]string{"kubernetes.io/metadata.name": "kube-system"}
	udp53 := []anp.AdminNetworkPolicyPort{{PortNumber: &anp.Port{Protocol: corev1.ProtocolUDP, Port: 53}}}
	httpsRange := []anp.AdminNetworkPolicyPort{{PortRange: &anp.PortRange{Start: 6000, End: 7000}}}
	named := "https"
	namedHTTPS := []anp.AdminNetworkPolicyPort{{NamedPort: &named}}
	admin := &anp.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-kube"}, Spec: anp.AdminNetworkPolicySpec{
		Priority: 5, Subject: anp.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Ingress: []anp.AdminNetworkPolicyIngressRule{
			{Name: "dns-only", Action: anp.AdminNetworkPolicyRuleActionDeny, Ports: &udp53,
				From: []anp.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}},
			{Name: "kube", Action: anp.AdminNetworkPolicyRuleActionAllow, Ports: &httpsRange,
				From: []anp.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: kube}}}},
		}}}
	baseline := &anp.BaselineAdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: anp.BaselineAdminNetworkPolicySpec{
		Subject: anp.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Ingress: []anp.BaselineAdminNetworkPolicyIngressRule{{Action: anp.BaselineAdminNetworkPolicyRuleActionDeny, Ports: &namedHTTPS,
			From: []anp.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}}}}
	fromAgent := netpol.Traffic{Source: netpol.PodEndpoint(agentPod(false)), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	fromProm := netpol.Traffic{Source: netpol.PodEndpoint(promPod()), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}

	set := netpol.Compile(nil).WithCluster([]*cnp.ClusterNetworkPolicy{
		netpol.FromAdminNetworkPolicy(admin), netpol.FromBaselineAdminNetworkPolicy(baseline),
		clusterPolicy("baseline-accept-prom", cnp.BaselineTier, 999, ingressRule("", accept, nil, fromNamespaces(map[string]string{"team": "ops"}))),
	})
	v := set.Ingress(fromAgent)
	if !v.Allowed || v.Reason != netpol.ClusterAccept || v.DecidedBy.Kind != netpol.AdminNetworkPolicyKind ||
		!strings.Contains(v.Explanation, `AdminNetworkPolicy allow-kube (Admin tier, priority 5) ingress rule 1 "kube" (Accept)`) {
		t.Errorf("from the agent: %s", v.Explanation)
	}
	if v := set.Ingress(fromProm); !v.Allowed || refName(v.DecidedBy) != "baseline-accept-prom" {
		t.Errorf("from prometheus: the Baseline ClusterNetworkPolicy (999) before the BaselineAdminNetworkPolicy: %s", v.Explanation)
	}
	other := fromProm
	other.Source = netpol.PodEndpoint(&netpol.Pod{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, IPs: []netip.Addr{ip("10.244.3.3")}})
	if v := set.Ingress(other); v.Allowed || v.DecidedBy.Kind != netpol.BaselineAdminNetworkPolicyKind {
		t.Errorf("from another namespace: the BaselineAdminNetworkPolicy's named-port deny: %s", v.Explanation)
	}
	dns := fromAgent
	dns.Port, dns.Protocol = 53, corev1.ProtocolUDP
	if v := set.Ingress(dns); v.Allowed || refName(v.DecidedBy) != "allow-kube" {
		t.Errorf("DNS: the AdminNetworkPolicy's UDP 53 deny: %s", v.Explanation)
	}
}
