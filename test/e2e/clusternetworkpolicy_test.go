package e2e

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// clusterNetworkPolicy renders a ClusterNetworkPolicy whose subject is
// every pod, with one ingress rule.
func clusterNetworkPolicy(name, tier string, priority int, action, from string) string {
	return fmt.Sprintf(`apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: %s}
spec:
  tier: %s
  priority: %d
  subject: {namespaces: {}}
  ingress: [{name: r, action: %s, from: [%s]}]
`, name, tier, priority, action, from)
}

// TestClusterNetworkPolicyCannotCutOffAnAggregatedAPI: with the API server
// reaching pods through pod-network konnectivity agents, a Baseline-tier
// deny of every namespace's pods would stop the agents reaching KEDA's
// adapter: kubectl apply is refused with the deciding policy and tier and
// the Accept rule that fixes it; with that Accept ahead of it the deny
// passes, and deleting the Accept is refused.
func TestClusterNetworkPolicyCannotCutOffAnAggregatedAPI(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	keda := backend{ns: "e2e-cnp-keda", svc: "keda-operator-metrics-apiserver", podPort: 6443, podIP: "10.244.1.17",
		labels: map[string]string{"app": "keda-operator-metrics-apiserver"}}
	keda.install(t, "external.metrics.cnp.e2e.apiservice-guard.io")
	agent := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "konnectivity-agent-e2e", Namespace: "kube-system",
		Labels: map[string]string{"k8s-app": "konnectivity-agent"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent"}}}}
	create(t, agent)
	agent.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.15", PodIPs: []corev1.PodIP{{IP: "10.244.0.15"}}}
	if err := suite.client.Status().Update(t.Context(), agent); err != nil {
		t.Fatalf("setting the agent's IP: %v", err)
	}
	t.Cleanup(func() {
		_, _, _ = kubectl(t, "", "delete", "clusternetworkpolicy", "baseline-deny", "accept-agents", "--ignore-not-found")
		_ = suite.client.Delete(t.Context(), agent)
	})
	deny := clusterNetworkPolicy("baseline-deny", "Baseline", 50, "Deny", "{namespaces: {}}")
	accept := clusterNetworkPolicy("accept-agents", "Baseline", 10, "Accept",
		"{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: konnectivity-agent}}}}")

	_, stderr, err := kubectl(t, deny, "apply", "-f", "-")
	if err == nil {
		t.Fatal("the Baseline deny-all was admitted")
	}
	for _, want := range []string{"[networkpolicy-blocks-apiservice]", "APIService v1beta1.external.metrics.cnp.e2e.apiservice-guard.io",
		"konnectivity-agent pod kube-system/konnectivity-agent-e2e", "e2e-cnp-keda/keda-operator-metrics-apiserver-0", "6443/TCP",
		"denied by Baseline-tier baseline-deny", "ClusterNetworkPolicy baseline-deny (Baseline tier, priority 50)", "action: Accept"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("denial lacks %q:\n%s", want, stderr)
		}
	}
	t.Logf("kubectl apply: %s", strings.TrimSpace(stderr))
	if out, stderr, err := kubectl(t, accept, "apply", "-f", "-"); err != nil {
		t.Fatalf("the Accept of the agents: %v\n%s%s", err, out, stderr)
	}
	if out, stderr, err := kubectl(t, deny, "apply", "-f", "-"); err != nil {
		t.Fatalf("the deny-all after the Accept: %v\n%s%s", err, out, stderr)
	}
	if _, stderr, err := kubectl(t, "", "delete", "clusternetworkpolicy", "accept-agents"); err == nil || !strings.Contains(stderr, "denied by Baseline-tier baseline-deny") {
		t.Errorf("deleting the Accept the deny-all relies on: err=%v\n%s", err, stderr)
	}
}
