package netpol

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// Kinds of the v1alpha1 predecessors of ClusterNetworkPolicy.
const (
	AdminNetworkPolicyKind         = "AdminNetworkPolicy"
	BaselineAdminNetworkPolicyKind = "BaselineAdminNetworkPolicy"
)

// BaselineAdminNetworkPolicyPriority is the priority a
// BaselineAdminNetworkPolicy (which has none: it is a singleton) takes in
// the Baseline tier: after every Baseline ClusterNetworkPolicy.
const BaselineAdminNetworkPolicyPriority = 1000

// FromAdminNetworkPolicy maps a v1alpha1 AdminNetworkPolicy onto the Admin
// tier: its priority, subject and peers as they are, Allow as Accept, ports
// as protocols. Its Kind stays AdminNetworkPolicy, for messages.
func FromAdminNetworkPolicy(p *anpv1alpha1.AdminNetworkPolicy) *cnpv1beta1.ClusterNetworkPolicy {
	out := &cnpv1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{Kind: AdminNetworkPolicyKind},
		ObjectMeta: *p.ObjectMeta.DeepCopy(),
		Spec: cnpv1beta1.ClusterNetworkPolicySpec{Tier: cnpv1beta1.AdminTier, Priority: p.Spec.Priority,
			Subject: subjectV1Alpha1(p.Spec.Subject)},
	}
	for _, r := range p.Spec.Ingress {
		out.Spec.Ingress = append(out.Spec.Ingress, cnpv1beta1.ClusterNetworkPolicyIngressRule{Name: r.Name,
			Action: actionV1Alpha1(string(r.Action)), From: ingressPeersV1Alpha1(r.From), Protocols: portsV1Alpha1(r.Ports)})
	}
	for _, r := range p.Spec.Egress {
		rule := cnpv1beta1.ClusterNetworkPolicyEgressRule{Name: r.Name, Action: actionV1Alpha1(string(r.Action)), Protocols: portsV1Alpha1(r.Ports)}
		for _, peer := range r.To {
			rule.To = append(rule.To, egressPeerV1Alpha1(peer))
		}
		out.Spec.Egress = append(out.Spec.Egress, rule)
	}
	return out
}

// FromBaselineAdminNetworkPolicy maps a v1alpha1 BaselineAdminNetworkPolicy
// onto the Baseline tier at BaselineAdminNetworkPolicyPriority: it is read
// as the AdminNetworkPolicy of the same rules, so both map one way.
func FromBaselineAdminNetworkPolicy(p *anpv1alpha1.BaselineAdminNetworkPolicy) *cnpv1beta1.ClusterNetworkPolicy {
	anp := &anpv1alpha1.AdminNetworkPolicy{ObjectMeta: p.ObjectMeta,
		Spec: anpv1alpha1.AdminNetworkPolicySpec{Priority: BaselineAdminNetworkPolicyPriority, Subject: p.Spec.Subject}}
	for _, r := range p.Spec.Ingress {
		anp.Spec.Ingress = append(anp.Spec.Ingress, anpv1alpha1.AdminNetworkPolicyIngressRule{Name: r.Name,
			Action: anpv1alpha1.AdminNetworkPolicyRuleAction(r.Action), From: r.From, Ports: r.Ports})
	}
	for _, r := range p.Spec.Egress {
		rule := anpv1alpha1.AdminNetworkPolicyEgressRule{Name: r.Name, Action: anpv1alpha1.AdminNetworkPolicyRuleAction(r.Action), Ports: r.Ports}
		for _, peer := range r.To {
			rule.To = append(rule.To, anpv1alpha1.AdminNetworkPolicyEgressPeer{Namespaces: peer.Namespaces, Pods: peer.Pods, Nodes: peer.Nodes, Networks: peer.Networks})
		}
		anp.Spec.Egress = append(anp.Spec.Egress, rule)
	}
	out := FromAdminNetworkPolicy(anp)
	out.Kind, out.Spec.Tier = BaselineAdminNetworkPolicyKind, cnpv1beta1.BaselineTier
	return out
}

func actionV1Alpha1(a string) cnpv1beta1.ClusterNetworkPolicyRuleAction {
	if a == string(anpv1alpha1.AdminNetworkPolicyRuleActionAllow) {
		return cnpv1beta1.ClusterNetworkPolicyRuleActionAccept
	}
	return cnpv1beta1.ClusterNetworkPolicyRuleAction(a) // Deny, Pass; anything else is reported as unknown
}

func namespacedPodV1Alpha1(p *anpv1alpha1.NamespacedPod) *cnpv1beta1.NamespacedPod {
	if p == nil {
		return nil
	}
	return &cnpv1beta1.NamespacedPod{NamespaceSelector: p.NamespaceSelector, PodSelector: p.PodSelector}
}

func subjectV1Alpha1(s anpv1alpha1.AdminNetworkPolicySubject) cnpv1beta1.ClusterNetworkPolicySubject {
	return cnpv1beta1.ClusterNetworkPolicySubject{Namespaces: s.Namespaces, Pods: namespacedPodV1Alpha1(s.Pods)}
}

func ingressPeersV1Alpha1(peers []anpv1alpha1.AdminNetworkPolicyIngressPeer) []cnpv1beta1.ClusterNetworkPolicyIngressPeer {
	out := make([]cnpv1beta1.ClusterNetworkPolicyIngressPeer, len(peers))
	for i, p := range peers {
		out[i] = cnpv1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces, Pods: namespacedPodV1Alpha1(p.Pods)}
	}
	return out
}

func egressPeerV1Alpha1(p anpv1alpha1.AdminNetworkPolicyEgressPeer) cnpv1beta1.ClusterNetworkPolicyEgressPeer {
	out := cnpv1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: p.Namespaces, Pods: namespacedPodV1Alpha1(p.Pods), Nodes: p.Nodes}
	for _, n := range p.Networks {
		out.Networks = append(out.Networks, cnpv1beta1.CIDR(n))
	}
	for _, n := range p.DomainNames {
		out.DomainNames = append(out.DomainNames, cnpv1beta1.DomainName(n))
	}
	return out
}

// portsV1Alpha1 maps v1alpha1 ports (portNumber, namedPort, portRange, each
// with its protocol, TCP by default) onto protocols; none is every port.
func portsV1Alpha1(ports *[]anpv1alpha1.AdminNetworkPolicyPort) []cnpv1beta1.ClusterNetworkPolicyProtocol {
	if ports == nil {
		return nil
	}
	out := make([]cnpv1beta1.ClusterNetworkPolicyProtocol, 0, len(*ports))
	for _, p := range *ports {
		switch {
		case p.PortNumber != nil:
			out = append(out, protocolV1Beta1(p.PortNumber.Protocol, &cnpv1beta1.Port{Number: p.PortNumber.Port}))
		case p.PortRange != nil:
			out = append(out, protocolV1Beta1(p.PortRange.Protocol,
				&cnpv1beta1.Port{Range: &cnpv1beta1.PortRange{Start: p.PortRange.Start, End: p.PortRange.End}}))
		case p.NamedPort != nil:
			out = append(out, cnpv1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: *p.NamedPort})
		default:
			out = append(out, cnpv1beta1.ClusterNetworkPolicyProtocol{}) // reported: no protocol set
		}
	}
	return out
}

func protocolV1Beta1(proto corev1.Protocol, port *cnpv1beta1.Port) cnpv1beta1.ClusterNetworkPolicyProtocol {
	switch proto {
	case corev1.ProtocolUDP:
		return cnpv1beta1.ClusterNetworkPolicyProtocol{UDP: &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}}
	case corev1.ProtocolSCTP:
		return cnpv1beta1.ClusterNetworkPolicyProtocol{SCTP: &cnpv1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}}
	}
	return cnpv1beta1.ClusterNetworkPolicyProtocol{TCP: &cnpv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}}
}
