package policies_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/policies"
)

// deployment runs pods labelled app=<label> in the keda namespace.
func deployment(label string, replicas *int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: kedaNS, Name: "keda-operator-metrics-apiserver"},
		Spec: appsv1.DeploymentSpec{
			Replicas: replicas,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": label}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c",
					Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 6443}}}}},
			},
		},
	}
}

// TestServiceSelectsNoPod: offline, where readiness is unknown, a backend
// Service that selects no pod (a label typo, replicas: 0) gets a Warn from
// apiservice-no-ready-endpoints instead of every NetworkPolicy check
// silently skipping it.
func TestServiceSelectsNoPod(t *testing.T) {
	const rule = "apiservice-no-ready-endpoints"
	svc := service(kedaNS, "keda-operator-metrics-apiserver", map[string]string{"app": "keda-operator-metrics-apiserver"},
		svcPort("https", 443, intstr.FromInt32(6443)))
	api := apiService("v1beta1.external.metrics.k8s.io", kedaNS, svc.Name, asInsecureSkipTLS())
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: kedaNS, Name: "default-deny"}}
	tests := []struct {
		name     string
		workload runtime.Object
		want     []verdict
	}{
		{"pod template matches", deployment("keda-operator-metrics-apiserver", nil), nil},
		{"two replicas", deployment("keda-operator-metrics-apiserver", ptr[int32](2)), nil},
		{"label typo", deployment("keda-operator-metrics-apiservr", nil), []verdict{{rule, policies.Warn}}},
		{"replicas: 0", deployment("keda-operator-metrics-apiserver", ptr[int32](0)), []verdict{{rule, policies.Warn}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newView(t, namespace(kedaNS), svc, tc.workload, deny, api)
			got := ruleFindings(mustEngine(t, defaultConfig(t)).Evaluate(t.Context(), createReview(api, time.Time{}), v), rule)
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Fatalf("findings (-want +got):\n%s%v", diff, got)
			}
			for _, f := range got {
				if !strings.Contains(f.Message, "selects no pod (selector app=keda-operator-metrics-apiserver)") {
					t.Errorf("message %q does not name the selector", f.Message)
				}
			}
		})
	}
	t.Run("with EndpointSlices, readiness decides", func(t *testing.T) {
		v := newView(t, namespace(kedaNS), svc, deployment("typo", nil), api,
			endpointSlice(kedaNS, svc.Name, "https", 6443, ptr(true), "10.244.0.7"))
		if got := ruleFindings(mustEngine(t, defaultConfig(t)).Evaluate(t.Context(), createReview(api, time.Time{}), v), rule); len(got) != 0 {
			t.Errorf("findings %v, want none: a ready endpoint exists", got)
		}
	})
}
