package policies_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Rule names of the NetworkPolicy family.
const (
	blocksAPIService   = "networkpolicy-blocks-apiservice"
	blocksWebhook      = "networkpolicy-blocks-webhook"
	blocksKonnectivity = "networkpolicy-blocks-konnectivity"
	apiServerIP        = "10.0.0.1"
)

// ---- cluster state ----

// namespace builds a Namespace carrying kubernetes.io/metadata.name, as the
// API server sets it.
func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelMetadataName: name}}}
}

func podIP(ip string) podOpt {
	return func(p *corev1.Pod) {
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
}

func podNode(name string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = name } }

func podHostNetwork() podOpt { return func(p *corev1.Pod) { p.Spec.HostNetwork = true } }

// nodeWithIP builds a node with an InternalIP.
func nodeWithIP(name, ip string, labels map[string]string) *corev1.Node {
	n := node(name, labels, "")
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	return n
}

// controlPlaneNode is a node labelled node-role.kubernetes.io/control-plane.
func controlPlaneNode(name, ip string) *corev1.Node {
	return nodeWithIP(name, ip, map[string]string{"node-role.kubernetes.io/control-plane": ""})
}

// apiServerSlice is the default/kubernetes EndpointSlice: where the API
// servers are.
func apiServerSlice(addrs ...string) *discoveryv1.EndpointSlice {
	return endpointSlice("default", "kubernetes", "https", 6443, nil, addrs...)
}

// konnectivityAgent is a konnectivity-agent pod in kube-system on node-2;
// opts make it hostNetwork.
func konnectivityAgent(name, ip string, opts ...podOpt) *corev1.Pod {
	return pod("kube-system", name, map[string]string{"k8s-app": "konnectivity-agent"},
		append([]podOpt{podIP(ip), podNode("node-2")}, opts...)...)
}

// kedaWorkload is the KEDA-like adapter: its Service (443 -> 6443) and one
// running pod on node-1, in a labelled namespace.
func kedaWorkload(opts ...podOpt) []runtime.Object {
	return []runtime.Object{
		namespace(kedaNS),
		service(kedaNS, kedaSvc, kedaLabels, svcPort("https", 443, intstr.FromInt32(6443))),
		kedaBackendPod(opts...),
	}
}

func kedaBackendPod(opts ...podOpt) *corev1.Pod {
	return pod(kedaNS, kedaPod, kedaLabels, append([]podOpt{podPort("metrics", 6443), podIP(kedaPodIP), podNode("node-1")}, opts...)...)
}

// kedaBackend is the adapter and its APIService.
func kedaBackend(opts ...podOpt) []runtime.Object {
	return append(kedaWorkload(opts...), apiService(kedaAPI, kedaNS, kedaSvc))
}

// Names of the metrics-server-like backend: named targetPort https -> 10250.
const (
	msAPI = "v1beta1.metrics.k8s.io"
	msPod = "metrics-server-7d4f9"
)

var msLabels = map[string]string{"k8s-app": "metrics-server"}

func metricsServerBackend() []runtime.Object {
	return []runtime.Object{
		apiService(msAPI, "kube-system", "metrics-server", asInsecureSkipTLS()),
		service("kube-system", "metrics-server", msLabels, svcPort("https", 443, intstr.FromString("https"))),
		pod("kube-system", msPod, msLabels, podPort("https", 10250), podIP("10.244.2.9"), podNode("node-1")),
	}
}

// objs lists objects, for slices.Concat with the backends.
func objs(o ...runtime.Object) []runtime.Object { return o }

// ---- NetworkPolicies ----

type npOpt func(*networkingv1.NetworkPolicy)

// netpolicy builds a policy selecting every pod of ns for Ingress, with no
// rules: a default-deny until opts add some.
func netpolicy(ns, name string, opts ...npOpt) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	for _, o := range opts {
		o(np)
	}
	return np
}

func npSelect(l map[string]string) npOpt {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: l} }
}

// npEgress makes the policy an egress one: policyTypes [Egress].
func npEgress() npOpt {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	}
}

func npPorts(ports []any) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, p := range ports {
		var v intstr.IntOrString
		switch p := p.(type) {
		case int:
			v = intstr.FromInt(p)
		case string:
			v = intstr.FromString(p)
		}
		out = append(out, networkingv1.NetworkPolicyPort{Port: &v})
	}
	return out
}

// ipBlock is a peer by CIDR, except the given ones.
func ipBlock(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

// agentsPeer selects the konnectivity agents by namespace and pod labels.
func agentsPeer() networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "kube-system"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "konnectivity-agent"}},
	}
}

// npAllow adds an ingress rule from peer on ports (int or port name).
func npAllow(peer networkingv1.NetworkPolicyPeer, ports ...any) npOpt {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{peer}, Ports: npPorts(ports),
		})
	}
}

// npAllowEgressTo adds an egress rule to every peer on ports.
func npAllowEgressTo(ports ...any) npOpt {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{Ports: npPorts(ports)})
	}
}

// allowAPIServer is the policy that lets the API server reach every pod of
// ns on port.
func allowAPIServer(ns, name string, port any) *networkingv1.NetworkPolicy {
	return netpolicy(ns, name, npAllow(ipBlock(apiServerIP+"/32"), port))
}

// ---- reviews ----

// npReview reviews a NetworkPolicy write: CREATE (old nil), UPDATE, or
// DELETE (np nil).
func npReview(old, np *networkingv1.NetworkPolicy) *policies.Review {
	r := &policies.Review{Kind: policies.NetworkPolicyKind, Operation: policies.Update, Object: np, OldObject: old}
	named := np
	switch {
	case old == nil:
		r.Operation, r.OldObject = policies.Create, nil
	case np == nil:
		r.Operation, r.Object, named = policies.Delete, nil, old
	}
	r.Namespace, r.Name = named.Namespace, named.Name
	return r
}

func npCreate(np *networkingv1.NetworkPolicy) *policies.Review { return npReview(nil, np) }
func npDelete(np *networkingv1.NetworkPolicy) *policies.Review { return npReview(np, nil) }

// npState asks of np what the offline check and audit ask: is the state,
// the view's policies with np in force, bad now?
func npState(np *networkingv1.NetworkPolicy) *policies.Review {
	r := npReview(nil, np)
	r.Judge = policies.JudgeState
	return r
}

// ---- running cases ----

// npCase is one NetworkPolicy write against the cluster state before it.
type npCase struct {
	name   string
	state  []runtime.Object
	review *policies.Review
	// cidrs are the configured control-plane CIDRs; mode the global mode.
	cidrs []string
	mode  policies.Mode
	want  []verdict
	// mentions must appear in every finding's "message Fix: fix"; detail in
	// every finding's Detail.
	mentions []string
	detail   []string
}

// evaluateNP runs the default catalogue on one review.
func evaluateNP(t *testing.T, v cluster.View, r *policies.Review, cidrs []string, mode policies.Mode) []policies.Finding {
	t.Helper()
	cfg := defaultConfig(t)
	for _, c := range cidrs {
		cfg.ControlPlane.CIDRs = append(cfg.ControlPlane.CIDRs, netip.MustParsePrefix(c))
	}
	if mode != "" {
		cfg.Mode = mode
	}
	return mustEngine(t, cfg).Evaluate(t.Context(), r, v)
}

func runNPCases(t *testing.T, cases []npCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh review per run: a review memoizes what its rules look up.
			r := &policies.Review{Operation: tc.review.Operation, Judge: tc.review.Judge, Kind: tc.review.Kind, Object: tc.review.Object,
				OldObject: tc.review.OldObject, Namespace: tc.review.Namespace, Name: tc.review.Name}
			got := evaluateNP(t, newView(t, tc.state...), r, tc.cidrs, tc.mode)
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\nall findings: %v", diff, got)
			}
			wantRef := policies.ObjectRef{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: tc.review.Namespace, Name: tc.review.Name}
			for _, f := range got {
				if f.Object != wantRef {
					t.Errorf("finding %s is about %+v, want %+v", f.Rule, f.Object, wantRef)
				}
				for _, m := range tc.mentions {
					if !strings.Contains(f.String(), m) {
						t.Errorf("finding %q does not mention %q", f.String(), m)
					}
				}
				for _, m := range tc.detail {
					if !strings.Contains(f.Detail, m) {
						t.Errorf("detail %q of %s does not mention %q", f.Detail, f.Rule, m)
					}
				}
				checkWarningLines(t, f)
			}
		})
	}
}

// checkWarningLines: the message and the fix each fit a warning line
// ("[rule] message", "[rule] Fix: fix"), so neither is cut.
func checkWarningLines(t *testing.T, f policies.Finding) {
	t.Helper()
	for _, line := range []string{"[" + f.Rule + "] " + f.Message, "[" + f.Rule + "] Fix: " + f.Fix} {
		if len(line) > 256 {
			t.Errorf("warning line is %d characters, want <= 256: %s", len(line), line)
		}
	}
}

// countingView counts the look-ups that resolve backends and sources.
type countingView struct {
	*cluster.Static
	calls map[string]int
}

func (c *countingView) Service(ctx context.Context, ns, name string) (*corev1.Service, error) {
	c.calls["Service"]++
	return c.Static.Service(ctx, ns, name)
}

func (c *countingView) Pods(ctx context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	c.calls["Pods"]++
	return c.Static.Pods(ctx, ns, sel)
}

func (c *countingView) Nodes(ctx context.Context) ([]*corev1.Node, error) {
	c.calls["Nodes"]++
	return c.Static.Nodes(ctx)
}

func (c *countingView) EndpointSlices(ctx context.Context, ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
	c.calls["EndpointSlices"]++
	return c.Static.EndpointSlices(ctx, ns, svc)
}

var _ cluster.View = (*countingView)(nil)

// terminatingNamespace is a namespace being deleted.
func terminatingNamespace(name string) []runtime.Object {
	ns := namespace(name)
	ns.Status.Phase = corev1.NamespaceTerminating
	return objs(ns)
}
