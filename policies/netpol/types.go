package netpol

import (
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Pod describes a pod as NetworkPolicy sees it.
type Pod struct {
	// Namespace is the pod's namespace.
	Namespace string
	// Name is used in explanations only; may be empty.
	Name string
	// NamespaceLabels are the labels of the pod's namespace. The label
	// kubernetes.io/metadata.name is always taken to be Namespace.
	NamespaceLabels map[string]string
	// Labels are the pod's labels.
	Labels map[string]string
	// NodeName is the node the pod runs on; empty when unknown.
	NodeName string
	// HostNetwork pods are treated as their node (see the package doc).
	HostNetwork bool
	// IPs are the pod's addresses (status.podIPs); the first is the default
	// address of an Endpoint for this pod.
	IPs []netip.Addr
	// Ports are the container ports, for named-port resolution.
	Ports []ContainerPort
}

// ContainerPort is one container port of a pod.
type ContainerPort struct {
	// Name is the port's name; empty for an unnamed port.
	Name string
	// Port is the container port number.
	Port int32
	// Protocol defaults to TCP when empty.
	Protocol corev1.Protocol
}

// Endpoint is one end of a connection: a pod, or a non-pod address such as a
// node, a control-plane host or an external client.
type Endpoint struct {
	// Pod is the pod at this end; nil for a non-pod endpoint. A hostNetwork pod
	// is treated as its node.
	Pod *Pod
	// IP is the address of this end for the connection. When zero and Pod is
	// set, Pod.IPs[0] is used.
	IP netip.Addr
	// Node is the node this endpoint is (for a node address) or runs on, for
	// the own-node rule; when empty and Pod is set, Pod.NodeName is used.
	Node string
	// KubeAPIServer marks the API server, which Cilium gives the
	// kube-apiserver identity besides that of its address.
	KubeAPIServer bool
}

// Traffic is one connection attempt.
type Traffic struct {
	// Source opens the connection.
	Source Endpoint
	// Destination receives it.
	Destination Endpoint
	// Port is the destination port on the pod side (never a Service port).
	Port int32
	// Protocol defaults to TCP when empty.
	Protocol corev1.Protocol
}

// PodEndpoint is the endpoint of pod p at its first IP.
func PodEndpoint(p *Pod) Endpoint { return Endpoint{Pod: p} }

// AddrEndpoint is a non-pod endpoint at ip; node names the node the address
// belongs to, or is empty for an address that is no node.
func AddrEndpoint(ip netip.Addr, node string) Endpoint { return Endpoint{IP: ip, Node: node} }

// NewPod describes pod in a namespace with labels nsLabels. Unparsable pod IPs
// are skipped; container ports of containers and restartable (sidecar) init
// containers are kept for named-port resolution.
func NewPod(pod *corev1.Pod, nsLabels map[string]string) *Pod {
	p := &Pod{
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		NamespaceLabels: nsLabels,
		Labels:          pod.Labels,
		NodeName:        pod.Spec.NodeName,
		HostNetwork:     pod.Spec.HostNetwork,
	}
	for _, ip := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			p.IPs = append(p.IPs, a)
		}
	}
	if len(p.IPs) == 0 {
		if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
			p.IPs = append(p.IPs, a)
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			p.Ports = appendPorts(p.Ports, c.Ports)
		}
	}
	for i := range pod.Spec.Containers {
		p.Ports = appendPorts(p.Ports, pod.Spec.Containers[i].Ports)
	}
	return p
}

func appendPorts(dst []ContainerPort, ports []corev1.ContainerPort) []ContainerPort {
	for _, cp := range ports {
		dst = append(dst, ContainerPort{Name: cp.Name, Port: cp.ContainerPort, Protocol: cp.Protocol})
	}
	return dst
}

// isPodNetwork reports whether the endpoint is a pod in the pod network, the
// only kind that pod and namespace selectors can match.
func (e *Endpoint) isPodNetwork() bool { return e.Pod != nil && !e.Pod.HostNetwork }

// addr is the endpoint's address for this connection, zero when unknown.
func (e *Endpoint) addr() netip.Addr {
	if e.IP.IsValid() || e.Pod == nil || len(e.Pod.IPs) == 0 {
		return e.IP
	}
	return e.Pod.IPs[0]
}

// node is the node the endpoint is or runs on.
func (e *Endpoint) node() string {
	if e.Node != "" || e.Pod == nil {
		return e.Node
	}
	return e.Pod.NodeName
}

// String names the endpoint for explanations: "ns/name" for a pod,
// "ns/name (hostNetwork 10.0.0.1)", "10.0.0.1 (node n1)" or "10.0.0.1".
func (e Endpoint) String() string {
	ip := "unknown address"
	if a := e.addr(); a.IsValid() {
		ip = a.String()
	}
	if e.Pod != nil {
		name := e.Pod.Namespace + "/" + e.Pod.Name
		if e.Pod.Name == "" {
			name = "pod in " + e.Pod.Namespace
		}
		if e.Pod.HostNetwork {
			return name + " (hostNetwork " + ip + ")"
		}
		return name
	}
	if n := e.node(); n != "" {
		return ip + " (node " + n + ")"
	}
	return ip
}

// portString renders "6443/TCP".
func portString(port int32, proto corev1.Protocol) string {
	return strconv.Itoa(int(port)) + "/" + string(proto)
}

// protocolOr returns p, or TCP when p is empty.
func protocolOr(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// PolicyRef names a NetworkPolicy (a cluster-scoped policy by its name
// alone, where a Kind says what it is).
type PolicyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String renders "namespace/name".
func (r PolicyRef) String() string { return r.Namespace + "/" + r.Name }

// RuleRef names one rule of a NetworkPolicy: spec.ingress[Index] or
// spec.egress[Index], by Direction.
type RuleRef struct {
	Policy    PolicyRef               `json:"policy"`
	Direction networkingv1.PolicyType `json:"direction"`
	Index     int                     `json:"index"`
}

// String renders "namespace/name ingress rule 0".
func (r RuleRef) String() string {
	d := "ingress"
	if r.Direction == networkingv1.PolicyTypeEgress {
		d = "egress"
	}
	return r.Policy.String() + " " + d + " rule " + strconv.Itoa(r.Index)
}

// Issue is a part of a policy that the API server would reject; see the
// package doc for how each is decided.
type Issue struct {
	// Kind is empty for a NetworkPolicy, else the kind of the cluster-scoped
	// policy (ClusterNetworkPolicy), named by Policy.Name.
	Kind   string    `json:"kind,omitempty"`
	Policy PolicyRef `json:"policy"`
	// Field is the path of the invalid field, e.g. "spec.ingress[0].from[1].ipBlock.cidr".
	Field string `json:"field"`
	// Detail says what is wrong and how it was decided.
	Detail string `json:"detail"`
}

// String renders "policy ns/name spec.field: detail".
func (i Issue) String() string {
	name := i.Policy.String()
	if i.Kind != "" {
		name = i.Kind + " " + i.Policy.Name
	}
	return "policy " + name + " " + i.Field + ": " + i.Detail
}
