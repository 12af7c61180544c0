package policies

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// controlPlaneNodeLabel marks control-plane nodes.
const controlPlaneNodeLabel = "node-role.kubernetes.io/control-plane"

// maxCIDRAddresses bounds how many addresses of a configured CIDR are checked
// one by one; larger CIDRs are checked at both ends.
const maxCIDRAddresses = 256

// source is one place the control plane connects from.
type source struct {
	endpoint netpol.Endpoint
	// what names it in messages: "API server 10.0.0.1".
	what string
	// peer is the NetworkPolicy peer that admits it, as YAML flow text: an
	// ipBlock, or for a pod-network konnectivity agent its namespace and pod
	// selectors.
	peer string
	// cilium is the Cilium ingress peer that admits it: the kube-apiserver
	// entity for an API server, remote-node for another node, an endpoint
	// selector for a pod-network agent.
	cilium string
}

// Cilium peers of the sources (see source.cilium).
const (
	ciliumAPIServerPeer  = "fromEntities: [kube-apiserver]"
	ciliumRemoteNodePeer = "fromEntities: [remote-node]"
)

// ipBlockPeer is the peer admitting the addresses of p.
func ipBlockPeer(p netip.Prefix) string { return fmt.Sprintf("{ipBlock: {cidr: %s}}", p) }

// sourceModel says which of ControlPlane's cases found the sources.
type sourceModel string

// The source models, as findings name them.
const (
	modelConfigured   sourceModel = "configured CIDRs"
	modelKonnectivity sourceModel = "konnectivity agents"
	modelDirect       sourceModel = "API servers and control-plane nodes"
)

// sources are the control plane's sources and the model that found them.
type sources struct {
	model sourceModel
	list  []source
	// agents are the pod-network konnectivity agents (model
	// konnectivity), whose egress policies can cut the path too.
	agents []source
}

type sourcesKey struct{}

// controlPlaneSources finds the control plane's sources in the order of
// ControlPlane: the configured CIDRs; else the konnectivity agents, where
// any run (hostNetwork ones as their node's address, pod-network ones as
// pods that pod and namespace selectors can match); else the addresses of
// the default/kubernetes EndpointSlice and the InternalIPs of control-plane
// nodes. Duplicate addresses are listed once.
func controlPlaneSources(ctx context.Context, r *Review, v cluster.View) sources {
	return memoize(r, sourcesKey{}, func() sources {
		b := &sourceList{seen: map[netip.Addr]bool{}}
		if cidrs := r.controlPlane.CIDRs; len(cidrs) > 0 {
			for _, p := range cidrs {
				b.addCIDR(p)
			}
			return sources{model: modelConfigured, list: b.list}
		}
		nodes, _ := v.Nodes(ctx)
		if pods, nsLabels := konnectivityAgents(ctx, r, v); len(pods) > 0 {
			agents := b.konnectivity(pods, nsLabels, nodes, agentPeer(r.controlPlane), agentCiliumPeer(r.controlPlane))
			return sources{model: modelKonnectivity, list: b.list, agents: agents}
		}
		b.apiServers(ctx, v, nodes)
		for _, n := range nodes {
			if _, ok := n.Labels[controlPlaneNodeLabel]; ok {
				b.addAddr(internalIP(n), n.Name, "control-plane node "+n.Name, false)
			}
		}
		return sources{model: modelDirect, list: b.list}
	})
}

type sourceList struct {
	list []source
	seen map[netip.Addr]bool
}

// apiServers adds the addresses the API servers advertise.
func (b *sourceList) apiServers(ctx context.Context, v cluster.View, nodes []*corev1.Node) {
	slices, _ := v.EndpointSlices(ctx, "default", "kubernetes")
	for _, s := range slices {
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					b.addAddr(ip, nodeOf(nodes, ip), "API server "+ip.String(), true)
				}
			}
		}
	}
}

// konnectivity adds konnectivity-agent pods: hostNetwork ones as their
// node's address (the pod's, else the node's InternalIP), pod-network ones as
// pods that pod and namespace selectors match. It returns the pod-network ones.
func (b *sourceList) konnectivity(pods []*corev1.Pod, nsLabels map[string]string, nodes []*corev1.Node, peer, ciliumPeer string) []source {
	var agents []source
	for _, p := range pods {
		np := netpol.NewPod(p, nsLabels)
		if !p.Spec.HostNetwork {
			s := source{endpoint: netpol.PodEndpoint(np), what: "konnectivity-agent pod " + p.Namespace + "/" + p.Name, peer: peer, cilium: ciliumPeer}
			b.list = append(b.list, s)
			agents = append(agents, s)
			continue
		}
		ips := np.IPs
		if len(ips) == 0 {
			for _, n := range nodes {
				if n.Name == p.Spec.NodeName {
					ips = []netip.Addr{internalIP(n)}
				}
			}
		}
		for _, ip := range ips {
			b.addAddr(ip, p.Spec.NodeName, "konnectivity-agent "+p.Name+" (hostNetwork)", false)
		}
	}
	return agents
}

// addAddr adds an address: on node (empty: outside the cluster), the API
// server's when apiServer (Cilium gives it the kube-apiserver identity).
func (b *sourceList) addAddr(ip netip.Addr, node, what string, apiServer bool) {
	if !ip.IsValid() || b.seen[ip] {
		return
	}
	b.seen[ip] = true
	e := netpol.AddrEndpoint(ip, node)
	e.KubeAPIServer = apiServer
	cilium := ciliumRemoteNodePeer
	if apiServer || node == "" {
		cilium = ciliumAPIServerPeer
	}
	b.list = append(b.list, source{endpoint: e, what: what, peer: ipBlockPeer(netip.PrefixFrom(ip, ip.BitLen())), cilium: cilium})
}

// addCIDR adds a configured CIDR: every address of a small one, both ends of
// a large one (an ipBlock except carving out its middle would go unnoticed;
// the flag is meant for small ranges such as GKE's /28).
func (b *sourceList) addCIDR(p netip.Prefix) {
	what := "control-plane CIDR " + p.String()
	ips := []netip.Addr{p.Addr()}
	if hostBits := p.Addr().BitLen() - p.Bits(); hostBits < 63 && 1<<hostBits <= maxCIDRAddresses {
		for ip, n := p.Addr().Next(), 1; n < 1<<hostBits && p.Contains(ip); ip, n = ip.Next(), n+1 {
			ips = append(ips, ip)
		}
	} else {
		ips = append(ips, lastAddr(p))
	}
	for _, ip := range ips {
		if !b.seen[ip] {
			b.seen[ip] = true
			// The configured CIDRs are the API server's, out of the cluster:
			// Cilium sees it as kube-apiserver (and world).
			e := netpol.AddrEndpoint(ip, "")
			e.KubeAPIServer = true
			b.list = append(b.list, source{endpoint: e, what: fmt.Sprintf("%s (%s)", what, ip), peer: ipBlockPeer(p), cilium: ciliumAPIServerPeer})
		}
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	ip, _ := netip.AddrFromSlice(a)
	return ip.Unmap()
}

// nodeOf names the node that has address ip, so an API server running on a
// node gets the own-node exemption for pods on that node; "" when none has.
// It looks up the few API server addresses without parsing every node
// address of a large cluster: an IPv4 address that parses has one spelling,
// so only addresses with a colon (IPv6, IPv4-mapped) need parsing.
func nodeOf(nodes []*corev1.Node, ip netip.Addr) string {
	s := ip.String()
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Address == s {
				return n.Name
			}
			if strings.Contains(a.Address, ":") {
				if other, err := netip.ParseAddr(a.Address); err == nil && other == ip {
					return n.Name
				}
			}
		}
	}
	return ""
}

func internalIP(n *corev1.Node) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				return ip
			}
		}
	}
	return netip.Addr{}
}

// agentPeer is the peer admitting pod-network konnectivity agents: their
// namespace by name and their labels.
func agentPeer(cp ControlPlane) string {
	l := cp.AgentLabels()
	pairs := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		pairs = append(pairs, k+": "+l[k])
	}
	return fmt.Sprintf("{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}, podSelector: {matchLabels: {%s}}}",
		cp.AgentNamespace(), strings.Join(pairs, ", "))
}

// agentCiliumPeer is the Cilium peer of pod-network konnectivity agents:
// an endpoint selector with their labels and namespace.
func agentCiliumPeer(cp ControlPlane) string {
	l := cp.AgentLabels()
	pairs := []string{"k8s:io.kubernetes.pod.namespace: " + cp.AgentNamespace()}
	for _, k := range slices.Sorted(maps.Keys(l)) {
		pairs = append(pairs, "k8s:"+k+": "+l[k])
	}
	return "fromEndpoints: [{matchLabels: {" + strings.Join(pairs, ", ") + "}}]"
}

// konnectivityAgents are the konnectivity-agent pods and their namespace's
// labels.
func konnectivityAgents(ctx context.Context, r *Review, v cluster.View) ([]*corev1.Pod, map[string]string) {
	ns := r.controlPlane.AgentNamespace()
	pods, _ := v.Pods(ctx, ns, labels.SelectorFromSet(r.controlPlane.AgentLabels()))
	var nsLabels map[string]string
	if n, err := v.Namespace(ctx, ns); err == nil {
		nsLabels = n.Labels
	}
	return pods, nsLabels
}
