package policies_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/k0s"
	"apiservice-guard.io/apiservice-guard/policies"
)

// ---- k0s builders ----

// workerConfig builds a kube-system worker-config ConfigMap as k0s writes it;
// konnectivity "" leaves the entry out.
func workerConfig(konnectivity string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "worker-config-default-1.37", Labels: map[string]string{
			k0s.LabelManagedBy: k0s.ManagedByK0s, k0s.LabelComponent: k0s.ComponentWorkerConfig,
		}},
		Data: map[string]string{"apiServerAddresses": `["10.0.0.10:6443"]`},
	}
	if konnectivity != "" {
		cm.Data[k0s.WorkerKonnectivityKey] = konnectivity
	}
	return cm
}

// k0sConfigMap builds a kube-system ConfigMap holding data.
func k0sConfigMap(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "k0s-config"}, Data: data}
}

// clusterConfigDoc is a k0s.yaml document with spec (YAML, indented by 2).
func clusterConfigDoc(spec string) string {
	return "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\nspec:\n" + spec
}

// clusterConfig builds the ClusterConfig object "k0s" in kube-system with
// spec given as YAML.
func clusterConfig(t *testing.T, spec string) *k0s.ClusterConfig {
	t.Helper()
	raw, err := yaml.YAMLToJSON([]byte(spec))
	if err != nil {
		t.Fatalf("spec YAML: %v", err)
	}
	return &k0s.ClusterConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "k0s"}, Spec: runtime.RawExtension{Raw: raw}}
}

// k0sReview reviews a write of obj (a ConfigMap or a ClusterConfig); old nil
// makes it a CREATE.
func k0sReview(obj, old runtime.Object) *policies.Review {
	m := obj.(metav1.Object)
	r := &policies.Review{Operation: policies.Create, Kind: policies.ConfigMapKind, Object: obj, Namespace: m.GetNamespace(), Name: m.GetName()}
	if _, ok := obj.(*k0s.ClusterConfig); ok {
		r.Kind = k0s.ClusterConfigKind
	}
	if old != nil {
		r.Operation, r.OldObject = policies.Update, old
	}
	return r
}

// metricsServer is metrics-server's APIService, Service and pod in
// kube-system; hostNetwork runs the pod on its node's network.
func metricsServer(hostNetwork bool) []runtime.Object {
	sel := map[string]string{"k8s-app": "metrics-server"}
	p := pod("kube-system", "metrics-server-1", sel, podPort("https", 10250))
	p.Spec.HostNetwork = hostNetwork
	return []runtime.Object{
		apiService("v1beta1.metrics.k8s.io", "kube-system", "metrics-server", asInsecureSkipTLS()),
		service("kube-system", "metrics-server", sel, svcPort("https", 443, intstr.FromString("https"))),
		p,
	}
}

// k0sFindings evaluates r with the default rules and keeps the k0s findings.
func k0sFindings(t *testing.T, cfg policies.Config, r *policies.Review, objs ...runtime.Object) []policies.Finding {
	t.Helper()
	var out []policies.Finding
	for _, f := range mustEngine(t, cfg).Evaluate(t.Context(), r, newView(t, objs...)) {
		if strings.HasPrefix(f.Rule, "k0s-") {
			out = append(out, f)
		}
	}
	return out
}

// want is the rule, action and message substrings expected of one finding.
type k0sWant struct {
	rule   string
	action policies.Action
	says   []string
}

func checkK0s(t *testing.T, got []policies.Finding, want []k0sWant) {
	t.Helper()
	var gotV, wantV []verdict
	for _, f := range got {
		gotV = append(gotV, verdict{f.Rule, f.Action})
	}
	for _, w := range want {
		wantV = append(wantV, verdict{w.rule, w.action})
	}
	if diff := cmp.Diff(wantV, gotV); diff != "" {
		t.Fatalf("findings (-want +got):\n%s\n%v", diff, got)
	}
	for i, w := range want {
		for _, s := range w.says {
			if !strings.Contains(got[i].String(), s) {
				t.Errorf("finding %q does not say %q", got[i].String(), s)
			}
		}
	}
}

// ---- tests ----

// TestK0sKonnectivityDisabled: the warning needs a worker-config with
// konnectivity off (as k0s writes it, or left out) and an APIService backend
// in the pod network; it names the backend and the two ways out.
func TestK0sKonnectivityDisabled(t *testing.T) {
	const rule = "k0s-konnectivity-disabled"
	other := workerConfig(`{"agentPort":8132}`)
	other.Namespace = "default"
	notWorker := workerConfig(`{"agentPort":8132}`)
	notWorker.Name, notWorker.Labels = "kube-proxy", nil
	byName := workerConfig(`{"agentPort":8132}`)
	byName.Labels = nil // workers read it by name, whoever wrote it
	second := []runtime.Object{
		apiService("v1beta1.external.metrics.k8s.io", "keda", "keda-metrics", asInsecureSkipTLS()),
		service("keda", "keda-metrics", map[string]string{"app": "keda"}, svcPort("https", 443, intstr.FromInt32(6443))),
		pod("keda", "keda-1", map[string]string{"app": "keda"}),
	}
	warn := k0sWant{rule, policies.Warn, []string{
		"worker-config-default-1.37: konnectivity is off, but",
		"v1beta1.metrics.k8s.io -> kube-system/metrics-server runs in the pod network",
		"Fix: keep konnectivity, or make every controller able to route to the pod CIDR",
	}}
	tests := []struct {
		name string
		cm   *corev1.ConfigMap
		objs []runtime.Object
		want []k0sWant
	}{
		{"off as k0s writes it", workerConfig(`{"agentPort":8132}`), metricsServer(false), []k0sWant{warn}},
		{"enabled false", workerConfig(`{"enabled":false,"agentPort":8132}`), metricsServer(false), []k0sWant{warn}},
		{"found by name", byName, metricsServer(false), []k0sWant{warn}},
		{"no entry", workerConfig(""), metricsServer(false), []k0sWant{{rule, policies.Warn, []string{"no konnectivity entry, so off"}}}},
		{"two backends", workerConfig(`{"agentPort":8132}`), append(metricsServer(false), second...), []k0sWant{{rule, policies.Warn, []string{"(+1 more)"}}}},
		{"enabled", workerConfig(`{"enabled":true,"agentPort":8132}`), metricsServer(false), nil},
		{"backend on the host network", workerConfig(`{"agentPort":8132}`), metricsServer(true), nil},
		{"no APIService", workerConfig(`{"agentPort":8132}`), metricsServer(false)[1:], nil},
		{"backend without pods", workerConfig(`{"agentPort":8132}`), metricsServer(false)[:2], nil},
		{"not in kube-system", other, metricsServer(false), nil},
		{"not a worker-config", notWorker, metricsServer(false), nil},
		{"entry does not parse", workerConfig(`not json {`), metricsServer(false), []k0sWant{{"k0s-config-invalid", policies.Enforce, []string{
			"data[konnectivity]", `must be an object like {"enabled":true,"agentPort":8132}, not a string`}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := k0sFindings(t, defaultConfig(t), k0sReview(tt.cm, nil), tt.objs...)
			checkK0s(t, got, tt.want)
			for _, f := range got {
				if f.Action == policies.Warn && len(f.String()) > 256 {
					t.Errorf("warning is %d bytes, over 256: %s", len(f.String()), f)
				}
			}
		})
	}
}

// TestK0sConfigInvalid: what k0s would refuse, in a ClusterConfig object or
// a ConfigMap value, is denied with the field path.
func TestK0sConfigInvalid(t *testing.T) {
	const rule = "k0s-config-invalid"
	invalid := func(says ...string) []k0sWant { return []k0sWant{{rule, policies.Enforce, says}} }
	tests := []struct {
		name string
		obj  runtime.Object
		want []k0sWant
	}{
		{"defaults", clusterConfig(t, "{}"), nil},
		{"no spec", &k0s.ClusterConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "k0s"}}, nil},
		{"equal konnectivity ports", clusterConfig(t, "konnectivity: {agentPort: 8132, adminPort: 8132}"),
			invalid("spec.konnectivity.adminPort: Duplicate value: 8132", "konnectivity-server needs two ports", "k0s config validate")},
		{"agent port on the API server's", clusterConfig(t, "konnectivity: {agentPort: 6443}"),
			invalid("spec.konnectivity.agentPort: Invalid value: 6443: collides with the Kubernetes API server port (spec.api.port)")},
		{"moved API server port", clusterConfig(t, "api: {port: 7443}\nkonnectivity: {adminPort: 7443}"),
			invalid("spec.konnectivity.adminPort: Invalid value: 7443: collides")},
		{"6443 free when the API server moved", clusterConfig(t, "api: {port: 7443}\nkonnectivity: {agentPort: 6443}"), nil},
		{"kubelet port", clusterConfig(t, "konnectivity: {adminPort: 10250}"), invalid("collides with the kubelet port 10250")},
		{"port out of range", clusterConfig(t, "konnectivity: {agentPort: 70000}"), invalid("spec.konnectivity.agentPort", "between 1 and 65535")},
		{"wrong type", clusterConfig(t, "network: {podCIDR: 12}"), invalid("spec.network.podCIDR: Invalid value: must be a string, not a number")},
		{"unknown provider", clusterConfig(t, "network: {provider: flannel}"), invalid(`spec.network.provider: Unsupported value: "flannel"`)},
		{"invalid CIDR", clusterConfig(t, "network: {serviceCIDR: 10.96.0.0/33}"), invalid("spec.network.serviceCIDR", "invalid CIDR address")},
		{"unknown fields", clusterConfig(t, "storage: {type: etcd}\nnetwork: {kuberouter: {mtu: 1450}}"), nil},
		// The API server prunes what its schema does not know: an object
		// is read tolerantly, as k0s reads it.
		{"object with a field k0s's file reading refuses", clusterConfig(t, "netwrok: {provider: calico}"), nil},
		{"ConfigMap value with an unknown field", k0sConfigMap(map[string]string{"k0s.yaml": clusterConfigDoc("  netwrok: {provider: calico}\n")}),
			invalid("data[k0s.yaml]: k0s refuses unknown fields and duplicate keys: line 6: spec.netwrok: unknown field", "k0s config validate")},
		{"ConfigMap value with a key twice", k0sConfigMap(map[string]string{"k0s.yaml": "# k0s\n" + clusterConfigDoc("  konnectivity:\n    agentPort: 8132\n    agentPort: 8132\n")}),
			invalid("data[k0s.yaml]: k0s refuses unknown fields and duplicate keys: line 9: spec.konnectivity.agentPort: duplicate key (first at line 8)")},
		{"ConfigMap value with a legacy field", k0sConfigMap(map[string]string{"k0s.yaml": clusterConfigDoc("  podSecurityPolicy: {defaultPolicy: 00-k0s-privileged}\n")}), nil},
		{"ConfigMap's second document", k0sConfigMap(map[string]string{"k0s.yaml": "kind: Other\n---\n" + clusterConfigDoc("  Network: {}\n  telemetry: {enabled: true, intervall: 1m}\n")}),
			invalid("data[k0s.yaml]: k0s refuses unknown fields and duplicate keys: line 9: spec.telemetry.intervall: unknown field")},
		{"ConfigMap value", k0sConfigMap(map[string]string{"k0s.yaml": clusterConfigDoc("  konnectivity: {agentPort: 10250}\n")}),
			invalid("data[k0s.yaml]: spec.konnectivity.agentPort: Invalid value: 10250")},
		{"ConfigMap value not YAML", k0sConfigMap(map[string]string{"k0s.yaml": clusterConfigDoc("  network: {\n")}),
			invalid("data[k0s.yaml]: not valid YAML")},
		{"ConfigMap value of another kind", k0sConfigMap(map[string]string{"other.yaml": "apiVersion: v1\nkind: Pod\n", "text": "hello"}), nil},
		{"ConfigMap value unknown version", k0sConfigMap(map[string]string{"k0s.yaml": "apiVersion: k0s.k0sproject.io/v1\nkind: ClusterConfig\n"}),
			invalid(`data[k0s.yaml]: apiVersion: Unsupported value: "k0s.k0sproject.io/v1"`)},
		{"ConfigMap value too large", k0sConfigMap(map[string]string{"k0s.yaml": clusterConfigDoc("  x: " + strings.Repeat("a", k0s.MaxDocumentBytes) + "\n")}),
			invalid("data[k0s.yaml]: over 1048576 bytes: not parsed")},
		{"worker agent port", workerConfig(`{"enabled":true,"agentPort":0}`), invalid("data[konnectivity].agentPort: Invalid value: 0")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkK0s(t, k0sFindings(t, defaultConfig(t), k0sReview(tt.obj, nil)), tt.want)
		})
	}
}

// TestK0sImmutableNetworkChange: a change of provider or CIDR, k0s's
// defaults applied, is denied in k0s's words; what is not a change is not.
func TestK0sImmutableNetworkChange(t *testing.T) {
	const rule = "k0s-immutable-network-change"
	denied := func(says ...string) []k0sWant { return []k0sWant{{rule, policies.Enforce, says}} }
	calico := "network: {provider: calico, calico: {ipAutodetectionMethod: can-reach=10.0.0.10}}"
	cm := func(spec string) *corev1.ConfigMap {
		return k0sConfigMap(map[string]string{"k0s.yaml": clusterConfigDoc("  " + spec + "\n")})
	}
	tests := []struct {
		name     string
		old, obj runtime.Object
		want     []k0sWant
	}{
		{"provider", clusterConfig(t, "network: {provider: kuberouter}"), clusterConfig(t, calico),
			denied("cannot change CNI provider from kuberouter to calico", "revert the field")},
		{"provider from the default", clusterConfig(t, "{}"), clusterConfig(t, calico), denied("from kuberouter to calico")},
		{"pod CIDR", clusterConfig(t, "network: {podCIDR: 10.244.0.0/16}"), clusterConfig(t, "network: {podCIDR: 10.10.0.0/16}"),
			denied("cannot change podCIDR from 10.244.0.0/16 to 10.10.0.0/16")},
		{"service CIDR left out", clusterConfig(t, "network: {serviceCIDR: 10.100.0.0/16}"), clusterConfig(t, "network: {}"),
			denied("cannot change serviceCIDR from 10.100.0.0/16 to 10.96.0.0/12")},
		{"default written out", clusterConfig(t, "{}"), clusterConfig(t, "network: {provider: kuberouter, podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}"), nil},
		{"same network, host bits", clusterConfig(t, "network: {podCIDR: 10.244.0.0/16}"), clusterConfig(t, "network: {podCIDR: 10.244.1.0/16}"), nil},
		{"other fields", clusterConfig(t, "konnectivity: {agentPort: 8132}"), clusterConfig(t, "konnectivity: {agentPort: 9132}"), nil},
		{"in a ConfigMap value", cm("network: {provider: kuberouter}"), cm(calico), denied("data[k0s.yaml]: cannot change CNI provider")},
		{"old did not parse", clusterConfig(t, "network: {provider: 1}"), clusterConfig(t, calico), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkK0s(t, k0sFindings(t, defaultConfig(t), k0sReview(tt.obj, tt.old)), tt.want)
		})
	}
}

// TestK0sCalicoAutodetect: calico without an autodetection method warns.
func TestK0sCalicoAutodetect(t *testing.T) {
	warn := []k0sWant{{"k0s-calico-autodetect", policies.Warn, []string{"ipAutodetectionMethod", "can-reach="}}}
	tests := []struct {
		name string
		obj  runtime.Object
		want []k0sWant
	}{
		{"calico without method", clusterConfig(t, "network: {provider: calico}"), warn},
		{"calico with method", clusterConfig(t, "network: {provider: calico, calico: {ipAutodetectionMethod: interface=eth1}}"), nil},
		{"kuberouter", clusterConfig(t, "network: {provider: kuberouter}"), nil},
		{"in a ConfigMap value", k0sConfigMap(map[string]string{"k0s.yaml": clusterConfigDoc("  network: {provider: calico}\n")}), warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkK0s(t, k0sFindings(t, defaultConfig(t), k0sReview(tt.obj, nil)), tt.want)
		})
	}
}

// TestK0sAuditMode: mode audit records the denials instead of making them;
// Warn stays Warn.
func TestK0sAuditMode(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Mode = policies.ModeAudit
	r := k0sReview(clusterConfig(t, "network: {provider: calico}\nkonnectivity: {agentPort: 8132, adminPort: 8132}"),
		clusterConfig(t, "network: {provider: kuberouter}"))
	checkK0s(t, k0sFindings(t, cfg, r), []k0sWant{
		{"k0s-config-invalid", policies.Audit, nil},
		{"k0s-immutable-network-change", policies.Audit, nil},
		{"k0s-calico-autodetect", policies.Warn, nil},
	})
}
