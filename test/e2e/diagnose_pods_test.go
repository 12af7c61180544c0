package e2e

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/test/adapter"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// podBackend is a test adapter behind a ClusterIP Service and pods, as an
// adapter runs in a cluster: the test plays kubelet and the EndpointSlice
// controller (pod status, EndpointSlices), and the test network leads the
// pod IPs and the ClusterIP to loopback listeners (harness.Network).
type podBackend struct {
	a   *adapter.Adapter
	ns  string
	svc *corev1.Service
	api *apiregv1.APIService
}

const podPort = 6443

func newPodBackend(t *testing.T, name string) *podBackend {
	t.Helper()
	b := &podBackend{ns: "e2e-" + name}
	b.a = startAdapter(t, name+".e2e.apiservice-guard.io", "v1", b.ns, "adapter")
	ns, _, api := b.a.Objects(b.a.CA().CertPEM())
	port := int32(443)
	api.Spec.Service.Port = &port
	b.api = api
	b.svc = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "adapter", Namespace: b.ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "adapter"},
		Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(podPort)}},
	}}
	create(t, ns, b.svc, api)
	return b
}

// addr is the adapter's loopback address.
func (b *podBackend) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.a.Port()) }

// clusterIP routes the Service's ClusterIP, as kube-proxy would, to.
func (b *podBackend) clusterIP(t *testing.T, to string) {
	t.Helper()
	dest := b.svc.Spec.ClusterIP + ":443"
	if err := suite.Network.Route(dest, to); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { suite.Network.Unroute(dest) })
}

// runPod creates a running, ready pod at ip whose port leads to to.
func (b *podBackend) runPod(t *testing.T, name, ip, to string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.ns, Labels: map[string]string{"app": "adapter"}}, Spec: corev1.PodSpec{
		NodeName:   "e2e-node",
		Containers: []corev1.Container{{Name: "adapter", Image: "adapter", Ports: []corev1.ContainerPort{{ContainerPort: podPort}}}},
	}}
	create(t, pod)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := suite.client.Status().Update(t.Context(), pod); err != nil {
		t.Fatalf("pod %s status: %v", name, err)
	}
	dest := fmt.Sprintf("%s:%d", ip, podPort)
	if err := suite.Network.Route(dest, to); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { suite.Network.Unroute(dest) })
}

// endpoints writes the Service's EndpointSlice with the pods given (name
// to IP), as the EndpointSlice controller does.
func (b *podBackend) endpoints(t *testing.T, pods map[string]string) {
	t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "adapter-e2e", Namespace: b.ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: "adapter"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](podPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for name, ip := range pods {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}, NodeName: ptr.To("e2e-node"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: b.ns, Name: name},
		})
	}
	var old discoveryv1.EndpointSlice
	switch err := suite.client.Get(t.Context(), client.ObjectKeyFromObject(slice), &old); {
	case err == nil:
		slice.ResourceVersion = old.ResourceVersion
		if err := suite.client.Update(t.Context(), slice); err != nil {
			t.Fatal(err)
		}
	default:
		create(t, slice)
	}
}

// closedPort is a loopback address nothing listens on: a pod whose
// adapter is down.
func closedPort(t *testing.T) string {
	t.Helper()
	port, err := harness.FreePort(suite.Env.WebhookInstallOptions.LocalServingPort)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestDiagnoseBehindPods: an adapter behind a ClusterIP Service and pods.
// With no ready endpoint the aggregator says so, and diagnose names it;
// once the pod runs and its endpoint is ready, the APIService is Available
// and diagnose shows the real service and pod proxies reaching it. Then a
// second pod whose adapter is down gets the aggregator's traffic: diagnose
// names that pod, from its own probe through the pod proxy, while the
// other answers; with it gone, Available again.
func TestDiagnoseBehindPods(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	b := newPodBackend(t, "diag-pods")
	b.clusterIP(t, b.addr())
	waitAvailable(t, b.api.Name, apiregv1.ConditionFalse, "", "")
	wantCause(t, b.api.Name, "Service e2e-diag-pods/adapter has no ready endpoint")

	// The fix: the adapter's pod runs, and its endpoint is ready.
	b.runPod(t, "adapter-0", "10.244.9.1", b.addr())
	b.endpoints(t, map[string]string{"adapter-0": "10.244.9.1"})
	wantAvailable(t, b.api.Name)
	code, out := diagnose(t, "--all", b.api.Name)
	t.Logf("diagnose --all:\n%s", out)
	for _, want := range []string{"service: HTTP 200", "pod adapter-0: HTTP 200", "adapter-0 10.244.9.1:6443 Running ready, 0 restarts, node e2e-node"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("diagnose --all: exit %d, want 0 and %q", code, want)
		}
	}

	// A second pod, its adapter down, gets the aggregator's requests.
	down := closedPort(t)
	b.runPod(t, "adapter-1", "10.244.9.2", down)
	b.endpoints(t, map[string]string{"adapter-0": "10.244.9.1", "adapter-1": "10.244.9.2"})
	b.clusterIP(t, down)
	waitAvailable(t, b.api.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "")
	wantCause(t, b.api.Name, "adapter-1: connection refused, while other pods answer")

	// The fix: that pod is gone; the aggregator's requests reach the other.
	b.endpoints(t, map[string]string{"adapter-0": "10.244.9.1"})
	b.clusterIP(t, b.addr())
	wantAvailable(t, b.api.Name)
}

// TestDiagnoseWhatTheOutageBlocks: with the adapter down, a namespace
// stuck Terminating because discovery of its group fails (the namespace
// controller's condition, written here as it writes it: the test control
// plane runs no controllers) is named; and a k0s worker-config with
// konnectivity off is read as evidence, though nothing here says
// konnectivity is in the way.
func TestDiagnoseWhatTheOutageBlocks(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	api, _ := adapterDown(t, "diag-ns")

	stuck := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-diag-stuck"}}
	create(t, stuck)
	if err := suite.client.Delete(t.Context(), stuck); err != nil {
		t.Fatal(err)
	}
	if err := suite.client.Get(t.Context(), client.ObjectKeyFromObject(stuck), stuck); err != nil {
		t.Fatal(err)
	}
	gv := "diag-ns.e2e.apiservice-guard.io/v1"
	stuck.Status.Conditions = append(stuck.Status.Conditions, corev1.NamespaceCondition{
		Type: corev1.NamespaceDeletionDiscoveryFailure, Status: corev1.ConditionTrue, Reason: "DiscoveryFailed",
		Message: "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: " + gv + ": stale GroupVersion discovery: " + gv,
	})
	if err := suite.client.Status().Update(t.Context(), stuck); err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "worker-config-default-1.33", Namespace: "kube-system"},
		Data: map[string]string{"konnectivity": `{"agentPort":8132}`}})

	code, out := diagnose(t, api.Name)
	t.Logf("diagnose:\n%s", out)
	for _, want := range []string{
		"Cause: connection refused",
		"[failed]  namespaces   1 namespaces stuck Terminating because discovery of " + gv + " fails: e2e-diag-stuck",
		"[ok]      konnectivity 0 agents (k8s-app=konnectivity-agent in kube-system), 0 ready; worker-config-default-1.33: konnectivity disabled",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("diagnose: exit %d, want 1 and %q", code, want)
		}
	}
}
