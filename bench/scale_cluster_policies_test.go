package bench

import (
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cnp "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// scaleClusterPolicies is how many ClusterNetworkPolicies the generated
// cluster holds, half in each tier.
const scaleClusterPolicies = 100

// clusterPolicies are the generated ClusterNetworkPolicies: subjects by
// team or environment (some selecting backend namespace 0, whose writes
// the benchmark times), rules by namespace and pod labels, on numbered,
// ranged and named ports, with every action. None stops the API server,
// which is no pod (the peers here select pods only), so the timed writes
// stay allowed, but every one is evaluated where it selects.
func clusterPolicies(run int32) []client.Object {
	out := make([]client.Object, 0, scaleClusterPolicies)
	actions := []cnp.ClusterNetworkPolicyRuleAction{cnp.ClusterNetworkPolicyRuleActionAccept, cnp.ClusterNetworkPolicyRuleActionDeny, cnp.ClusterNetworkPolicyRuleActionPass}
	for i := range scaleClusterPolicies {
		tier := cnp.AdminTier
		if i%2 == 1 {
			tier = cnp.BaselineTier
		}
		subject := cnp.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "team-" + strconv.Itoa(i%40)}}}
		if i%5 == 0 {
			subject = cnp.ClusterNetworkPolicySubject{Pods: &cnp.NamespacedPod{
				NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"env": []string{"prod", "staging"}[i%2]}},
				PodSelector:       metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}}}}
		}
		var rules []cnp.ClusterNetworkPolicyIngressRule
		for k := range 4 {
			action := actions[(i+k)%3]
			if tier == cnp.BaselineTier && action == cnp.ClusterNetworkPolicyRuleActionPass {
				action = cnp.ClusterNetworkPolicyRuleActionAccept
			}
			rule := cnp.ClusterNetworkPolicyIngressRule{Name: fmt.Sprintf("r%d", k), Action: action,
				From: []cnp.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "team-" + strconv.Itoa((i+k+1)%40)}}}}}
			switch k {
			case 1:
				rule.From = []cnp.ClusterNetworkPolicyIngressPeer{{Pods: &cnp.NamespacedPod{
					NamespaceSelector: metav1.LabelSelector{}, PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "svc-" + strconv.Itoa(k)}}}}}
				rule.Protocols = []cnp.ClusterNetworkPolicyProtocol{{TCP: &cnp.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnp.Port{Number: 8080}}}}
			case 2:
				rule.Protocols = []cnp.ClusterNetworkPolicyProtocol{{TCP: &cnp.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnp.Port{Range: &cnp.PortRange{Start: 9000, End: 9100}}}}}
			case 3:
				rule.Protocols = []cnp.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "metrics"}}
			}
			rules = append(rules, rule)
		}
		out = append(out, &cnp.ClusterNetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d-cnp-%03d", run, i)},
			Spec:       cnp.ClusterNetworkPolicySpec{Tier: tier, Priority: int32(i * 7 % 1000), Subject: subject, Ingress: rules},
		})
	}
	return out
}
