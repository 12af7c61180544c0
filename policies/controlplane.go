package policies

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// Where the control plane's connections come from (DESIGN "Control-plane
// sources").
const (
	controlPlaneNodeLabel = "node-role.kubernetes.io/control-plane"
	konnectivityLabel     = "k8s-app"
	konnectivityValue     = "konnectivity-agent"
	konnectivityNamespace = "kube-system"
	// maxCIDRAddresses bounds how many addresses of a configured CIDR are
	// checked one by one; larger CIDRs are checked at both ends.
	maxCIDRAddresses = 256
)

// source is one place the control plane connects from.
type source struct {
	endpoint netpol.Endpoint
	// what names it in messages: "API server 10.0.0.1".
	what string
	// cidr is what an ipBlock must allow for it, "" for a pod-network source
	// (a konnectivity-agent pod, allowed by pod/namespace selectors).
	cidr string
}

type sourcesKey struct{}

// controlPlaneSources lists the control plane's sources: the addresses of the
// default/kubernetes EndpointSlice, the InternalIPs of control-plane nodes,
// konnectivity-agent pods (hostNetwork ones as their node), and the
// configured CIDRs. Duplicate addresses are listed once.
func controlPlaneSources(ctx context.Context, r *Review, v cluster.View) []source {
	return memoize(r, sourcesKey{}, func() []source {
		b := &sourceList{seen: map[netip.Addr]bool{}}
		nodes, _ := v.Nodes(ctx)
		b.apiServers(ctx, v, nodes)
		for _, n := range nodes {
			if _, ok := n.Labels[controlPlaneNodeLabel]; ok {
				b.addAddr(internalIP(n), n.Name, "control-plane node "+n.Name)
			}
		}
		b.konnectivity(ctx, v)
		for _, p := range r.controlPlaneCIDRs {
			b.addCIDR(p)
		}
		return b.list
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
					b.addAddr(ip, nodeOf(nodes, ip), "API server "+ip.String())
				}
			}
		}
	}
}

// konnectivity adds konnectivity-agent pods: hostNetwork ones as their node's
// address, pod-network ones as pods that pod and namespace selectors match.
func (b *sourceList) konnectivity(ctx context.Context, v cluster.View) {
	pods, nsLabels := konnectivityAgents(ctx, v)
	for _, p := range pods {
		np := netpol.NewPod(p, nsLabels)
		if p.Spec.HostNetwork {
			for _, ip := range np.IPs {
				b.addAddr(ip, p.Spec.NodeName, "konnectivity-agent "+p.Name+" (hostNetwork)")
			}
			continue
		}
		b.list = append(b.list, source{endpoint: netpol.PodEndpoint(np), what: "konnectivity-agent pod " + p.Namespace + "/" + p.Name})
	}
}

func (b *sourceList) addAddr(ip netip.Addr, node, what string) {
	if !ip.IsValid() || b.seen[ip] {
		return
	}
	b.seen[ip] = true
	b.list = append(b.list, source{endpoint: netpol.AddrEndpoint(ip, node), what: what, cidr: netip.PrefixFrom(ip, ip.BitLen()).String()})
}

// addCIDR adds a configured CIDR: every address of a small one, both ends of
// a large one (an ipBlock except carving out its middle would go unnoticed;
// the flag is meant for small ranges such as GKE's /28).
func (b *sourceList) addCIDR(p netip.Prefix) {
	what := "--control-plane-cidr " + p.String()
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
			b.list = append(b.list, source{endpoint: netpol.AddrEndpoint(ip, ""), what: fmt.Sprintf("%s (%s)", what, ip), cidr: p.String()})
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

// konnectivityAgents are the konnectivity-agent pods and their namespace's labels.
func konnectivityAgents(ctx context.Context, v cluster.View) ([]*corev1.Pod, map[string]string) {
	pods, _ := v.Pods(ctx, konnectivityNamespace, labels.SelectorFromSet(labels.Set{konnectivityLabel: konnectivityValue}))
	var nsLabels map[string]string
	if ns, err := v.Namespace(ctx, konnectivityNamespace); err == nil {
		nsLabels = ns.Labels
	}
	return pods, nsLabels
}
