package netpol_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnp "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// FuzzClusterEvaluate: NetworkPolicies and ClusterNetworkPolicies decoded
// from arbitrary bytes, valid or not, never panic, always give the same
// verdict, and verdicts are consistent with themselves and with their tiers:
// a cluster decision names its rule and tier, the Baseline tier decides only
// for a pod no NetworkPolicy isolates, and with no ClusterNetworkPolicy the
// verdict is the NetworkPolicies' alone.
func FuzzClusterEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 1, 0, 0, 1, 1, 0, 2, 1, 3, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("admin pass baseline deny 10.0.0.0/8 https"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &decoder{b: data}
		policies := d.policies()
		cluster := d.clusterPolicies()
		tr := d.traffic()
		base := netpol.Compile(policies)
		p1 := sameTwice(t, base.WithCluster(cluster), base.WithCluster(cluster), tr)
		if diff := cmp.Diff(base.Reach(tr), base.WithCluster(nil).Reach(tr)); diff != "" {
			t.Fatalf("no ClusterNetworkPolicy changes the verdict (-without +with none):\n%s", diff)
		}
		for _, v := range []netpol.Verdict{p1.Ingress, p1.Egress} {
			cluster := v.Reason == netpol.ClusterAccept || v.Reason == netpol.ClusterDeny
			ok := v.Allowed == (v.Reason != netpol.NoRuleAllows && v.Reason != netpol.ClusterDeny) &&
				cluster == (v.DecidedBy != nil) &&
				(!cluster || v.Tier == v.DecidedBy.Tier && (v.Tier == netpol.TierAdmin || v.Tier == netpol.TierBaseline)) &&
				(v.Tier != netpol.TierBaseline || !v.Isolated) &&
				(v.Tier != netpol.TierNetworkPolicy || v.Isolated) &&
				(v.PassedBy == nil || v.PassedBy.Tier == netpol.TierAdmin && v.PassedBy.Action == "Pass") &&
				v.Explanation != ""
			if !ok {
				t.Fatalf("inconsistent verdict: %+v", v)
			}
		}
	})
}

func (d *decoder) clusterPolicies() []*cnp.ClusterNetworkPolicy {
	var out []*cnp.ClusterNetworkPolicy
	for range d.intn(4) {
		if d.intn(8) == 0 {
			out = append(out, nil)
			continue
		}
		p := &cnp.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: d.str("c", "d")},
			Spec: cnp.ClusterNetworkPolicySpec{Tier: cnp.Tier(d.str("Admin", "Baseline")), Priority: int32(d.intn(4)) - 1}}
		switch d.intn(3) {
		case 0:
			p.Spec.Subject.Namespaces = d.selector()
		case 1:
			p.Spec.Subject.Pods = &cnp.NamespacedPod{NamespaceSelector: *d.selector(), PodSelector: *d.selector()}
		}
		for range d.intn(3) {
			rule := cnp.ClusterNetworkPolicyIngressRule{Action: d.action(), Protocols: d.clusterProtocols()}
			for range d.intn(3) {
				var peer cnp.ClusterNetworkPolicyIngressPeer
				flags := d.next()
				if flags&1 != 0 {
					peer.Namespaces = d.selector()
				}
				if flags&2 != 0 {
					peer.Pods = &cnp.NamespacedPod{NamespaceSelector: *d.selector(), PodSelector: *d.selector()}
				}
				rule.From = append(rule.From, peer)
			}
			p.Spec.Ingress = append(p.Spec.Ingress, rule)
		}
		for range d.intn(3) {
			rule := cnp.ClusterNetworkPolicyEgressRule{Action: d.action(), Protocols: d.clusterProtocols()}
			for range d.intn(3) {
				var peer cnp.ClusterNetworkPolicyEgressPeer
				flags := d.next()
				if flags&1 != 0 {
					peer.Namespaces = d.selector()
				}
				if flags&2 != 0 {
					peer.Networks = append(peer.Networks, cnp.CIDR(d.cidr()))
				}
				if flags&4 != 0 {
					peer.Nodes = d.selector()
				}
				if flags&8 != 0 {
					peer.DomainNames = []cnp.DomainName{"example.com"}
				}
				rule.To = append(rule.To, peer)
			}
			p.Spec.Egress = append(p.Spec.Egress, rule)
		}
		out = append(out, p)
	}
	return out
}

func (d *decoder) action() cnp.ClusterNetworkPolicyRuleAction {
	return cnp.ClusterNetworkPolicyRuleAction(d.str("Accept", "Deny", "Pass"))
}

func (d *decoder) clusterProtocols() []cnp.ClusterNetworkPolicyProtocol {
	var out []cnp.ClusterNetworkPolicyProtocol
	for range d.intn(3) {
		port := &cnp.Port{Number: d.int32()}
		if d.intn(3) == 0 {
			port = &cnp.Port{Range: &cnp.PortRange{Start: d.int32(), End: d.int32()}}
		}
		switch d.intn(5) {
		case 0:
			out = append(out, cnp.ClusterNetworkPolicyProtocol{TCP: &cnp.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}})
		case 1:
			out = append(out, cnp.ClusterNetworkPolicyProtocol{UDP: &cnp.ClusterNetworkPolicyProtocolUDP{}})
		case 2:
			out = append(out, cnp.ClusterNetworkPolicyProtocol{DestinationNamedPort: d.str("https", "dns")})
		case 3:
			out = append(out, cnp.ClusterNetworkPolicyProtocol{})
		default:
			out = append(out, cnp.ClusterNetworkPolicyProtocol{SCTP: &cnp.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}})
		}
	}
	return out
}
