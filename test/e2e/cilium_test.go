package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ciliumPolicy renders a CiliumNetworkPolicy selecting app in ns, admitting
// the entities on 6443/TCP: KEDA's chart ships this shape as its Cilium
// flavour, with fromEntities: [cluster].
func ciliumPolicy(ns, app string, entities ...string) string {
	return fmt.Sprintf(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: %s, namespace: %s}
spec:
  endpointSelector: {matchLabels: {app: %s}}
  ingress:
    - fromEntities: [%s]
      toPorts: [{ports: [{port: "6443", protocol: TCP}]}]
`, app, ns, app, strings.Join(entities, ", "))
}

// TestCiliumPolicyCannotCutOffAnAggregatedAPI: with the API server out of
// the cluster (here it runs on no node), a Cilium policy admitting only the
// cluster entity cuts KEDA's adapter off: kubectl apply is refused with the
// policy and the rule that admits the API server; with kube-apiserver
// added it passes; with pod-network konnectivity agents, which are cluster
// endpoints, the cluster-only policy passes too.
func TestCiliumPolicyCannotCutOffAnAggregatedAPI(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	keda := backend{ns: "e2e-cilium-keda", svc: "keda-operator-metrics-apiserver", podPort: 6443, podIP: "10.244.1.27",
		labels: map[string]string{"app": "keda-operator-metrics-apiserver"}}
	keda.install(t, "external.metrics.cilium.e2e.apiservice-guard.io")
	t.Cleanup(func() {
		_, _, _ = kubectl(t, "", "delete", "ciliumnetworkpolicy", "--all", "-n", keda.ns, "--ignore-not-found")
	})
	clusterOnly := ciliumPolicy(keda.ns, keda.svc, "cluster")
	fixed := ciliumPolicy(keda.ns, keda.svc, "cluster", "kube-apiserver")

	_, stderr, err := kubectl(t, clusterOnly, "apply", "-f", "-")
	if err == nil {
		t.Fatal("the cluster-only Cilium policy was admitted with the API server out of the cluster")
	}
	for _, want := range []string{"[networkpolicy-blocks-apiservice]", "APIService v1beta1.external.metrics.cilium.e2e.apiservice-guard.io",
		"API server ", "e2e-cilium-keda/keda-operator-metrics-apiserver-0", "6443/TCP",
		"isolated by e2e-cilium-keda/keda-operator-metrics-apiserver, Cilium", "fromEntities: [kube-apiserver]"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("denial lacks %q:\n%s", want, stderr)
		}
	}
	t.Logf("kubectl apply: %s", strings.TrimSpace(stderr))
	if out, stderr, err := kubectl(t, fixed, "apply", "-f", "-"); err != nil {
		t.Fatalf("the policy admitting kube-apiserver: %v\n%s%s", err, out, stderr)
	}
	// Taking kube-apiserver out again is refused.
	if _, stderr, err := kubectl(t, clusterOnly, "apply", "-f", "-"); err == nil || !strings.Contains(stderr, "[networkpolicy-blocks-apiservice]") {
		t.Errorf("narrowing the policy to cluster: err=%v\n%s", err, stderr)
	}
	if out, stderr, err := kubectl(t, "", "delete", "ciliumnetworkpolicy", keda.svc, "-n", keda.ns); err != nil {
		t.Fatalf("deleting the policy: %v\n%s%s", err, out, stderr)
	}

	// With pod-network konnectivity agents the API server reaches pods
	// through them: the cluster entity admits them.
	agent := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "konnectivity-agent-cilium-e2e", Namespace: "kube-system",
		Labels: map[string]string{"k8s-app": "konnectivity-agent"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent"}}}}
	create(t, agent)
	t.Cleanup(func() { _ = suite.client.Delete(t.Context(), agent) })
	agent.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.25", PodIPs: []corev1.PodIP{{IP: "10.244.0.25"}}}
	if err := suite.client.Status().Update(t.Context(), agent); err != nil {
		t.Fatalf("setting the agent's IP: %v", err)
	}
	// The guard's informers see the agent within moments.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, stderr, err := kubectl(t, clusterOnly, "apply", "-f", "-")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster-only policy with konnectivity agents: %v\n%s%s", err, out, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
