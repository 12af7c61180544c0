package bench

import (
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// scaleCiliumPolicies is how many Cilium policies the generated cluster
// holds: scaleCiliumClusterwide CiliumClusterwideNetworkPolicies, the rest
// CiliumNetworkPolicies, scaleCiliumBig of them in backend namespace 0.
const (
	scaleCiliumPolicies    = 1000
	scaleCiliumClusterwide = 50
	scaleCiliumBig         = 50
)

// ciliumPolicies are the generated Cilium policies: in app namespaces,
// rules selecting app pods by labels with peers by endpoint labels,
// entities and CIDRs, on numbered, ranged and named ports, with denies and
// egress; in backend namespace 0, rules selecting the adapters that admit
// only Prometheus on their metrics port (the NetworkPolicy allow-apiserver
// stays what admits the API server, in Cilium's union); clusterwide ones
// selecting web and api pods. None admits or denies the API server to an
// adapter, so the timed writes stay allowed and the DELETE of
// allow-apiserver stays refused, but every one is evaluated where it
// selects.
func ciliumPolicies(names scaleNames) []client.Object {
	out := make([]client.Object, 0, scaleCiliumPolicies)
	ports := func(i int) []netpol.CiliumPortRule {
		pp := []netpol.CiliumPortProtocol{{Port: "8080", Protocol: "TCP"}, {Port: "9000", EndPort: 9100}, {Port: "metrics"}}[i%3]
		return []netpol.CiliumPortRule{{Ports: []netpol.CiliumPortProtocol{pp}}}
	}
	team := func(i int) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"k8s:io.cilium.k8s.namespace.labels.team": "team-" + strconv.Itoa(i%40)}}
	}
	for i := range scaleCiliumPolicies - scaleCiliumClusterwide {
		ns := names.app(i % (scaleNamespaces - scaleBackends))
		rule := netpol.CiliumRule{
			EndpointSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "svc-" + strconv.Itoa(i%8)}},
			Ingress: []netpol.CiliumIngressRule{
				{FromEndpoints: []metav1.LabelSelector{team(i), {MatchLabels: map[string]string{"tier": "web"}}}, ToPorts: ports(i)},
				{FromEntities: []string{"cluster"}, ToPorts: ports(i + 1)},
				{FromCIDRSet: []netpol.CiliumCIDRRule{{CIDR: "10.0.0.0/8", Except: []string{"10." + strconv.Itoa(i%256) + ".0.0/16"}}}},
			},
		}
		if i%4 == 0 {
			rule.IngressDeny = []netpol.CiliumIngressRule{{FromCIDR: []string{"203.0.113.0/24"}, ToPorts: ports(i)}}
		}
		if i%3 == 0 {
			rule.Egress = []netpol.CiliumEgressRule{{ToEntities: []string{"kube-apiserver", "cluster"}}, {ToCIDR: []string{"0.0.0.0/0"}, ToPorts: ports(i)}}
		}
		if i < scaleCiliumBig {
			ns = names.backend(0)
			rule.EndpointSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "adapter"}}
			rule.Ingress = []netpol.CiliumIngressRule{{FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{
				"k8s:io.kubernetes.pod.namespace": "monitoring", "app.kubernetes.io/name": "prometheus"}}},
				ToPorts: []netpol.CiliumPortRule{{Ports: []netpol.CiliumPortProtocol{{Port: strconv.Itoa(9022 + i%2), Protocol: "TCP"}}}}}}
			rule.IngressDeny = nil
		}
		out = append(out, &cluster.CiliumNetworkPolicy{CiliumPolicy: netpol.CiliumPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("s%d-cnp-%04d", names.run, i)}, Spec: &rule}})
	}
	for i := range scaleCiliumClusterwide {
		rule := netpol.CiliumRule{
			EndpointSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}},
			Ingress: []netpol.CiliumIngressRule{{FromEntities: []string{"cluster"}}, {FromEndpoints: []metav1.LabelSelector{team(i)}, ToPorts: ports(i)}},
		}
		if i%5 == 0 {
			rule.IngressDeny = []netpol.CiliumIngressRule{{FromEntities: []string{"world"}, ToPorts: []netpol.CiliumPortRule{{Ports: []netpol.CiliumPortProtocol{{Port: "22"}}}}}}
		}
		out = append(out, &cluster.CiliumClusterwideNetworkPolicy{CiliumPolicy: netpol.CiliumPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d-ccnp-%03d", names.run, i)}, Spec: &rule}})
	}
	return out
}
