package netpol

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cilium policy types: our own structs for the fields the guard reads of
// cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (L3/L4
// of ingress and ingressDeny; egress likewise). Fields not listed are
// ignored when decoding; L7 rules do not change L3/L4 reachability.

// CiliumPolicy is a CiliumNetworkPolicy (Namespace set) or a
// CiliumClusterwideNetworkPolicy (Namespace empty).
type CiliumPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Spec is a single rule; Specs a list. Both may be set.
	Spec  *CiliumRule  `json:"spec,omitempty"`
	Specs []CiliumRule `json:"specs,omitempty"`
}

// CiliumRule is one rule: the endpoints it selects and what they may
// receive and send.
type CiliumRule struct {
	EndpointSelector *metav1.LabelSelector `json:"endpointSelector,omitempty"`
	// NodeSelector makes a host policy, which selects nodes, not pods: the
	// guard leaves it out.
	NodeSelector      *metav1.LabelSelector    `json:"nodeSelector,omitempty"`
	Ingress           []CiliumIngressRule      `json:"ingress,omitempty"`
	IngressDeny       []CiliumIngressRule      `json:"ingressDeny,omitempty"`
	Egress            []CiliumEgressRule       `json:"egress,omitempty"`
	EgressDeny        []CiliumEgressRule       `json:"egressDeny,omitempty"`
	EnableDefaultDeny *CiliumDefaultDenyConfig `json:"enableDefaultDeny,omitempty"`
}

// CiliumDefaultDenyConfig turns off a rule's default deny per direction.
type CiliumDefaultDenyConfig struct {
	Ingress *bool `json:"ingress,omitempty"`
	Egress  *bool `json:"egress,omitempty"`
}

// CiliumIngressRule is an ingress or ingressDeny rule.
type CiliumIngressRule struct {
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	FromEntities  []string               `json:"fromEntities,omitempty"`
	FromCIDR      []string               `json:"fromCIDR,omitempty"`
	FromCIDRSet   []CiliumCIDRRule       `json:"fromCIDRSet,omitempty"`
	FromNodes     []metav1.LabelSelector `json:"fromNodes,omitempty"`
	ToPorts       []CiliumPortRule       `json:"toPorts,omitempty"`
}

// CiliumEgressRule is an egress or egressDeny rule.
type CiliumEgressRule struct {
	ToEndpoints []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	ToEntities  []string               `json:"toEntities,omitempty"`
	ToCIDR      []string               `json:"toCIDR,omitempty"`
	ToCIDRSet   []CiliumCIDRRule       `json:"toCIDRSet,omitempty"`
	ToNodes     []metav1.LabelSelector `json:"toNodes,omitempty"`
	ToPorts     []CiliumPortRule       `json:"toPorts,omitempty"`
}

// CiliumCIDRRule is a CIDR with exceptions.
type CiliumCIDRRule struct {
	CIDR   string   `json:"cidr,omitempty"`
	Except []string `json:"except,omitempty"`
}

// CiliumPortRule lists ports (its L7 rules do not change reachability).
type CiliumPortRule struct {
	Ports []CiliumPortProtocol `json:"ports,omitempty"`
}

// CiliumPortProtocol is a port (a number or a name, as a string), an
// optional endPort, and a protocol (TCP, UDP, SCTP or ANY; default ANY).
type CiliumPortProtocol struct {
	Port     string `json:"port,omitempty"`
	EndPort  int32  `json:"endPort,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// Cilium entities, as fromEntities/toEntities name them.
const (
	EntityHost          = "host"
	EntityRemoteNode    = "remote-node"
	EntityKubeAPIServer = "kube-apiserver"
	EntityCluster       = "cluster"
	EntityWorld         = "world"
	EntityAll           = "all"
)
