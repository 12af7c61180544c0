package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/test/harness"
)

// backend is an adapter's Service and one pod, as the API server sees them
// (no kubelet runs here, so the pod's IP is set through its status).
type backend struct {
	ns, svc  string
	portName string // "" for a numeric targetPort
	podPort  int32
	podIP    string
	labels   map[string]string
}

// install creates the backend and an APIService pointing at it.
func (b backend) install(t *testing.T, group string) {
	t.Helper()
	target := intstr.FromInt32(b.podPort)
	if b.portName != "" {
		target = intstr.FromString(b.portName)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: b.svc, Namespace: b.ns}, Spec: corev1.ServiceSpec{
		Selector: b.labels, Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: target}},
	}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: b.svc + "-0", Namespace: b.ns, Labels: b.labels}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "adapter", Image: "adapter", Ports: []corev1.ContainerPort{{Name: b.portName, ContainerPort: b.podPort}}}},
	}}
	port := int32(443)
	api := &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1beta1." + group}, Spec: apiregv1.APIServiceSpec{
		Group: group, Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100, InsecureSkipTLSVerify: true,
		Service: &apiregv1.ServiceReference{Namespace: b.ns, Name: b.svc, Port: &port},
	}}
	create(t, ns, svc, pod, api)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: b.podIP, PodIPs: []corev1.PodIP{{IP: b.podIP}}}
	if err := suite.client.Status().Update(t.Context(), pod); err != nil {
		t.Fatalf("setting pod IP: %v", err)
	}
}

// apiServerCIDR is the /32 (or /128) of the first address of the
// default/kubernetes EndpointSlice: the control-plane source the guard sees.
func apiServerCIDR(t *testing.T) string {
	t.Helper()
	var slices discoveryv1.EndpointSliceList
	if err := suite.client.List(t.Context(), &slices, client.InNamespace("default"),
		client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil || len(slices.Items) == 0 {
		t.Fatalf("no default/kubernetes EndpointSlice: %v", err)
	}
	ip := slices.Items[0].Endpoints[0].Addresses[0]
	if strings.Contains(ip, ":") {
		return ip + "/128"
	}
	return ip + "/32"
}

func policy(name, ns, ingress string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: %s}
spec:
  podSelector: {}
  policyTypes: [Ingress]
%s`, name, ns, ingress)
}

// TestNetworkPolicyCannotCutOffAnAggregatedAPI walks incident 1 with kubectl.
func TestNetworkPolicyCannotCutOffAnAggregatedAPI(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	keda := backend{ns: "e2e-keda", svc: "keda-operator-metrics-apiserver", podPort: 6443, podIP: "10.244.1.7",
		labels: map[string]string{"app": "keda-operator-metrics-apiserver"}}
	keda.install(t, "external.metrics.e2e.apiservice-guard.io")
	ms := backend{ns: "e2e-metrics", svc: "metrics-server", portName: "https", podPort: 10250, podIP: "10.244.2.9",
		labels: map[string]string{"k8s-app": "metrics-server"}}
	ms.install(t, "metrics.e2e.apiservice-guard.io")
	cidr := apiServerCIDR(t)
	deny := policy("default-deny", keda.ns, "  ingress: []\n")
	allow := policy("allow-control-plane", keda.ns, fmt.Sprintf("  ingress: [{from: [{ipBlock: {cidr: %q}}], ports: [{port: 6443}]}]\n", cidr))
	only443 := policy("allow-443", ms.ns, fmt.Sprintf("  ingress: [{from: [{ipBlock: {cidr: %q}}], ports: [{port: 443}]}]\n", cidr))

	denied := func(t *testing.T, stdin string, args ...string) {
		t.Helper()
		out, stderr, err := kubectl(t, stdin, args...)
		if err == nil || !strings.Contains(stderr, "[networkpolicy-blocks-apiservice]") {
			t.Fatalf("kubectl %v should be denied by networkpolicy-blocks-apiservice: err=%v\n%s%s", args, err, out, stderr)
		}
		t.Logf("kubectl %v: %s", args, strings.TrimSpace(stderr))
	}
	allowed := func(t *testing.T, stdin string, args ...string) {
		t.Helper()
		if out, stderr, err := kubectl(t, stdin, args...); err != nil {
			t.Fatalf("kubectl %v should pass: %v\n%s%s", args, err, out, stderr)
		}
	}
	t.Cleanup(func() {
		_, _, _ = kubectl(t, "", "delete", "networkpolicy", "--all", "-n", keda.ns, "--ignore-not-found")
		_, _, _ = kubectl(t, "", "delete", "networkpolicy", "--all", "-n", ms.ns, "--ignore-not-found")
	})

	// A default-deny in the adapter namespace is refused, with the reason.
	_, stderr, _ := kubectl(t, deny, "apply", "-f", "-")
	for _, want := range []string{"[networkpolicy-blocks-apiservice]", "APIService v1beta1.external.metrics.e2e.apiservice-guard.io",
		"e2e-keda/keda-operator-metrics-apiserver-0", "6443/TCP", "e2e-keda/default-deny", "ipBlock: {cidr: " + cidr + "}"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("denial lacks %q:\n%s", want, stderr)
		}
	}
	// Allowing the control plane on the pod port first makes it pass.
	allowed(t, allow, "apply", "-f", "-")
	allowed(t, deny, "apply", "-f", "-")
	// Deleting that allow afterwards is refused.
	denied(t, "", "delete", "networkpolicy", "allow-control-plane", "-n", keda.ns)
	// Opening the Service port 443 but not the pod port (named https -> 10250).
	denied(t, only443, "apply", "-f", "-")

	// Audit mode: each of these goes through and is recorded.
	useGuardConfig(t, "mode: audit\n")
	allowed(t, "", "delete", "networkpolicy", "allow-control-plane", "-n", keda.ns)
	allowed(t, only443, "apply", "-f", "-")
	waitEvent(t, "allow-control-plane", "PolicyAudit", "[networkpolicy-blocks-apiservice]")
	waitEvent(t, "allow-443", "PolicyAudit", "[networkpolicy-blocks-apiservice]")
	waitAuditAnnotation(t, "allow-443", "networkpolicies.apiservice-guard.io/networkpolicy-blocks-apiservice")
}

// TestConfiguredControlPlaneCIDR: a configured --control-plane-cidr replaces
// the sources the guard would find (the API server at 127.0.0.1 here), so an
// allow of that range on the pod port is what the default-deny needs; and the
// config file's controlPlane.cidrs does the same.
func TestConfiguredControlPlaneCIDR(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	const cidr = "172.16.0.0/28"
	b := backend{ns: "e2e-cp-cidr", svc: "keda-operator-metrics-apiserver", podPort: 6443, podIP: "10.244.5.7",
		labels: map[string]string{"app": "keda-operator-metrics-apiserver"}}
	b.install(t, "external.metrics.cidr.e2e.apiservice-guard.io")
	deny := policy("default-deny", b.ns, "  ingress: []\n")
	allow := policy("allow-control-plane", b.ns, fmt.Sprintf("  ingress: [{from: [{ipBlock: {cidr: %q}}], ports: [{port: 6443}]}]\n", cidr))
	t.Cleanup(func() {
		_, _, _ = kubectl(t, "", "delete", "networkpolicy", "--all", "-n", b.ns, "--ignore-not-found")
	})
	deniedNaming := func(t *testing.T, stdin string, args ...string) {
		t.Helper()
		out, stderr, err := kubectl(t, stdin, args...)
		for _, want := range []string{"[networkpolicy-blocks-apiservice]", "control-plane CIDR " + cidr, "ipBlock: {cidr: " + cidr + "}"} {
			if err == nil || !strings.Contains(stderr, want) {
				t.Fatalf("kubectl %v should be denied naming %q: err=%v\n%s%s", args, want, err, out, stderr)
			}
		}
		if strings.Contains(stderr, "API server 127.0.0.1") {
			t.Errorf("the configured CIDR should replace the API server as a source:\n%s", stderr)
		}
		t.Logf("kubectl %v: %s", args, strings.TrimSpace(stderr))
	}
	allowed := func(t *testing.T, stdin string, args ...string) {
		t.Helper()
		if out, stderr, err := kubectl(t, stdin, args...); err != nil {
			t.Fatalf("kubectl %v should pass: %v\n%s%s", args, err, out, stderr)
		}
	}

	t.Run("flag", func(t *testing.T) {
		useGuard(t, harness.GuardOptions{Config: defaultConfig, ExtraArgs: []string{"--control-plane-cidr", cidr}})
		deniedNaming(t, deny, "apply", "-f", "-")
		allowed(t, allow, "apply", "-f", "-")
		allowed(t, deny, "apply", "-f", "-")
		deniedNaming(t, "", "delete", "networkpolicy", "allow-control-plane", "-n", b.ns)
	})
	t.Run("config", func(t *testing.T) {
		_, _, _ = kubectl(t, "", "delete", "networkpolicy", "--all", "-n", b.ns, "--ignore-not-found")
		useGuardConfig(t, defaultConfig+"controlPlane:\n  cidrs: ["+cidr+"]\n")
		deniedNaming(t, deny, "apply", "-f", "-")
		allowed(t, allow, "apply", "-f", "-")
		allowed(t, deny, "apply", "-f", "-")
	})
}

// TestNetworkPolicyMetadataUpdatesNeverReachTheGuard: the networkpolicies
// webhook's matchCondition sends an UPDATE only when the spec changes. 20
// label-only updates cause no request; a CREATE, a spec change and a DELETE
// cause one each.
func TestNetworkPolicyMetadataUpdatesNeverReachTheGuard(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	metricsURL := useGuardWithMetrics(t)
	ns := "e2e-np-metadata"
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	create(t, np)
	for i := range 20 {
		np.Labels = map[string]string{"e2e-revision": fmt.Sprint(i)}
		if err := suite.client.Update(t.Context(), np); err != nil {
			t.Fatalf("label update %d: %v", i, err)
		}
	}
	if n, samples := webhookRequests(t, metricsURL, "NetworkPolicy", "validate"); n != 1 {
		t.Fatalf("1 CREATE and 20 label updates: %v requests %v, want 1 (the CREATE)", n, samples)
	}
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	if err := suite.client.Update(t.Context(), np); err != nil {
		t.Fatal(err)
	}
	if err := suite.client.Delete(t.Context(), np); err != nil {
		t.Fatal(err)
	}
	n, samples := webhookRequests(t, metricsURL, "NetworkPolicy", "validate")
	want := []string{`{kind="NetworkPolicy",operation="CREATE",verdict="allowed",webhook="validate"} 1`,
		`{kind="NetworkPolicy",operation="DELETE",verdict="allowed",webhook="validate"} 1`,
		`{kind="NetworkPolicy",operation="UPDATE",verdict="allowed",webhook="validate"} 1`}
	if n != 3 || !slices.Equal(samples, want) {
		t.Fatalf("after a spec change and a DELETE: %v requests %v, want %v", n, samples, want)
	}
}
