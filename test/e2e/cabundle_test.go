package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	apiregapply "k8s.io/kube-aggregator/pkg/client/applyconfiguration/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/test/adapter"
)

// issueInto acts as cert-manager: a new CA, a serving certificate for the
// adapter's DNS name, both written into the Certificate's Secret (tls.crt,
// tls.key, ca.crt, and the certificate-name annotation), and served by the
// adapter from the next handshake on. It returns the CA.
func issueInto(t *testing.T, a *adapter.Adapter, ns, certName, secretName string) *certs.KeyPair {
	t.Helper()
	ca, err := certs.NewCA("cert-manager-test-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServing([]string{a.DNSName()}, nil, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName}}
	_, err = controllerutil.CreateOrUpdate(t.Context(), suite.client, s, func() error {
		s.Type = corev1.SecretTypeTLS
		s.Annotations = map[string]string{cmapi.CertificateNameKey: certName}
		s.Data = map[string][]byte{corev1.TLSCertKey: leaf.CertPEM(), corev1.TLSPrivateKeyKey: leaf.KeyPEM(), "ca.crt": ca.CertPEM()}
		return nil
	})
	if err != nil {
		t.Fatalf("writing Secret %s/%s: %v", ns, secretName, err)
	}
	if err := a.Serve(ca, leaf); err != nil {
		t.Fatal(err)
	}
	return ca
}

func getAPIService(t *testing.T, name string) *apiregv1.APIService {
	t.Helper()
	var api apiregv1.APIService
	if err := suite.client.Get(t.Context(), client.ObjectKey{Name: name}, &api); err != nil {
		t.Fatal(err)
	}
	return &api
}

// TestCertManagerInjectionAndRotation: created with inject-ca-from and
// insecureSkipTLSVerify, the APIService is stored with the Certificate's CA
// and verification on, and the real aggregator finds it Available. After
// cert-manager rotates the CA (and the adapter serves the new certificate),
// the guard's syncer updates the caBundle and it is Available again within
// 30 s, nobody touching the APIService.
func TestCertManagerInjectionAndRotation(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "inject.e2e.apiservice-guard.io", "v1", "e2e-inject", "adapter")
	ns, svc, api := a.Objects(nil)
	create(t, ns, svc)
	crt := &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "adapter-serving"},
		Spec: cmapi.CertificateSpec{SecretName: "adapter-serving-tls", DNSNames: []string{a.DNSName()},
			IssuerRef: cmmeta.IssuerReference{Name: "test-ca", Kind: "Issuer"}},
	}
	create(t, crt)
	ca1 := issueInto(t, a, ns.Name, crt.Name, crt.Spec.SecretName)

	api.Annotations = map[string]string{cmapi.WantInjectAnnotation: ns.Name + "/" + crt.Name}
	api.Spec.InsecureSkipTLSVerify = true
	create(t, api)
	stored := getAPIService(t, api.Name)
	if !bytes.Equal(stored.Spec.CABundle, ca1.CertPEM()) || stored.Spec.InsecureSkipTLSVerify {
		t.Fatalf("stored caBundle %q, insecureSkipTLSVerify %v; want the Certificate's CA and false", stored.Spec.CABundle, stored.Spec.InsecureSkipTLSVerify)
	}
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")
	rvBefore := stored.ResourceVersion

	// cert-manager rotates the CA; the adapter serves the new certificate.
	start := time.Now()
	ca2 := issueInto(t, a, ns.Name, crt.Name, crt.Spec.SecretName)
	var last *apiregv1.APIService
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = getAPIService(t, api.Name)
		c, _ := availableCondition(ctx, api.Name)
		return bytes.Contains(last.Spec.CABundle, ca2.CertPEM()) && c.Status == apiregv1.ConditionTrue, nil
	})
	if err != nil {
		c, _ := availableCondition(t.Context(), api.Name)
		t.Fatalf("30 s after the rotation: caBundle holds the new CA: %v; %s", bytes.Contains(last.Spec.CABundle, ca2.CertPEM()), describe(c))
	}
	t.Logf("Available again with the new CA %s after the rotation", time.Since(start).Round(100*time.Millisecond))
	if last.ResourceVersion == rvBefore {
		t.Fatal("the APIService was not written")
	}
	// The old CA stays next to the new one while it is valid, as cainjector does.
	if !bytes.Contains(last.Spec.CABundle, ca1.CertPEM()) {
		t.Errorf("the old CA was dropped from the caBundle before it expired")
	}
	if owner := caBundleOwner(t, last); owner != "apiservice-guard" {
		t.Errorf("caBundle is owned by %q, want the guard's field manager apiservice-guard", owner)
	}
}

// caBundleOwner is the field manager whose Apply entry owns spec.caBundle.
func caBundleOwner(t *testing.T, api *apiregv1.APIService) string {
	t.Helper()
	for _, mf := range api.ManagedFields {
		if mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			t.Fatal(err)
		}
		if _, ok := fields["f:spec"]["f:caBundle"]; ok {
			return mf.Manager
		}
	}
	return ""
}

// TestApplyThatBlanksCABundleIsPreserved: re-applying a manifest without the
// caBundle (a chart that does not carry it) keeps the working one, and
// kubectl prints why, naming its field manager.
func TestApplyThatBlanksCABundleIsPreserved(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "preserve.e2e.apiservice-guard.io", "v1", "e2e-preserve", "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc)
	t.Cleanup(func() { _ = suite.client.Delete(context.Background(), api) })
	apply := func(api *apiregv1.APIService) string {
		t.Helper()
		manifest, err := yaml.Marshal(api)
		if err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := kubectl(t, string(manifest), "apply", "-f", "-")
		if err != nil {
			t.Fatalf("kubectl apply: %v\n%s%s", err, stdout, stderr)
		}
		return stderr
	}
	apply(api)
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")

	blank := api.DeepCopy()
	blank.Spec.CABundle = nil
	stderr := apply(blank)
	if !strings.Contains(stderr, "Warning: [apiservice-cabundle-preserve] caBundle kept: field manager kubectl-client-side-apply tried to empty it") {
		t.Fatalf("kubectl output lacks the preserve warning:\n%s", stderr)
	}
	if got := getAPIService(t, api.Name).Spec.CABundle; !bytes.Equal(got, a.CA().CertPEM()) {
		t.Fatalf("stored caBundle %q, want the working one kept", got)
	}
	if c, _ := availableCondition(t.Context(), api.Name); c.Status != apiregv1.ConditionTrue {
		t.Fatalf("after the apply the APIService is %s, want still Available", describe(c))
	}
}

// warningCollector keeps the warnings the API server returns to a client.
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningCollector) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// TestTwoWritersFightingOverCABundleAreNamed: KEDA-style full Updates (with
// a stale resourceVersion, retried after the conflict) and an apply by a
// GitOps tool alternate the caBundle; the third replacement within the
// window gets the churn warning naming both managers.
func TestTwoWritersFightingOverCABundleAreNamed(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	a := startAdapter(t, "churn.e2e.apiservice-guard.io", "v1", "e2e-churn", "adapter")
	other, err := certs.NewCA("churn-other-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Both bundles verify the adapter, so no other rule objects to either.
	bundleA, bundleB := a.CA().CertPEM(), append(a.CA().CertPEM(), other.CertPEM()...)
	ns, svc, api := a.Objects(bundleA)
	create(t, ns, svc, api)
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")

	warnings := &warningCollector{}
	cfg := rest.CopyConfig(suite.Env.Config)
	cfg.WarningHandler = warnings
	c, err := client.New(cfg, client.Options{Scheme: cluster.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The operator read the APIService once and keeps its copy.
	var stale apiregv1.APIService
	if err := c.Get(t.Context(), client.ObjectKey{Name: api.Name}, &stale); err != nil {
		t.Fatal(err)
	}
	gitops := func(bundle []byte) {
		t.Helper()
		cfg := apiregapply.APIService(api.Name).WithSpec(apiregapply.APIServiceSpec().WithCABundle(bundle...))
		if err := c.Apply(t.Context(), cfg, client.FieldOwner("argocd-controller"), client.ForceOwnership); err != nil {
			t.Fatalf("apply by argocd-controller: %v", err)
		}
	}
	operator := func(bundle []byte) {
		t.Helper()
		stale.Spec.CABundle = bundle
		err := c.Update(t.Context(), &stale, client.FieldOwner("keda-operator"))
		if !apierrors.IsConflict(err) {
			t.Fatalf("update with a stale resourceVersion: %v, want a conflict", err)
		}
		if err := c.Get(t.Context(), client.ObjectKey{Name: api.Name}, &stale); err != nil {
			t.Fatal(err)
		}
		stale.Spec.CABundle = bundle
		if err := c.Update(t.Context(), &stale, client.FieldOwner("keda-operator")); err != nil {
			t.Fatalf("update by keda-operator: %v", err)
		}
	}
	gitops(bundleB)
	operator(bundleA)
	if got := warnings.take(); hasChurn(got) {
		t.Fatalf("churn warned after two replacements: %q", got)
	}
	gitops(bundleB)
	got := warnings.take()
	if !hasChurn(got) {
		t.Fatalf("third replacement by two managers: warnings %q, want [apiservice-cabundle-churn]", got)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"argocd-controller", "keda-operator", "--enable-cert-rotation=false"} {
		if !strings.Contains(all, want) {
			t.Errorf("churn warning does not mention %q:\n%s", want, all)
		}
	}
}

func hasChurn(warnings []string) bool {
	for _, w := range warnings {
		if strings.Contains(w, "[apiservice-cabundle-churn]") {
			return true
		}
	}
	return false
}

// TestMutateOnlyWhenARuleCanAct: the mutating webhook's matchConditions
// send an APIService write to /mutate only when a mutating rule can act. An
// APIService created and then updated 20 times with a working caBundle and
// no inject annotation causes no mutate request (the validating webhook
// sees every one: the positive control); an apply that empties the
// caBundle causes one, which keeps the bundle; setting an inject
// annotation causes one more.
func TestMutateOnlyWhenARuleCanAct(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	metricsURL := useGuardWithMetrics(t)
	a := startAdapter(t, "mutateonly.e2e.apiservice-guard.io", "v1", "e2e-mutate-only", "adapter")
	ns, svc, api := a.Objects(a.CA().CertPEM())
	create(t, ns, svc, api)
	t.Cleanup(func() { _ = suite.client.Delete(context.Background(), api) })
	waitAvailable(t, api.Name, apiregv1.ConditionTrue, "", "")
	for i := range 20 {
		got := getAPIService(t, api.Name)
		if got.Labels == nil {
			got.Labels = map[string]string{}
		}
		got.Labels["e2e-revision"] = fmt.Sprint(i)
		if err := suite.client.Update(t.Context(), got); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	mutate, samples := webhookRequests(t, metricsURL, "APIService", "mutate")
	validate, _ := webhookRequests(t, metricsURL, "APIService", "validate")
	t.Logf("1 CREATE and 20 UPDATEs: %v mutate requests %v, %v validate requests", mutate, samples, validate)
	if mutate != 0 {
		t.Fatalf("writes no mutating rule can act on reached /mutate: %v %v", mutate, samples)
	}
	if validate < 21 {
		t.Fatalf("positive control: %v validate requests, want at least 21", validate)
	}

	// An apply that empties the caBundle: preserved, one request.
	blank := getAPIService(t, api.Name)
	blank.Spec.CABundle = nil
	if err := suite.client.Update(t.Context(), blank); err != nil {
		t.Fatal(err)
	}
	if got := getAPIService(t, api.Name).Spec.CABundle; !bytes.Equal(got, a.CA().CertPEM()) {
		t.Fatalf("stored caBundle %q, want the working one kept", got)
	}
	if mutate, samples = webhookRequests(t, metricsURL, "APIService", "mutate"); mutate != 1 ||
		!slices.Contains(samples, `{kind="APIService",operation="UPDATE",verdict="patched",webhook="mutate"} 1`) {
		t.Fatalf("after emptying the caBundle: %v mutate requests %v, want 1 patched", mutate, samples)
	}

	// An inject annotation makes the next write the mutator's business.
	annotated := getAPIService(t, api.Name)
	annotated.Annotations = map[string]string{"cert-manager.io/inject-ca-from": ns.Name + "/missing"}
	_ = suite.client.Update(t.Context(), annotated) // the missing source is a warning
	if mutate, samples = webhookRequests(t, metricsURL, "APIService", "mutate"); mutate != 2 {
		t.Fatalf("after the inject annotation: %v mutate requests %v, want 2", mutate, samples)
	}
}
