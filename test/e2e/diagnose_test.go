package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/test/adapter"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// diagnoseUser is a user bound only to the ClusterRole and the kube-system
// Role of manifests/diagnose: diagnose must work with exactly that access.
var diagnoseUser = sync.OnceValues(func() (string, error) {
	out, err := suite.KubectlCommand(context.Background(), "apply", "-f", repoPath("manifests", "diagnose", "clusterrole.yaml")).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("applying the diagnose ClusterRole: %w\n%s", err, out)
	}
	for _, bind := range [][]string{
		{"create", "clusterrolebinding", "e2e-diagnose", "--clusterrole=apiservice-guard-diagnose", "--user=e2e-diagnose"},
		{"-n", "kube-system", "create", "rolebinding", "e2e-diagnose", "--role=apiservice-guard-diagnose", "--user=e2e-diagnose"},
	} {
		out, err = suite.KubectlCommand(context.Background(), bind...).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "already exists") {
			return "", fmt.Errorf("binding it: %w\n%s", err, out)
		}
	}
	return suite.UserKubeconfig("e2e-diagnose")
})

// diagnose runs `apiservice-guard diagnose` as a user with the diagnose
// ClusterRole and Role only, and returns its exit code and output.
func diagnose(t *testing.T, args ...string) (int, string) {
	t.Helper()
	kubeconfig, err := diagnoseUser()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, suite.guardBin, append([]string{"diagnose", "--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("diagnose: %v\n%s", err, out)
	return 0, ""
}

// wantCause runs diagnose on name and checks that it exits 1 with a cause
// naming want first.
func wantCause(t *testing.T, name, want string) {
	t.Helper()
	start := time.Now()
	code, out := diagnose(t, name)
	took := time.Since(start)
	t.Logf("diagnose %s (%s):\n%s", name, took.Round(time.Millisecond), out)

	lines := strings.Split(out, "\n")
	if code != 1 || len(lines) < 3 || !strings.Contains(lines[0], "UNAVAILABLE") || !strings.HasPrefix(strings.TrimSpace(lines[1]), "Cause:") ||
		!strings.Contains(lines[1], want) || !strings.HasPrefix(strings.TrimSpace(lines[2]), "Fix:") {
		t.Fatalf("diagnose %s: exit %d, want 1 with the cause %q first", name, code, want)
	}
}

// wantAvailable waits for the aggregator's Available=True, then checks that
// diagnose exits 0.
func wantAvailable(t *testing.T, name string) {
	t.Helper()
	waitAvailable(t, name, apiregv1.ConditionTrue, "", "")
	if code, out := diagnose(t, name); code != 0 || !strings.Contains(out, ": Available") {
		t.Fatalf("diagnose %s after the fix: exit %d\n%s", name, code, out)
	}
}

// staleCABundle starts an adapter for the group <name>.e2e.apiservice-guard.io
// in namespace e2e-<name> behind an APIService whose caBundle is another
// CA's, and waits for the aggregator's FailedDiscoveryCheck.
func staleCABundle(t *testing.T, name string) (*adapter.Adapter, *apiregv1.APIService) {
	t.Helper()
	a := startAdapter(t, name+".e2e.apiservice-guard.io", "v1", "e2e-"+name, "adapter")
	other, err := certs.NewCA("some-other-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ns, svc, api := a.Objects(other.CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "x509")
	return a, api
}

// TestDiagnoseWrongCABundle: the aggregator fails discovery on a caBundle
// from another CA; diagnose names the caBundle first, and after the printed
// fix (the right CA) the APIService is Available and diagnose exits 0.
func TestDiagnoseWrongCABundle(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a, api := staleCABundle(t, "diag-ca")
	// diagnose does not dial the backend (--backend-dial=none): the
	// aggregator's x509 error is the evidence.
	wantCause(t, api.Name, "the APIService's caBundle does not trust the backend's serving certificate")

	if err := setCABundle(t.Context(), api.Name, a.CA().CertPEM()); err != nil {
		t.Fatal(err)
	}
	wantAvailable(t, api.Name)
}

// TestDiagnoseServiceMissing: an APIService whose Service does not exist.
func TestDiagnoseServiceMissing(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "diag-svc.e2e.apiservice-guard.io", "v1", "e2e-diag-svc", "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, api)
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "ServiceNotFound", "")
	wantCause(t, api.Name, "Service e2e-diag-svc/adapter does not exist")

	create(t, svc)
	wantAvailable(t, api.Name)
}

// TestDiagnoseAdapterDown: nothing listens behind the Service.
func TestDiagnoseAdapterDown(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	api, a := adapterDown(t, "diag-down")
	wantCause(t, api.Name, "connection refused")

	// The fix: the adapter up again.
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	wantAvailable(t, api.Name)
}

// adapterDown starts an adapter for <name>.e2e.apiservice-guard.io in
// namespace e2e-<name>, waits for its APIService to be Available, stops
// it, and waits for the aggregator to notice.
func adapterDown(t *testing.T, name string) (*apiregv1.APIService, *adapter.Adapter) {
	t.Helper()
	a := startAdapter(t, name+".e2e.apiservice-guard.io", "v1", "e2e-"+name, "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")
	a.Close()
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "")
	return api, a
}

// TestDiagnoseUsage: a name that does not exist, or a bad -o, is exit 2.
func TestDiagnoseUsage(t *testing.T) {
	if code, out := diagnose(t, "v1.no-such.example.com"); code != 2 || !strings.Contains(out, "not found") {
		t.Errorf("unknown name: exit %d\n%s", code, out)
	}
	if code, out := diagnose(t, "-o", "yaml"); code != 2 || !strings.Contains(out, "want text or json") {
		t.Errorf("-o yaml: exit %d\n%s", code, out)
	}
	if code, out := diagnose(t, "--backend-dial", "socks5://127.0.0.1:1080"); code != 2 || !strings.Contains(out, "--backend-dial") {
		t.Errorf("--backend-dial socks5: exit %d\n%s", code, out)
	}
}

// TestDiagnoseAsKubectlPlugin: installed as kubectl-apiservice_guard on
// the PATH (README), `kubectl apiservice-guard diagnose` runs it, with
// kubectl's exit code.
func TestDiagnoseAsKubectlPlugin(t *testing.T) {
	kubeconfig, err := diagnoseUser()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(suite.guardBin, filepath.Join(bin, "kubectl-apiservice_guard")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), suite.Kubectl, "apiservice-guard", "diagnose", "v1.no-such.example.com")
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `APIService "v1.no-such.example.com" not found`) {
		t.Fatalf("kubectl apiservice-guard diagnose: %v\n%s", err, out)
	}
	cmd = exec.CommandContext(t.Context(), suite.Kubectl, "apiservice-guard", "diagnose", "--all", "-o", "json")
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
	if out, err := cmd.Output(); (err != nil && !errors.As(err, &ee)) || !strings.HasPrefix(string(out), `{"diagnoses":[`) {
		t.Fatalf("kubectl apiservice-guard diagnose --all -o json: %v\n%s", err, out)
	}
}

// TestDiagnoseForbidden: the adapter answers 403, as one that cannot
// authenticate the API server's requests does (no auth delegation).
func TestDiagnoseForbidden(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "diag-403.e2e.apiservice-guard.io", "v1", "e2e-diag-403", "adapter")
	a.AnswerWith(403)
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "403")
	wantCause(t, api.Name, "auth delegation")

	a.AnswerWith(0) // the adapter, given its RBAC, authenticates again
	wantAvailable(t, api.Name)
}

// TestDiagnoseStaleAPIService: the backend's namespace was deleted; the fix
// is deleting the APIService, after which nothing is unavailable.
func TestDiagnoseStaleAPIService(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	port := int32(443)
	api := &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1.diag-stale.e2e.apiservice-guard.io"}, Spec: apiregv1.APIServiceSpec{
		Group: "diag-stale.e2e.apiservice-guard.io", Version: "v1", GroupPriorityMinimum: 100, VersionPriority: 100, InsecureSkipTLSVerify: true,
		Service: &apiregv1.ServiceReference{Namespace: "e2e-diag-gone", Name: "adapter", Port: &port}}}
	create(t, api)
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "ServiceNotFound", "")
	wantCause(t, api.Name, "namespace e2e-diag-gone is gone")

	if out, stderr, err := kubectl(t, "", "delete", "apiservice", api.Name); err != nil {
		t.Fatalf("the printed fix: %v\n%s%s", err, out, stderr)
	}
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		code, out := diagnose(t)
		return code == 0 || !strings.Contains(out, api.Name), nil
	})
	if err != nil {
		code, out := diagnose(t)
		t.Fatalf("after deleting the stale APIService, diagnose exits %d:\n%s", code, out)
	}
}

// TestAutomaticDiagnosis: serve diagnoses an APIService the aggregator has
// found unavailable for 30 s: a Warning Event with the cause and fix, and
// the diagnosis metric; the fix clears it.
func TestAutomaticDiagnosis(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	useGuard(t, harness.GuardOptions{Config: defaultConfig, MetricsAddr: metricsAddr})
	a, api := staleCABundle(t, "diag-auto")
	start := time.Now()
	ev := waitEventWithin(t, 90*time.Second, api.Name, "AuditFinding", "[apiservice-diagnosis]")
	t.Logf("diagnosis Event after %s: %s", time.Since(start).Round(time.Second), ev.Note)
	if !strings.Contains(ev.Note, "caBundle does not verify") || !strings.Contains(ev.Note, "Fix: set caBundle to") {
		t.Errorf("the diagnosis Event does not name the cause and the fix: %s", ev.Note)
	}
	want := `apiservice_guard_apiservice_diagnosis{apiservice="` + api.Name + `",cause="apiservice-cabundle-mismatch"} 1`
	if m := scrape(t, "http://"+metricsAddr+"/metrics"); !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}

	if err := setCABundle(t.Context(), api.Name, a.CA().CertPEM()); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")
	waitEventWithin(t, 30*time.Second, api.Name, "AuditFindingCleared", "[apiservice-diagnosis]")
	if m := scrape(t, "http://"+metricsAddr+"/metrics"); strings.Contains(m, `apiservice_guard_apiservice_diagnosis{apiservice="`+api.Name+`"`) {
		t.Errorf("the diagnosis metric stays after the fix")
	}
}

// waitEventWithin waits up to timeout for an Event about name with reason
// and a note containing text.
func waitEventWithin(t *testing.T, timeout time.Duration, name, reason, text string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := suite.client.List(ctx, &list); err != nil {
			return false, nil
		}
		for _, ev := range list.Items {
			if ev.Regarding.Name == name && ev.Reason == reason && strings.Contains(ev.Note, text) {
				found = ev
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no Event for %s with reason %s and note containing %q within %s", name, reason, text, timeout)
	}
	return found
}

// TestDiagnoseHangingAdapter: the adapter takes the connection and never
// answers; the aggregator times out.
func TestDiagnoseHangingAdapter(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	// The user is set up with kubectl, whose discovery would wait for the
	// hanging group: before it hangs.
	if _, err := diagnoseUser(); err != nil {
		t.Fatal(err)
	}
	a := startAdapter(t, "diag-hang.e2e.apiservice-guard.io", "v1", "e2e-diag-hang", "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")
	a.Hang(true)
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "")
	wantCause(t, api.Name, "timed out")

	a.Hang(false)
	wantAvailable(t, api.Name)
}

// TestDiagnoseServingCertWithoutSAN: the adapter's certificate, from the
// right CA, does not name <svc>.<ns>.svc, which the aggregator checks.
func TestDiagnoseServingCertWithoutSAN(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "diag-san.e2e.apiservice-guard.io", "v1", "e2e-diag-san", "adapter")
	wrong, err := a.CA().IssueServing([]string{"adapter.example.com"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Serve(a.CA(), wrong); err != nil {
		t.Fatal(err)
	}
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "x509")
	wantCause(t, api.Name, a.DNSName())

	right, err := a.CA().IssueServing([]string{a.DNSName()}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Serve(a.CA(), right); err != nil {
		t.Fatal(err)
	}
	wantAvailable(t, api.Name)
}
