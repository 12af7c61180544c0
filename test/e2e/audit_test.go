package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	networkingv1 "k8s.io/api/networking/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// reportAPI is what the test reads of one report API: its kinds.
type reportAPI struct {
	name                string
	namespaced, cluster schema.GroupVersionKind
	clusterResource     string // for kubectl get
}

var reportAPIs = []reportAPI{
	{"openreports", schema.GroupVersionKind{Group: "openreports.io", Version: "v1alpha1", Kind: "Report"},
		schema.GroupVersionKind{Group: "openreports.io", Version: "v1alpha1", Kind: "ClusterReport"}, "clusterreports"},
	{"wgpolicyk8s", schema.GroupVersionKind{Group: "wgpolicyk8s.io", Version: "v1alpha2", Kind: "PolicyReport"},
		schema.GroupVersionKind{Group: "wgpolicyk8s.io", Version: "v1alpha2", Kind: "ClusterPolicyReport"}, "clusterpolicyreports"},
}

// installReportCRDs installs the test copies of both report APIs' CRDs for
// one test, and removes them (and every report) afterwards.
func installReportCRDs(t *testing.T) {
	t.Helper()
	opts := envtest.CRDInstallOptions{Paths: []string{repoPath("test", "crds", "reports", "openreports"), repoPath("test", "crds", "reports", "wgpolicyk8s")},
		ErrorIfPathMissing: true}
	crds, err := envtest.InstallCRDs(suite.Env.Config, opts)
	if err != nil {
		t.Fatalf("installing the report CRDs: %v", err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(suite.Env.Config, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
			t.Errorf("removing the report CRDs: %v", err)
		}
	})
}

// TestAuditReportsWhatAlreadyExists: a cluster broken while the guard was
// away (a default-deny in front of an adapter, a stale caBundle the real
// aggregator fails discovery on, a k0s worker-config with konnectivity off)
// is reported within 30 s of the guard's
// start, in reports and Events, with the fixes; a repair turns its result
// to pass within 15 s, and a deleted object loses its report. Once with the
// OpenReports API and once with wgpolicyk8s.
func TestAuditReportsWhatAlreadyExists(t *testing.T) {
	installReportCRDs(t)
	for _, api := range reportAPIs {
		t.Run(api.name, func(t *testing.T) { auditScenario(t, api) })
	}
}

func auditScenario(t *testing.T, rapi reportAPI) {
	dumpGuardLogsOnFailure(t)
	ctx := t.Context()
	// The damage is done while no webhook is there to stop it.
	withoutWebhook(t)
	b := backend{ns: "e2e-audit-" + rapi.name, svc: "adapter", podPort: 6443, podIP: "10.244.3.7",
		labels: map[string]string{"app": "audit-adapter"}}
	b.install(t, "audit-"+rapi.name+".e2e.apiservice-guard.io")
	t.Cleanup(func() {
		_, _, _ = kubectl(t, "", "delete", "networkpolicy", "--all", "-n", b.ns, "--ignore-not-found")
	})
	if out, stderr, err := kubectl(t, policy("default-deny", b.ns, "  ingress: []\n"), "apply", "-f", "-"); err != nil {
		t.Fatalf("default-deny: %v\n%s%s", err, out, stderr)
	}
	var deny networkingv1.NetworkPolicy
	if err := suite.client.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: "default-deny"}, &deny); err != nil {
		t.Fatal(err)
	}

	a := startAdapter(t, "stale-"+rapi.name+".e2e.apiservice-guard.io", "v1", "e2e-stale-"+rapi.name, "adapter")
	other, err := certs.NewCA("stale-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ns, svc, stale := a.Objects(other.CertPEM())
	create(t, ns, svc, stale)
	waitAvailable(t, stale.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "x509")

	// A k0s worker-config with konnectivity off, while a backend runs in
	// the pod network.
	kb := installK0sBackend(t, "audit-ms-"+rapi.name, "audit-ms-"+rapi.name, "audit-k0s-"+rapi.name+".e2e.apiservice-guard.io")
	kb.addPod(t, "audit-ms-"+rapi.name+"-0", false)
	worker := "worker-config-audit" + strings.ReplaceAll(rapi.name, "k8s", "") + "-1.37"
	t.Cleanup(func() { deleteConfigMap(t, kubeSystem, worker) })
	if out, stderr, err := kubectl(t, workerConfigManifest(worker, `{"agentPort":8132}`, ""), "apply", "-f", "-"); err != nil {
		t.Fatalf("worker-config: %v\n%s%s", err, out, stderr)
	}
	var workerCM corev1.ConfigMap
	if err := suite.client.Get(ctx, client.ObjectKey{Namespace: kubeSystem, Name: worker}, &workerCM); err != nil {
		t.Fatal(err)
	}

	// The guard arrives.
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	useGuard(t, harness.GuardOptions{Config: defaultConfig, MetricsAddr: metricsAddr,
		ExtraArgs: []string{"--audit-interval", "1m", "--report-api", rapi.name}})

	denyReport := reportOf(rapi.namespaced, b.ns, string(deny.UID))
	waitResult(t, denyReport, 30*time.Second, "networkpolicy-blocks-apiservice", "fail", "cannot reach pod "+b.ns+"/adapter-0 on 6443/TCP")
	staleReport := reportOf(rapi.cluster, "", string(stale.UID))
	waitResult(t, staleReport, 30*time.Second, "apiservice-cabundle-mismatch", "", "")
	waitResult(t, reportOf(rapi.namespaced, kubeSystem, string(workerCM.UID)), 30*time.Second, "k0s-konnectivity-disabled", "warn", "konnectivity is off")
	waitEvent(t, "default-deny", "AuditFinding", "[networkpolicy-blocks-apiservice]")
	t.Cleanup(func() {
		if t.Failed() {
			var list eventsv1.EventList
			_ = suite.client.List(context.Background(), &list)
			for _, ev := range list.Items {
				if strings.Contains(ev.Regarding.Name, "stale") {
					t.Logf("event %s/%s %s %s: %s", ev.Namespace, ev.Name, ev.Regarding.Name, ev.Reason, ev.Note)
				}
			}
		}
	})
	waitEvent(t, stale.Name, "AuditFinding", "[apiservice-cabundle-mismatch]")

	out, stderr, err := kubectl(t, "", "get", rapi.clusterResource)
	if err != nil || !strings.Contains(out, "PASS") || !strings.Contains(out, "FAIL") || !strings.Contains(out, string(stale.UID)) {
		t.Errorf("kubectl get %s: %v\n%s%s", rapi.clusterResource, err, out, stderr)
	}
	t.Logf("kubectl get %s:\n%s", rapi.clusterResource, out)

	// The metrics say the same.
	metrics := scrape(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		`apiservice_guard_audit_findings{action="Enforce",rule="networkpolicy-blocks-apiservice"}`,
		`apiservice_guard_apiservice_available{apiservice="` + stale.Name + `"} 0`,
		`apiservice_guard_audit_report_api{api="` + rapi.name + `"} 1`,
		"apiservice_guard_audit_last_run_timestamp_seconds ",
		"apiservice_guard_audit_scan_duration_seconds_count ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The repair: allow the control plane on the pod port.
	allow := policy("allow-control-plane", b.ns, fmt.Sprintf("  ingress: [{from: [{ipBlock: {cidr: %q}}], ports: [{port: 6443}]}]\n", apiServerCIDR(t)))
	if out, stderr, err := kubectl(t, allow, "apply", "-f", "-"); err != nil {
		t.Fatalf("allow: %v\n%s%s", err, out, stderr)
	}
	waitResult(t, denyReport, 15*time.Second, "networkpolicy-blocks-apiservice", "pass", "")
	waitEvent(t, "default-deny", "AuditFindingCleared", "[networkpolicy-blocks-apiservice]")

	// A deleted object loses its report.
	if out, stderr, err := kubectl(t, "", "delete", "networkpolicy", "default-deny", "-n", b.ns); err != nil {
		t.Fatalf("delete: %v\n%s%s", err, out, stderr)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := denyReport.get(ctx)
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the report of the deleted default-deny is still there after 15s")
	}
}

// report names one report.
type report struct {
	gvk             schema.GroupVersionKind
	namespace, name string
}

func reportOf(gvk schema.GroupVersionKind, namespace, name string) report {
	return report{gvk, namespace, name}
}

func (r report) get(ctx context.Context) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(r.gvk)
	return u, suite.client.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: r.name}, u)
}

// waitResult waits until the report has a result of rule with the outcome
// (any outcome but pass when empty), whose message contains text, and
// checks that a failing result carries its fix.
func waitResult(t *testing.T, r report, timeout time.Duration, rule, outcome, text string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		u, err := r.get(ctx)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		results, _, _ := unstructured.NestedSlice(u.Object, "results")
		last = fmt.Sprint(results)
		for _, item := range results {
			res, _ := item.(map[string]any)
			got, _ := res["result"].(string)
			msg, _ := res["message"].(string)
			if res["rule"] != rule || (outcome != "" && got != outcome) || (outcome == "" && got == "pass") || !strings.Contains(msg, text) {
				continue
			}
			if got != "pass" {
				if fix, _, _ := unstructured.NestedString(res, "properties", "fix"); fix == "" {
					t.Errorf("%s result of %s has no fix: %v", got, rule, res)
				}
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%s %s/%s: no %q result %q (message with %q) within %s; last: %s", r.gvk.Kind, r.namespace, r.name, rule, outcome, text, timeout, last)
	}
}

// scrape returns the text of a metrics endpoint.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// TestOneReplicaAudits: of two guards, only the holder of the leader Lease
// audits (and syncs caBundles); both serve admission. When the leader
// stops, the other takes over.
func TestOneReplicaAudits(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	const starting = `"msg":"audit starting"`
	// The suite's guard is the leader: restart it so that its log is new
	// and it holds the Lease before the second one starts.
	useGuard(t, harness.GuardOptions{Config: defaultConfig})
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(suite.guard.Logs(), starting), nil
	})
	if err != nil {
		t.Fatalf("the first guard did not start its audit:\n%s", suite.guard.Logs())
	}

	dir := t.TempDir()
	writeServingCert(t, dir)
	second, err := suite.StartGuardWith(harness.GuardOptions{
		Bin: suite.guardBin, Config: defaultConfig, CertDir: dir, Port: freePort(t), Kubeconfig: suite.GuardKubeconfig,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop() })
	// Ready (it serves admission), and not auditing while the first leads.
	time.Sleep(3 * time.Second)
	if strings.Contains(second.Logs(), starting) {
		t.Fatalf("the second guard audits while the first holds the Lease:\n%s", second.Logs())
	}

	_ = suite.guard.Stop() // releases the Lease; useGuard's cleanup restores it
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(second.Logs(), starting), nil
	})
	if err != nil {
		t.Fatalf("the second guard did not take over the audit after the first stopped:\n%s", second.Logs())
	}
}
