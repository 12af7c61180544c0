package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/certs"
)

// TestCorrectCABundleIsAllowedAndAvailable: the happy path is not in the way.
func TestCorrectCABundleIsAllowedAndAvailable(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "good.e2e.apiservice-guard.io", "v1", "e2e-good", "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")
}

// TestWrongCABundleIsDeniedAndWouldBreakDiscovery: a caBundle from another
// CA is denied while the guard enforces; without the guard the same change
// makes the real aggregator report FailedDiscoveryCheck.
func TestWrongCABundleIsDeniedAndWouldBreakDiscovery(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "wrongca.e2e.apiservice-guard.io", "v1", "e2e-wrongca", "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")

	other, err := certs.NewCA("some-other-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	err = setCABundle(t.Context(), api.Name, other.CertPEM())
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "[apiservice-cabundle-mismatch]") {
		t.Fatalf("want the update denied by apiservice-cabundle-mismatch, got: %v", err)
	}
	if c, _ := availableCondition(t.Context(), api.Name); c.Status != apiregv1.ConditionTrue {
		t.Fatalf("after the denied update the APIService should still be Available, is %s", describe(c))
	}

	withoutWebhook(t)
	if err := setCABundle(t.Context(), api.Name, other.CertPEM()); err != nil {
		t.Fatalf("without the guard the update should pass: %v", err)
	}
	waitAvailable(t, api.Name, apiregv1.ConditionFalse, "FailedDiscoveryCheck", "x509: certificate signed by unknown authority")
}

// TestKubectlApplyShowsInsecureSkipTLSWarning: Warn findings reach kubectl.
func TestKubectlApplyShowsInsecureSkipTLSWarning(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "insecure.e2e.apiservice-guard.io", "v1", "e2e-insecure", "adapter")
	ns, svc, api := a.Objects(nil)
	create(t, ns, svc)
	api.Spec.InsecureSkipTLSVerify = true
	api.APIVersion, api.Kind = "apiregistration.k8s.io/v1", "APIService"
	manifest, err := yaml.Marshal(api)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.client.Delete(context.Background(), api) })
	stdout, stderr, err := kubectl(t, string(manifest), "apply", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "Warning: [apiservice-insecure-skip-tls] ") {
		t.Fatalf("kubectl output lacks the warning:\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	if !strings.Contains(stdout, "apiservice.apiregistration.k8s.io/"+api.Name+" created") {
		t.Fatalf("kubectl did not create the APIService:\n%s", stdout)
	}
}

// TestAuditModeAllowsAndRecords: with mode: audit the bad caBundle goes
// through, and both the Event and the audit annotation are recorded.
func TestAuditModeAllowsAndRecords(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "audit.e2e.apiservice-guard.io", "v1", "e2e-audit", "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")

	useGuardConfig(t, "mode: audit\n")
	other, err := certs.NewCA("audit-other-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := setCABundle(t.Context(), api.Name, other.CertPEM()); err != nil {
		t.Fatalf("audit mode must allow the update: %v", err)
	}
	ev := waitEvent(t, api.Name, "PolicyAudit", "[apiservice-cabundle-mismatch]")
	if ev.Regarding.Kind != "APIService" {
		t.Errorf("event regards %s, want APIService", ev.Regarding.Kind)
	}
	v := waitAuditAnnotation(t, api.Name, "apiservices.apiservice-guard.io/apiservice-cabundle-mismatch")
	if !strings.Contains(v, "caBundle does not verify") {
		t.Errorf("audit annotation value %q does not explain the finding", v)
	}
}

// setCABundle replaces the caBundle of an APIService with a full Update.
func setCABundle(ctx context.Context, name string, bundle []byte) error {
	var api apiregv1.APIService
	if err := suite.client.Get(ctx, client.ObjectKey{Name: name}, &api); err != nil {
		return err
	}
	api.Spec.CABundle = bundle
	api.Spec.InsecureSkipTLSVerify = false
	return suite.client.Update(ctx, &api)
}

// withoutWebhook removes the guard's validating webhook configuration for
// the rest of the test and reinstalls it afterwards.
func withoutWebhook(t *testing.T) {
	t.Helper()
	hooks := suite.Env.WebhookInstallOptions.ValidatingWebhooks
	for _, h := range hooks {
		if err := suite.client.Delete(t.Context(), h.DeepCopy()); err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("removing webhook %s: %v", h.Name, err)
		}
	}
	t.Cleanup(func() {
		for _, h := range hooks {
			c := h.DeepCopy()
			c.ResourceVersion = ""
			if err := suite.client.Create(context.Background(), c); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Errorf("reinstalling webhook %s: %v", h.Name, err)
			}
		}
	})
}

// waitEvent waits for an events.k8s.io Event about the named object with the
// reason and a note containing text.
func waitEvent(t *testing.T, name, reason, text string) eventsv1.Event {
	t.Helper()
	return waitEventWithin(t, 30*time.Second, name, reason, text)
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	ObjectRef struct {
		Resource string `json:"resource"`
		Name     string `json:"name"`
	} `json:"objectRef"`
	Annotations map[string]string `json:"annotations"`
}

// waitAuditAnnotation waits for an audit log entry about the named object
// carrying the annotation key, and returns the annotation's value.
func waitAuditAnnotation(t *testing.T, name, key string) string {
	t.Helper()
	var value string
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(suite.AuditLog)
		if err != nil {
			return false, nil
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var ev auditEvent
			if json.Unmarshal(line, &ev) != nil || ev.ObjectRef.Name != name {
				continue
			}
			if v, ok := ev.Annotations[key]; ok {
				value = v
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("audit log %s has no entry for %s with annotation %s", suite.AuditLog, name, key)
	}
	return value
}

// countEvents counts the events.k8s.io Events about the named object.
func countEvents(t *testing.T, name string) int {
	t.Helper()
	var list eventsv1.EventList
	if err := suite.client.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range list.Items {
		if ev.Regarding.Name == name {
			n++
		}
	}
	return n
}
