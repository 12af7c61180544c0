package cabundle_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	apiregv1ac "k8s.io/kube-aggregator/pkg/client/applyconfiguration/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"apiservice-guard.io/apiservice-guard/cabundle"
	"apiservice-guard.io/apiservice-guard/certs"
)

// directSyncer returns a Syncer, separate from the running one, that reads
// through c and the admin client and records Events in memory, for
// reconciling one object synchronously.
func directSyncer(t *testing.T, c client.Client) (*cabundle.Syncer, *recorder) {
	t.Helper()
	rec := &recorder{}
	s, err := cabundle.New(c, cabundle.Options{Reader: suite.admin, Interval: interval, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

// reconcileOnce runs s once for APIService name and checks it returned no
// error; it returns the result.
func reconcileOnce(t *testing.T, s *cabundle.Syncer, name string) reconcile.Result {
	t.Helper()
	res, err := s.Reconcile(t.Context(), reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	if err != nil {
		t.Fatalf("Reconcile(%s) error: %v", name, err)
	}
	return res
}

// assertUntouched checks that nobody but the API server itself (the
// aggregator's status updates bump resourceVersion) wrote APIService
// before.Name since before was read: same metadata and spec, same writers of
// the main resource, none of them the syncer's field manager.
func assertUntouched(t *testing.T, before *apiregv1.APIService) {
	t.Helper()
	now := getAPIService(t, before.Name)
	if diff := cmp.Diff(before.Spec, now.Spec); diff != "" {
		t.Errorf("APIService %s spec changed (-before +now):\n%s", before.Name, diff)
	}
	if diff := cmp.Diff(before.Annotations, now.Annotations); diff != "" {
		t.Errorf("APIService %s annotations changed (-before +now):\n%s", before.Name, diff)
	}
	if diff := cmp.Diff(mainWriters(before), mainWriters(now)); diff != "" {
		t.Errorf("APIService %s was written (managedFields of the main resource, -before +now):\n%s", before.Name, diff)
	}
	if fieldsOf(t, before, cabundle.DefaultFieldManager) == nil {
		if f := fieldsOf(t, now, cabundle.DefaultFieldManager); f != nil {
			t.Errorf("APIService %s has fields of manager %s: %v", before.Name, cabundle.DefaultFieldManager, f)
		}
	}
}

// mainWriters returns the managedFields entries of api's main resource (not
// status), without their timestamps.
func mainWriters(api *apiregv1.APIService) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, mf := range api.ManagedFields {
		if mf.Subresource == "" {
			mf.Time = nil
			out = append(out, mf)
		}
	}
	return out
}

// TestSecretSourceSyncedAndRotated: a Secret named by inject-ca-from-secret
// fills caBundle, applied by field manager apiservice-guard owning only
// spec.caBundle; a rotated ca.crt is added next to the old CA, which stays
// while valid.
func TestSecretSourceSyncedAndRotated(t *testing.T) {
	ns := namespace(t, "secret-src")
	ca1, ca2 := newCA(t, "ca1"), newCA(t, "ca2")
	create(t, caSecret(ns, "adapter-ca", allowDirect(), ca1.CertPEM()))
	api := newAPIService("secret-src", fromSecret(ns, "adapter-ca"))
	dumpLogOnFailure(t, api.Name)
	create(t, api)

	synced := waitForBundle(t, api.Name, ca1)
	assertOwnsOnlyCABundle(t, synced)
	waitForEvent(t, api.Name, cabundle.ReasonUpdated)

	setCA(t, ns, "adapter-ca", ca2.CertPEM())
	rotated := waitForBundle(t, api.Name, ca1, ca2)
	assertOwnsOnlyCABundle(t, rotated)
	if rotated.Spec.Service == nil || rotated.Spec.GroupPriorityMinimum != 100 || rotated.Spec.InsecureSkipTLSVerify {
		t.Errorf("fields other than caBundle changed: %+v", rotated.Spec)
	}
}

// TestCertificateSourceSyncedAndRotated: inject-ca-from names a Certificate;
// the CA comes from the ca.crt of its spec.secretName Secret.
func TestCertificateSourceSyncedAndRotated(t *testing.T) {
	ns := namespace(t, "crt-src")
	ca1, ca2 := newCA(t, "crt-ca1"), newCA(t, "crt-ca2")
	create(t, certificate(ns, "adapter", "adapter-tls"),
		caSecret(ns, "adapter-tls", map[string]string{cmapi.CertificateNameKey: "adapter"}, ca1.CertPEM()))
	api := newAPIService("crt-src", fromCertificate(ns, "adapter"))
	dumpLogOnFailure(t, api.Name)
	create(t, api)

	assertOwnsOnlyCABundle(t, waitForBundle(t, api.Name, ca1))
	setCA(t, ns, "adapter-tls", ca2.CertPEM())
	assertOwnsOnlyCABundle(t, waitForBundle(t, api.Name, ca1, ca2))
}

// TestUnannotatedNeverTouched: an APIService without the annotations, or
// whose annotation was removed, is not written while the syncer keeps
// applying rotations of the very Secret to an annotated one.
func TestUnannotatedNeverTouched(t *testing.T) {
	ns := namespace(t, "untouched")
	ca0, ca1, ca2, ca3 := newCA(t, "u-ca0"), newCA(t, "u-ca1"), newCA(t, "u-ca2"), newCA(t, "u-ca3")
	create(t, caSecret(ns, "shared-ca", allowDirect(), ca1.CertPEM()))

	plain := newAPIService("plain", map[string]string{"example.com/owner": "team-a"})
	plain.Spec.CABundle = ca0.CertPEM()
	dropped := newAPIService("dropped", fromSecret(ns, "shared-ca"))
	canary := newAPIService("canary", fromSecret(ns, "shared-ca"))
	dumpLogOnFailure(t, plain.Name, dropped.Name, canary.Name)
	create(t, plain)
	plainBefore := getAPIService(t, plain.Name)
	create(t, dropped)
	waitForBundle(t, dropped.Name, ca1)
	update(t, dropped, func(a *apiregv1.APIService) { delete(a.Annotations, cmapi.WantInjectFromSecretAnnotation) })
	droppedBefore := getAPIService(t, dropped.Name)

	// The canary shares the Secret: each rotation it picks up is a pass in
	// which the other two would have been written, were they considered.
	create(t, canary)
	waitForBundle(t, canary.Name, ca1)
	setCA(t, ns, "shared-ca", ca2.CertPEM())
	waitForBundle(t, canary.Name, ca1, ca2)
	setCA(t, ns, "shared-ca", ca3.CertPEM())
	waitForBundle(t, canary.Name, ca1, ca2, ca3)

	assertUntouched(t, plainBefore)
	if got := bundleNames(t, getAPIService(t, dropped.Name)); !slices.Equal(got, names(ca1)) {
		t.Errorf("APIService %s whose annotation was removed holds %q, want %q", dropped.Name, got, names(ca1))
	}
	assertUntouched(t, droppedBefore)

	s, rec := directSyncer(t, suite.admin)
	for _, name := range []string{plain.Name, dropped.Name} {
		if res := reconcileOnce(t, s, name); res != (reconcile.Result{}) {
			t.Errorf("Reconcile(%s) = %+v, want no requeue", name, res)
		}
	}
	assertUntouched(t, plainBefore)
	if got := rec.recorded(); len(got) != 0 {
		t.Errorf("Events recorded for unannotated APIServices: %q", got)
	}
}

// TestInsecureSkipTLSVerifyNotApplied: the API server refuses caBundle with
// insecureSkipTLSVerify, so the syncer does not apply, says why, and applies
// once insecureSkipTLSVerify is false.
func TestInsecureSkipTLSVerifyNotApplied(t *testing.T) {
	ns := namespace(t, "insecure")
	ca1 := newCA(t, "i-ca1")
	create(t, caSecret(ns, "adapter-ca", allowDirect(), ca1.CertPEM()))
	api := newAPIService("insecure", fromSecret(ns, "adapter-ca"))
	api.Spec.InsecureSkipTLSVerify = true
	dumpLogOnFailure(t, api.Name)
	create(t, api)
	before := getAPIService(t, api.Name)

	note := waitForEvent(t, api.Name, cabundle.ReasonNotApplicable)
	if !strings.Contains(note, "insecureSkipTLSVerify") {
		t.Errorf("Event %q does not say insecureSkipTLSVerify is why", note)
	}
	s, rec := directSyncer(t, suite.admin)
	if res := reconcileOnce(t, s, api.Name); res.RequeueAfter != interval {
		t.Errorf("Reconcile = %+v, want RequeueAfter %s", res, interval)
	}
	if got, want := rec.recorded(), []string{"Warning " + cabundle.ReasonNotApplicable}; !slices.Equal(got, want) {
		t.Errorf("Events = %q, want %q", got, want)
	}
	assertUntouched(t, before)
	if n := len(getAPIService(t, api.Name).Spec.CABundle); n != 0 {
		t.Errorf("caBundle has %d bytes, want none", n)
	}

	update(t, api, func(a *apiregv1.APIService) { a.Spec.InsecureSkipTLSVerify = false })
	assertOwnsOnlyCABundle(t, waitForBundle(t, api.Name, ca1))
}

// TestLocalAPIServiceNotApplied: an APIService served by the API server
// itself (no spec.service) may not have a caBundle; the syncer says so
// instead of applying.
func TestLocalAPIServiceNotApplied(t *testing.T) {
	ns := namespace(t, "local")
	ca1 := newCA(t, "l-ca1")
	create(t, caSecret(ns, "adapter-ca", allowDirect(), ca1.CertPEM()))
	api := newAPIService("local", fromSecret(ns, "adapter-ca"))
	api.Spec.Service = nil
	dumpLogOnFailure(t, api.Name)
	create(t, api)
	before := getAPIService(t, api.Name)

	waitForEvent(t, api.Name, cabundle.ReasonNotApplicable)
	s, rec := directSyncer(t, suite.admin)
	if res := reconcileOnce(t, s, api.Name); res.RequeueAfter != interval {
		t.Errorf("Reconcile = %+v, want RequeueAfter %s", res, interval)
	}
	if got, want := rec.recorded(), []string{"Warning " + cabundle.ReasonNotApplicable}; !slices.Equal(got, want) {
		t.Errorf("Events = %q, want %q", got, want)
	}
	assertUntouched(t, before)
}

// TestCainjectorBundleLeftAlone: a bundle that already holds the source's CA
// next to others (written by cainjector) is never rewritten, however often
// the syncer passes; a rotated CA is added to it, the others kept.
func TestCainjectorBundleLeftAlone(t *testing.T) {
	ns := namespace(t, "cainjector")
	ca1, older := newCA(t, "c-ca1"), newCA(t, "c-older")
	create(t, caSecret(ns, "adapter-ca", allowDirect(), ca1.CertPEM()))
	api := newAPIService("cainjector", fromSecret(ns, "adapter-ca"))
	dumpLogOnFailure(t, api.Name)
	create(t, api)
	waitForBundle(t, api.Name, ca1)
	applyCABundle(t, "cainjector", api.Name, certs.EncodePEM(ca1.Cert, older.Cert))
	before := waitForBundle(t, api.Name, ca1, older)

	// Two passes of the running syncer that found nothing to do.
	eventually(t, syncDeadline, "two passes over "+api.Name, func() string {
		if n := logLines(t, api.Name, "caBundle already trusts its source's CA"); n < 2 {
			return "passes so far: " + strings.Repeat("|", n)
		}
		return ""
	})
	s, rec := directSyncer(t, suite.admin)
	if res := reconcileOnce(t, s, api.Name); res.RequeueAfter != interval {
		t.Errorf("Reconcile = %+v, want RequeueAfter %s", res, interval)
	}
	assertUntouched(t, before)
	if got := rec.recorded(); len(got) != 0 {
		t.Errorf("Events = %q, want none", got)
	}

	// A rotation is merged into cainjector's bundle, its extra CA kept.
	ca2 := newCA(t, "c-ca2")
	setCA(t, ns, "adapter-ca", ca2.CertPEM())
	waitForBundle(t, api.Name, ca1, older, ca2)
}

// TestStaleCopyNotApplied: a bundle merged from an out-of-date copy of the
// APIService is refused by the API server (the apply carries the copy's
// resourceVersion), so a newer bundle written by another injector survives.
func TestStaleCopyNotApplied(t *testing.T) {
	ns := namespace(t, "stale")
	ca1, ca2, extra := newCA(t, "s-ca1"), newCA(t, "s-ca2"), newCA(t, "s-extra")
	create(t, caSecret(ns, "adapter-ca", allowDirect(), ca1.CertPEM()))
	api := newAPIService("stale", fromSecret(ns, "adapter-ca"))
	dumpLogOnFailure(t, api.Name)
	create(t, api)
	stale := waitForBundle(t, api.Name, ca1)
	applyCABundle(t, "cainjector", api.Name, certs.EncodePEM(ca1.Cert, extra.Cert))
	waitForBundle(t, api.Name, ca1, extra)

	setCA(t, ns, "adapter-ca", ca2.CertPEM())
	s, rec := directSyncer(t, staleReader{Client: suite.admin, stale: stale})
	reconcileOnce(t, s, api.Name)
	if slices.Contains(rec.recorded(), "Normal "+cabundle.ReasonUpdated) {
		t.Errorf("a bundle merged from a stale copy was applied")
	}
	// The running syncer merges ca2 into the current bundle; had the stale
	// apply gone through, extra would be gone and nothing would bring it back.
	waitForBundle(t, api.Name, ca1, extra, ca2)
}

// staleReader returns a fixed old copy of one APIService.
type staleReader struct {
	client.Client
	stale *apiregv1.APIService
}

func (r staleReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if api, ok := obj.(*apiregv1.APIService); ok && key.Name == r.stale.Name {
		r.stale.DeepCopyInto(api)
		return nil
	}
	return r.Client.Get(ctx, key, obj, opts...)
}

// applyCABundle applies caBundle to APIService name as manager, as
// cert-manager's cainjector does.
func applyCABundle(t *testing.T, manager, name string, bundle []byte) {
	t.Helper()
	ac := apiregv1ac.APIService(name).WithSpec(apiregv1ac.APIServiceSpec().WithCABundle(bundle...))
	if err := suite.admin.Apply(t.Context(), ac, client.FieldOwner(manager), client.ForceOwnership); err != nil {
		t.Fatalf("applying caBundle as %s: %v", manager, err)
	}
}

// logLines counts the manager's log lines that contain both name and msg.
func logLines(t *testing.T, name, msg string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(managerLog(t), "\n") {
		if strings.Contains(line, msg) && strings.Contains(line, name) {
			n++
		}
	}
	return n
}

// TestSecretsOnlyReadByName: the syncer reads Secrets and Certificates with
// GETs by name, never a list or a watch (the guard's RBAC has get only).
func TestSecretsOnlyReadByName(t *testing.T) {
	ns := namespace(t, "by-name")
	ca1 := newCA(t, "b-ca1")
	create(t, caSecret(ns, "adapter-ca", allowDirect(), ca1.CertPEM()))
	api := newAPIService("by-name", fromSecret(ns, "adapter-ca"))
	create(t, api)
	waitForBundle(t, api.Name, ca1)

	byName := regexp.MustCompile(`^GET /api/v1/namespaces/[^/]+/secrets/[^/?]+\?$`)
	crtByName := regexp.MustCompile(`^GET /apis/cert-manager.io/v1/namespaces/[^/]+/certificates/[^/?]+\?$`)
	secrets := suite.requests.Matching("/secrets")
	if !slices.Contains(secrets, "GET /api/v1/namespaces/"+ns+"/secrets/adapter-ca?") {
		t.Errorf("the syncer never read Secret %s/adapter-ca by name; Secret requests: %q", ns, secrets)
	}
	for _, r := range secrets {
		if !byName.MatchString(r) {
			t.Errorf("Secret request other than a GET by name: %s", r)
		}
	}
	for _, r := range suite.requests.Matching("/certificates") {
		if !crtByName.MatchString(r) {
			t.Errorf("Certificate request other than a GET by name: %s", r)
		}
	}
}

// TestNewRequiresReader: a Syncer without an uncached reader is refused
// rather than silently reading Secrets through a cache.
func TestNewRequiresReader(t *testing.T) {
	if _, err := cabundle.New(suite.admin, cabundle.Options{}); err == nil {
		t.Error("New without Options.Reader succeeded")
	}
}

// TestDeclaresSource: the controller's predicate.
func TestDeclaresSource(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        bool
	}{
		{"none", nil, false},
		{"unrelated", map[string]string{"example.com/x": "ns/y"}, false},
		{"inject-ca-from", map[string]string{cmapi.WantInjectAnnotation: "ns/crt"}, true},
		{"inject-ca-from-secret", map[string]string{cmapi.WantInjectFromSecretAnnotation: "ns/secret"}, true},
		{"malformed still declares", map[string]string{cmapi.WantInjectFromSecretAnnotation: "no-slash"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: tt.annotations}}
			if diff := cmp.Diff(tt.want, cabundle.DeclaresSource(obj)); diff != "" {
				t.Errorf("DeclaresSource (-want +got):\n%s", diff)
			}
		})
	}
}
