package bench

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/k0s"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// k0sSpec is a k0s.yaml spec as k0s stores it with dynamic config.
const k0sSpec = `  network:
    provider: kuberouter
    podCIDR: 10.244.0.0/16
    serviceCIDR: 10.96.0.0/12
    clusterDomain: cluster.local
    kuberouter: {autoMTU: true, metricsPort: 8080, hairpin: Enabled}
    kubeProxy: {mode: iptables}
  konnectivity: {agentPort: 8132, adminPort: 8133}
  telemetry: {enabled: false}
`

// BenchmarkK0sReview measures in-process validating reviews of k0s
// configuration writes, which reach the guard only from kube-system: a
// worker-config, a ConfigMap holding a k0s.yaml, the ClusterConfig object,
// and a ConfigMap holding a ClusterConfig just under the 1 MiB parse bound
// (a ConfigMap's own limit). All are allowed without findings; the view is
// static and empty, as the clean path reads nothing from it.
func BenchmarkK0sReview(b *testing.B) {
	v := webhook.NewValidator(emptyCluster(b))
	doc := "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata: {name: k0s}\nspec:\n" + k0sSpec
	// The padding is an unknown field where k0s ignores them (spec.images),
	// so k0s's strict reading accepts the document.
	big := doc + "  images:\n    padding: " + strings.Repeat("x", k0s.MaxDocumentBytes-len(doc)-64) + "\n"
	cases := []struct {
		name string
		obj  map[string]any
	}{
		{"worker-config", configMap("worker-config-default-1.37", map[string]string{
			"konnectivity": `{"enabled":true,"agentPort":8132}`, "apiServerAddresses": `["10.0.0.10:6443"]`})},
		{"configmap-k0s.yaml", configMap("k0s-config", map[string]string{"k0s.yaml": doc})},
		{"clusterconfig", clusterConfigObject(b, k0sSpec)},
		{"configmap-1MiB", configMap("k0s-config", map[string]string{"k0s.yaml": big})},
	}
	for _, c := range cases {
		b.Run("write="+c.name, func(b *testing.B) {
			measure(b, b.Context(), v, k0sCreate(b, c.obj))
		})
	}
}

func configMap(name string, data map[string]string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": k0s.Namespace}, "data": data}
}

func clusterConfigObject(b *testing.B, spec string) map[string]any {
	var s map[string]any
	if err := yaml.Unmarshal([]byte(spec), &s); err != nil {
		b.Fatal(err)
	}
	return map[string]any{"apiVersion": k0s.SchemeGroupVersion.String(), "kind": "ClusterConfig",
		"metadata": map[string]any{"name": "k0s", "namespace": k0s.Namespace}, "spec": s}
}

// k0sCreate is the CREATE AdmissionRequest the API server would send for obj.
func k0sCreate(b *testing.B, obj map[string]any) admission.Request {
	raw, err := json.Marshal(obj)
	if err != nil {
		b.Fatal(err)
	}
	var tm metav1.TypeMeta
	_ = json.Unmarshal(raw, &tm)
	gvk := tm.GroupVersionKind()
	meta := obj["metadata"].(map[string]any)
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "k0s-bench",
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Namespace: k0s.Namespace, Name: meta["name"].(string),
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: "k0s-controller"},
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

// emptyCluster is validator options with an empty static view and every
// default rule, in enforce mode: the clean path of reviews that read
// nothing from the cluster.
func emptyCluster(b *testing.B) webhook.Options {
	view, err := cluster.LoadStatic()
	if err != nil {
		b.Fatal(err)
	}
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	return webhook.Options{Engine: engine, View: view}
}
