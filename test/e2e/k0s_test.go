package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/test/harness"
)

// The k0s tests exercise the two k0s webhooks of manifests/base/webhook.yaml
// (k0s-configmaps and k0s-clusterconfigs) and the k0s-* rules behind them.

const (
	kubeSystem = "kube-system"
	// k0sTestLabel marks the ConfigMaps of TestK0sOrdinaryConfigMapsNeverReachTheGuard
	// so that its cleanup can delete them in one call.
	k0sTestLabel = "e2e.apiservice-guard.io/k0s-test"
	// k0sStepAnnotation makes successive applies of the same worker-config
	// differ: kubectl apply sends nothing for a manifest it applied already.
	k0sStepAnnotation = "e2e.apiservice-guard.io/step"
	// The finding the konnectivity tests look for.
	konnectivityWarning = "Warning: [k0s-konnectivity-disabled]"
	// admissionRequestsMetric counts the guard's admission reviews by kind.
	admissionRequestsMetric = "apiservice_guard_admission_requests_total"
)

// k0sWorkerLabels are the labels k0s puts on its worker-config ConfigMaps.
var k0sWorkerLabels = map[string]string{
	"app.kubernetes.io/managed-by": "k0s",
	"app.kubernetes.io/component":  "worker-config",
}

// TestK0sOrdinaryConfigMapsNeverReachTheGuard proves that the k0s-configmaps
// webhook's namespaceSelector and matchCondition keep ordinary ConfigMap
// writes away from the guard: 1,000 ConfigMaps (500 ordinary ones in
// kube-system, 500 in another namespace including a perfect k0s look-alike)
// cause no ConfigMap admission request at all in the guard's metrics, while
// the two k0s ConfigMaps of the positive control cause exactly two.
func TestK0sOrdinaryConfigMapsNeverReachTheGuard(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	metricsURL := useGuardWithMetrics(t)
	if n, samples := admissionRequests(t, metricsURL, "ConfigMap"); n != 0 {
		t.Fatalf("a fresh guard has already counted %v ConfigMap requests: %v", n, samples)
	}

	otherNS := "e2e-k0s-ordinary"
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: otherNS}})
	t.Cleanup(func() {
		for _, ns := range []string{kubeSystem, otherNS} {
			if err := suite.client.DeleteAllOf(context.Background(), &corev1.ConfigMap{},
				client.InNamespace(ns), client.MatchingLabels{k0sTestLabel: "ordinary"}); err != nil {
				t.Errorf("deleting the test's ConfigMaps in %s: %v", ns, err)
			}
		}
	})

	var cms []*corev1.ConfigMap
	for i := range 500 {
		cms = append(cms, ordinaryConfigMap(kubeSystem, i))
	}
	// In another namespace even exact k0s configuration is none of the
	// guard's business: k0s reads only kube-system.
	cms = append(cms, k0sLookAlike(otherNS))
	for i := 1; i < 500; i++ {
		cms = append(cms, ordinaryConfigMap(otherNS, i))
	}
	start := time.Now()
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(8)
	for _, cm := range cms {
		g.Go(func() error {
			if err := suite.client.Create(ctx, cm); err != nil {
				return fmt.Errorf("creating ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	n, samples := admissionRequests(t, metricsURL, "ConfigMap")
	t.Logf("%d ConfigMaps created in %s (%d in %s, %d in %s); ConfigMap admission requests counted by the guard: %v %v",
		len(cms), time.Since(start).Round(time.Millisecond), 500, kubeSystem, 500, otherNS, n, samples)
	if n != 0 {
		t.Fatalf("ordinary ConfigMaps reached the guard: %v ConfigMap admission requests %v", n, samples)
	}

	// Positive control: the same metric counts k0s ConfigMaps in kube-system,
	// one selected by the worker-config labels, one by its ClusterConfig value.
	worker := configMap(kubeSystem, "e2e-k0s-control-worker", k0sWorkerLabels,
		map[string]string{"konnectivity": `{"enabled":true,"agentPort":8132}`})
	valued := configMap(kubeSystem, "e2e-k0s-control-clusterconfig", nil,
		map[string]string{"k0s.yaml": clusterConfigDocument("k0s", "", "network:\n  provider: kuberouter\n")})
	create(t, worker, valued)
	n, samples = admissionRequests(t, metricsURL, "ConfigMap")
	t.Logf("after the positive control (2 k0s ConfigMaps in %s): %v ConfigMap admission requests %v", kubeSystem, n, samples)
	if n != 2 {
		t.Fatalf("want exactly 2 ConfigMap admission requests after the positive control, got %v %v", n, samples)
	}
	if want := `{kind="ConfigMap",operation="CREATE",verdict="allowed",webhook="validate"} 2`; !slices.Contains(samples, want) {
		t.Errorf("want the sample %s, got %v", want, samples)
	}
}

// TestK0sKonnectivityDisabledWarns proves k0s-konnectivity-disabled: a
// worker-config without konnectivity is fine while the only APIService
// backend runs hostNetwork, and warns (naming the APIService, its Service and
// the fix) once that backend runs in the pod network; konnectivity enabled
// silences it.
func TestK0sKonnectivityDisabledWarns(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	b := installK0sBackend(t, "e2e-k0s-metrics-server", "e2e-metrics-server", "metrics.e2e-k0s.apiservice-guard.io")
	const name = "worker-config-default-1.37"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, name) })
	disabled := func(step string) string {
		return workerConfigManifest(name, `{"agentPort":8132}`, step) // k0s omits "enabled" when false
	}

	// The guard sees this backend: with a pod-network pod it warns.
	podA := b.addPod(t, "e2e-k0s-metrics-server-a", false)
	waitKonnectivityWarning(t, disabled("pod-network"), true)
	// Replace it with a hostNetwork pod, then wait for the warning to go:
	// the guard's pod cache applies events in order, so by then it holds the
	// hostNetwork pod, and the apply below is judged against it alone.
	podB := b.addPod(t, "e2e-k0s-metrics-server-b", true)
	deleteNow(t, podA)
	waitKonnectivityWarning(t, disabled("host-network"), false)
	stdout, stderr := k0sApply(t, disabled("host-network"))
	if strings.Contains(stderr, konnectivityWarning) || !strings.Contains(stdout, "configmap/"+name+" created") {
		t.Fatalf("with only a hostNetwork backend: want the worker-config created without a konnectivity warning:\n%s%s", stdout, stderr)
	}

	// Back to the pod network: the API server now needs konnectivity to
	// reach the backend, so the same worker-config warns.
	podC := b.addPod(t, "e2e-k0s-metrics-server-c", false)
	deleteNow(t, podB)
	waitKonnectivityWarning(t, disabled("pod-network-again"), true)
	stdout, stderr = k0sApply(t, disabled("pod-network-again"))
	t.Logf("kubectl apply with a pod-network backend (%s):\n%s", podC.Name, strings.TrimSpace(stderr))
	for _, want := range []string{
		konnectivityWarning + " " + name + ": ",
		b.apiService() + " -> kube-system/" + b.svc + " runs in the pod network",
		"keep konnectivity", "route to the pod CIDR",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("kubectl apply output lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "configmap/"+name+" configured") {
		t.Errorf("a warning must not stop the apply:\n%s", stdout)
	}

	// Konnectivity enabled: nothing to say.
	stdout, stderr = k0sApply(t, workerConfigManifest(name, `{"enabled":true,"agentPort":8132}`, "enabled"))
	if strings.Contains(stderr, konnectivityWarning) || !strings.Contains(stdout, "configmap/"+name+" configured") {
		t.Fatalf("with konnectivity enabled: want no warning:\n%s%s", stdout, stderr)
	}
}

// TestK0sClusterConfigEqualPortsDenied proves k0s-config-invalid on the
// ClusterConfig object: equal konnectivity ports and a field of the wrong
// type are denied, naming the field; distinct ports are created.
func TestK0sClusterConfigEqualPortsDenied(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	const name = "e2e-k0s-ports"
	t.Cleanup(func() { deleteClusterConfig(t, name) })
	ports := func(admin int) string {
		return clusterConfigManifest(name, fmt.Sprintf("konnectivity:\n  agentPort: 8132\n  adminPort: %d\n", admin))
	}

	stderr := k0sDenied(t, ports(8132), "[k0s-config-invalid]", "spec.konnectivity.adminPort")
	t.Logf("equal ports: %s", stderr)
	if _, err := clusterConfigSpec(t, name); !apierrors.IsNotFound(err) {
		t.Fatalf("the denied ClusterConfig exists (err %v)", err)
	}

	if stdout, _ := k0sApply(t, ports(8133)); !strings.Contains(stdout, "clusterconfig.k0s.k0sproject.io/"+name+" created") {
		t.Fatalf("distinct ports: want the ClusterConfig created:\n%s", stdout)
	}
	spec, err := clusterConfigSpec(t, name)
	if err != nil {
		t.Fatal(err)
	}
	if admin, _, _ := unstructured.NestedInt64(spec, "konnectivity", "adminPort"); admin != 8133 {
		t.Errorf("stored adminPort is %d, want 8133", admin)
	}

	// The test CRD has no schema for spec, so a wrong type reaches the guard.
	const typed = "e2e-k0s-types"
	t.Cleanup(func() { deleteClusterConfig(t, typed) })
	stderr = k0sDenied(t, clusterConfigManifest(typed, "network:\n  podCIDR: 12\n"),
		"[k0s-config-invalid]", "spec.network.podCIDR", "must be a string")
	t.Logf("wrong type: %s", stderr)
	if _, err := clusterConfigSpec(t, typed); !apierrors.IsNotFound(err) {
		t.Fatalf("the denied ClusterConfig %s exists (err %v)", typed, err)
	}
}

// TestK0sProviderChangeDenied proves k0s-immutable-network-change, on the
// ClusterConfig object and on a kube-system ConfigMap value holding one: a
// provider change is denied in k0s's words and the stored object keeps the
// old provider.
func TestK0sProviderChangeDenied(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	const kuberouter = "network:\n  provider: kuberouter\n"
	const calico = "network:\n  provider: calico\n  calico:\n    ipAutodetectionMethod: can-reach=10.0.0.1\n"
	const change = "cannot change CNI provider from kuberouter to calico"

	const name = "e2e-k0s-provider"
	t.Cleanup(func() { deleteClusterConfig(t, name) })
	k0sApply(t, clusterConfigManifest(name, kuberouter))
	stderr := k0sDenied(t, clusterConfigManifest(name, calico), "[k0s-immutable-network-change]", change)
	t.Logf("ClusterConfig: %s", stderr)
	spec, err := clusterConfigSpec(t, name)
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedString(spec, "network", "provider"); p != "kuberouter" {
		t.Errorf("stored ClusterConfig provider is %q after the denied change, want kuberouter", p)
	}

	const cmName = "e2e-k0s-provider-config"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, cmName) })
	manifest := func(spec string) string {
		return configMapManifest(kubeSystem, cmName, nil, map[string]string{"k0s.yaml": clusterConfigDocument("k0s", "", spec)})
	}
	k0sApply(t, manifest(kuberouter))
	stderr = k0sDenied(t, manifest(calico), "[k0s-immutable-network-change]", "data[k0s.yaml]: "+change)
	t.Logf("ConfigMap: %s", stderr)
	var cm corev1.ConfigMap
	if err := suite.client.Get(t.Context(), client.ObjectKey{Namespace: kubeSystem, Name: cmName}, &cm); err != nil {
		t.Fatal(err)
	}
	if v := cm.Data["k0s.yaml"]; !strings.Contains(v, "provider: kuberouter") || strings.Contains(v, "calico") {
		t.Errorf("stored ConfigMap value changed by the denied apply:\n%s", v)
	}
}

// TestK0sBadInput proves the guard refuses k0s configuration it cannot read
// (broken YAML, an unknown field, a konnectivity entry that is not JSON) and
// copes with a
// ConfigMap near the 1 MiB limit: answered within the webhook timeout, with
// the guard still ready afterwards.
func TestK0sBadInput(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	const broken = "e2e-k0s-broken-yaml"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, broken) })
	brokenYAML := "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network:\n    provider: kuberouter\n   podCIDR: [10.244.0.0/16\n"
	stderr := k0sDenied(t, configMapManifest(kubeSystem, broken, nil, map[string]string{"k0s.yaml": brokenYAML}),
		"[k0s-config-invalid]", "data[k0s.yaml]: not valid YAML")
	t.Logf("broken YAML: %s", stderr)

	// k0s reads its file strictly: a misspelt section is refused, with its
	// line, although the API server stores any ConfigMap value.
	const typo = "e2e-k0s-typo"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, typo) })
	typoYAML := "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  netwrok:\n    provider: kuberouter\n"
	stderr = k0sDenied(t, configMapManifest(kubeSystem, typo, nil, map[string]string{"k0s.yaml": typoYAML}),
		"[k0s-config-invalid]", "data[k0s.yaml]: k0s refuses unknown fields and duplicate keys: line 4: spec.netwrok: unknown field")
	t.Logf("unknown field: %s", stderr)

	const worker = "worker-config-badinput-1.37"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, worker) })
	stderr = k0sDenied(t, workerConfigManifest(worker, "not json {", ""), "[k0s-config-invalid]", "data[konnectivity]")
	t.Logf("konnectivity not JSON: %s", stderr)

	// ~950 KiB: a valid ClusterConfig whose unknown field holds 14,000
	// entries, in spec.network, where k0s ignores unknown fields (at the
	// top of spec, k0s's strict reading refuses it). calico without ipAutodetectionMethod makes the guard warn: the
	// warning shows the guard answered, since with failurePolicy Ignore a
	// timed-out webhook would let the write through silently.
	const big = "e2e-k0s-big"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, big) })
	var spec strings.Builder
	spec.WriteString("network:\n  provider: calico\n  e2eUnknownField:\n")
	for i := range 14000 {
		fmt.Fprintf(&spec, "    key-%05d: %s\n", i, strings.Repeat("v", 50))
	}
	doc := clusterConfigDocument("k0s", "", spec.String())
	manifest := configMapManifest(kubeSystem, big, nil, map[string]string{"k0s.yaml": doc})
	start := time.Now()
	// create, not apply: apply would copy the value into an annotation,
	// which may not exceed 256 KiB.
	stdout, stderr, err := kubectl(t, manifest, "create", "-f", "-")
	elapsed := time.Since(start)
	t.Logf("%d KiB ConfigMap value: kubectl create took %s", len(doc)/1024, elapsed.Round(time.Millisecond))
	if err != nil || !strings.Contains(stdout, "configmap/"+big+" created") {
		t.Fatalf("want the large ConfigMap created: %v\n%s%s", err, stdout, stderr)
	}
	if len(doc) < 880<<10 {
		t.Fatalf("the document is only %d bytes", len(doc))
	}
	if !strings.Contains(stderr, "Warning: [k0s-calico-autodetect] data[k0s.yaml]: calico without") {
		t.Errorf("no warning from the guard: it did not answer within the webhook timeout:\n%s", stderr)
	}
	if elapsed > 10*time.Second {
		t.Errorf("creating the large ConfigMap took %s", elapsed)
	}
	resp, err := http.Get("http://" + suite.guard.HealthAddr + "/readyz")
	if err != nil {
		t.Fatalf("guard readiness after the large ConfigMap: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("guard /readyz answers %d after the large ConfigMap", resp.StatusCode)
	}
}

// TestK0sAuditModeAllowsAndRecords proves that mode: audit turns the k0s
// Enforce findings into allowed writes recorded as audit annotations and
// PolicyAudit Events, and leaves k0s-konnectivity-disabled a Warn.
func TestK0sAuditModeAllowsAndRecords(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	// Installed before the restart: the restarted guard's cache starts with it.
	b := installK0sBackend(t, "e2e-k0s-audit-metrics", "e2e-audit-metrics-server", "metrics.e2e-k0s-audit.apiservice-guard.io")
	b.addPod(t, "e2e-k0s-audit-metrics-0", false)
	useGuardConfig(t, "mode: audit\n")

	const ports = "e2e-k0s-audit-ports"
	t.Cleanup(func() { deleteClusterConfig(t, ports) })
	if stdout, stderr := k0sApply(t, clusterConfigManifest(ports, "konnectivity:\n  agentPort: 8132\n  adminPort: 8132\n")); strings.Contains(stderr, "Warning: [") {
		t.Errorf("an Audit finding must not warn:\n%s%s", stdout, stderr)
	}
	v := waitAuditAnnotation(t, ports, "k0s-clusterconfigs.apiservice-guard.io/k0s-config-invalid")
	if !strings.Contains(v, "spec.konnectivity.adminPort") {
		t.Errorf("audit annotation %q does not name the field", v)
	}
	waitEvent(t, ports, "PolicyAudit", "[k0s-config-invalid]")

	const provider = "e2e-k0s-audit-provider"
	t.Cleanup(func() { deleteClusterConfig(t, provider) })
	k0sApply(t, clusterConfigManifest(provider, "network:\n  provider: kuberouter\n"))
	k0sApply(t, clusterConfigManifest(provider, "network:\n  provider: calico\n  calico:\n    ipAutodetectionMethod: interface=eth0\n"))
	spec, err := clusterConfigSpec(t, provider)
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedString(spec, "network", "provider"); p != "calico" {
		t.Errorf("stored provider is %q, want calico: audit mode must allow the change", p)
	}
	v = waitAuditAnnotation(t, provider, "k0s-clusterconfigs.apiservice-guard.io/k0s-immutable-network-change")
	if !strings.Contains(v, "cannot change CNI provider from kuberouter to calico") {
		t.Errorf("audit annotation %q does not say what changed", v)
	}
	waitEvent(t, provider, "PolicyAudit", "[k0s-immutable-network-change]")

	// The same through a ConfigMap value: the other webhook's annotation.
	const cmName = "e2e-k0s-audit-config"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, cmName) })
	cmManifest := func(spec string) string {
		return configMapManifest(kubeSystem, cmName, nil, map[string]string{"k0s.yaml": clusterConfigDocument("k0s", "", spec)})
	}
	k0sApply(t, cmManifest("network:\n  podCIDR: 10.244.0.0/16\n"))
	k0sApply(t, cmManifest("network:\n  podCIDR: 10.32.0.0/16\n"))
	v = waitAuditAnnotation(t, cmName, "k0s-configmaps.apiservice-guard.io/k0s-immutable-network-change")
	if !strings.Contains(v, "cannot change podCIDR from 10.244.0.0/16 to 10.32.0.0/16") {
		t.Errorf("audit annotation %q does not say what changed", v)
	}

	// k0s-konnectivity-disabled is a Warn: mode audit leaves it one.
	const worker = "worker-config-audit-1.37"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, worker) })
	stdout, stderr := k0sApply(t, workerConfigManifest(worker, `{"agentPort":8132}`, ""))
	if !strings.Contains(stderr, konnectivityWarning+" "+worker) || !strings.Contains(stdout, "configmap/"+worker+" created") {
		t.Fatalf("want the worker-config created with the konnectivity warning:\n%s%s", stdout, stderr)
	}
	waitEvent(t, worker, "PolicyWarning", "[k0s-konnectivity-disabled] "+worker)
}

// useGuardWithMetrics restarts the guard as suite.StartGuard does, with
// metrics served on a free loopback port, for the rest of the test, and
// returns the metrics URL. The default guard is restored afterwards.
func useGuardWithMetrics(t *testing.T) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	useGuard(t, harness.GuardOptions{Config: defaultConfig, MetricsAddr: addr})
	return "http://" + addr + "/metrics"
}

// admissionRequests scrapes the guard's metrics and returns the sum of
// apiservice_guard_admission_requests_total over the samples of kind, and
// those samples as `{kind="...",operation="...",verdict="...",webhook="..."} value`.
func admissionRequests(t *testing.T, url, kind string) (float64, []string) {
	t.Helper()
	return webhookRequests(t, url, kind, "")
}

// webhookRequests is admissionRequests of one webhook (validate, mutate;
// "" for both).
func webhookRequests(t *testing.T, url, kind, webhook string) (float64, []string) {
	t.Helper()
	families, err := harness.ScrapeMetrics(url)
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	var samples []string
	for _, m := range families[admissionRequestsMetric].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["kind"] != kind || webhook != "" && labels["webhook"] != webhook {
			continue
		}
		v := m.GetCounter().GetValue()
		total += v
		samples = append(samples, fmt.Sprintf(`{kind=%q,operation=%q,verdict=%q,webhook=%q} %v`,
			labels["kind"], labels["operation"], labels["verdict"], labels["webhook"], v))
	}
	slices.Sort(samples)
	return total, samples
}

// ordinaryConfigMap is the i-th ConfigMap no k0s rule is about, in one of
// five shapes: plain data; YAML that is not k0s (kubeadm's
// ClusterConfiguration); Helm-managed; kube-proxy-like; and near misses of
// k0s's own labels and worker-config names.
func ordinaryConfigMap(ns string, i int) *corev1.ConfigMap {
	name := fmt.Sprintf("e2e-ordinary-%03d", i)
	var labels, data map[string]string
	switch i % 5 {
	case 0:
		data = map[string]string{"greeting": "hello", "index": fmt.Sprint(i)}
	case 1:
		data = map[string]string{"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n" +
			"networking:\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n"}
	case 2:
		labels = map[string]string{"app.kubernetes.io/managed-by": "helm", "app.kubernetes.io/component": "worker-config"}
		data = map[string]string{"values.yaml": "replicaCount: 2\nkonnectivity:\n  enabled: false\n"}
	case 3:
		name = fmt.Sprintf("kube-proxy-e2e-%03d", i)
		labels = map[string]string{"app": "kube-proxy"}
		data = map[string]string{"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" +
			"clusterCIDR: 10.244.0.0/16\nmode: iptables\n"}
	case 4:
		name = fmt.Sprintf("worker-configuration-%03d", i)
		labels = map[string]string{"app.kubernetes.io/managed-by": "k0s", "app.kubernetes.io/component": "konnectivity-agent"}
		data = map[string]string{"konnectivity": `{"agentPort":8132}`}
	}
	cm := configMap(ns, name, labels, data)
	cm.Labels[k0sTestLabel] = "ordinary"
	return cm
}

// k0sLookAlike is exactly what the k0s-configmaps webhook reviews in
// kube-system: a worker-config name, k0s's labels and a ClusterConfig value.
func k0sLookAlike(ns string) *corev1.ConfigMap {
	cm := configMap(ns, "worker-config-default-1.37", k0sWorkerLabels, map[string]string{
		"konnectivity": `{"agentPort":8132}`,
		"k0s.yaml":     clusterConfigDocument("k0s", "", "network:\n  provider: kuberouter\n"),
	})
	cm.Labels[k0sTestLabel] = "ordinary"
	return cm
}

// configMap builds a ConfigMap; labels are copied.
func configMap(ns, name string, labels, data map[string]string) *corev1.ConfigMap {
	l := map[string]string{}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
		Data:       data,
	}
}

// configMapManifest is configMap as YAML, for kubectl.
func configMapManifest(ns, name string, labels, data map[string]string) string {
	out, err := yaml.Marshal(configMap(ns, name, labels, data))
	if err != nil {
		panic(err)
	}
	return string(out)
}

// workerConfigManifest is a k0s worker-config ConfigMap in kube-system with
// the given konnectivity entry. step, when set, is recorded in an
// annotation so that successive applies differ.
func workerConfigManifest(name, konnectivity, step string) string {
	cm := configMap(kubeSystem, name, k0sWorkerLabels, map[string]string{
		"konnectivity":       konnectivity,
		"apiServerAddresses": `["127.0.0.1:6443"]`,
	})
	if step != "" {
		cm.Annotations = map[string]string{k0sStepAnnotation: step}
	}
	out, err := yaml.Marshal(cm)
	if err != nil {
		panic(err)
	}
	return string(out)
}

// clusterConfigDocument is a k0s ClusterConfig document (a k0s.yaml, or a
// manifest when namespace is set); spec is YAML indented as at top level.
func clusterConfigDocument(name, namespace, spec string) string {
	var b strings.Builder
	b.WriteString("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: " + name + "\n")
	if namespace != "" {
		b.WriteString("  namespace: " + namespace + "\n")
	}
	b.WriteString("spec:\n")
	for line := range strings.Lines(spec) {
		b.WriteString("  " + line)
	}
	return b.String()
}

// clusterConfigManifest is a ClusterConfig object in kube-system, for kubectl.
func clusterConfigManifest(name, spec string) string {
	return clusterConfigDocument(name, kubeSystem, spec)
}

// clusterConfigSpec reads a kube-system ClusterConfig's stored spec.
func clusterConfigSpec(t *testing.T, name string) (map[string]any, error) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("k0s.k0sproject.io/v1beta1")
	u.SetKind("ClusterConfig")
	if err := suite.client.Get(t.Context(), client.ObjectKey{Namespace: kubeSystem, Name: name}, u); err != nil {
		return nil, err
	}
	spec, _, err := unstructured.NestedMap(u.Object, "spec")
	return spec, err
}

// deleteClusterConfig deletes a kube-system ClusterConfig, if it exists.
func deleteClusterConfig(t *testing.T, name string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("k0s.k0sproject.io/v1beta1")
	u.SetKind("ClusterConfig")
	u.SetNamespace(kubeSystem)
	u.SetName(name)
	deleteNow(t, u)
}

// deleteConfigMap deletes a ConfigMap, if it exists.
func deleteConfigMap(t *testing.T, ns, name string) {
	t.Helper()
	deleteNow(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
}

// deleteNow deletes obj; a missing object is fine. It works in Cleanup too.
func deleteNow(t *testing.T, obj client.Object) {
	t.Helper()
	if err := suite.client.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting %T %s: %v", obj, obj.GetName(), err)
	}
}

// k0sApply runs kubectl apply with manifest, which must succeed.
func k0sApply(t *testing.T, manifest string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := kubectl(t, manifest, append([]string{"apply", "-f", "-"}, args...)...)
	if err != nil {
		t.Fatalf("kubectl apply %v: %v\n%s%s\nmanifest:\n%s", args, err, stdout, stderr, manifest)
	}
	return stdout, stderr
}

// k0sDenied runs kubectl apply with manifest, which the guard must deny
// with every one of wants in the message. It returns the denial, from
// "admission webhook" on (kubectl prints the whole patch before it).
func k0sDenied(t *testing.T, manifest string, wants ...string) string {
	t.Helper()
	stdout, stderr, err := kubectl(t, manifest, "apply", "-f", "-")
	if err == nil {
		t.Fatalf("kubectl apply should have been denied:\n%s%s\nmanifest:\n%s", stdout, stderr, manifest)
	}
	for _, want := range append([]string{"denied the request", "apiservice-guard:"}, wants...) {
		if !strings.Contains(stderr, want) {
			t.Errorf("denial lacks %q:\n%s", want, stderr)
		}
	}
	if i := strings.LastIndex(stderr, "admission webhook "); i >= 0 {
		return strings.TrimSpace(stderr[i:])
	}
	return stderr
}

// waitKonnectivityWarning applies manifest with --dry-run=server until the
// k0s-konnectivity-disabled warning is there (want) or not: the guard's
// cache is eventually consistent.
func waitKonnectivityWarning(t *testing.T, manifest string, want bool) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, stderr := k0sApply(t, manifest, "--dry-run=server")
		last = stderr
		return strings.Contains(stderr, konnectivityWarning) == want, nil
	})
	if err != nil {
		t.Fatalf("dry-run apply: want konnectivity warning %v, last output:\n%s", want, last)
	}
}

// k0sBackend is a metrics-server-like APIService backend in kube-system:
// a Service (443 -> 10250) selecting its pods, and the APIService
// v1beta1.<group> pointing at it. No kubelet runs here: pods stay pending,
// but the rules read only their spec.
type k0sBackend struct {
	svc, app, group string
}

func (b k0sBackend) apiService() string { return "v1beta1." + b.group }

// installK0sBackend creates the Service and the APIService; they are
// deleted at the end of the test.
func installK0sBackend(t *testing.T, svc, app, group string) k0sBackend {
	t.Helper()
	b := k0sBackend{svc: svc, app: app, group: group}
	port := int32(443)
	create(t,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: svc, Namespace: kubeSystem}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(10250)}},
		}},
		&apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: b.apiService()}, Spec: apiregv1.APIServiceSpec{
			Group: group, Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100, InsecureSkipTLSVerify: true,
			Service: &apiregv1.ServiceReference{Namespace: kubeSystem, Name: svc, Port: &port},
		}})
	return b
}

// addPod creates a backend pod, hostNetwork or in the pod network; it is
// deleted at the end of the test.
func (b k0sBackend) addPod(t *testing.T, name string, hostNetwork bool) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeSystem, Labels: map[string]string{"app": b.app}},
		Spec: corev1.PodSpec{
			HostNetwork: hostNetwork,
			Containers: []corev1.Container{{Name: "metrics-server", Image: "metrics-server",
				Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 10250}}}},
		},
	}
	create(t, pod)
	return pod
}
