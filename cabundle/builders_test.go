package cabundle_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/certs"
)

// newCA returns a CA valid for a day, named cn (unique per call, so that
// bundles can be compared by name).
func newCA(t *testing.T, cn string) *certs.KeyPair {
	t.Helper()
	return newCAValid(t, cn, 24*time.Hour)
}

// newCAValid returns a CA valid from a minute ago for validity; a validity
// under a minute makes an expired one.
func newCAValid(t *testing.T, cn string, validity time.Duration) *certs.KeyPair {
	t.Helper()
	ca, err := certs.NewCA(unique(cn), validity)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// names returns the common names of kps, in order.
func names(kps ...*certs.KeyPair) []string {
	out := make([]string, len(kps))
	for i, kp := range kps {
		out[i] = kp.Cert.Subject.CommonName
	}
	return out
}

// bundleNames parses a stored caBundle and returns the common names of its
// certificates; a bundle that is neither empty nor valid PEM certificates
// fails the test.
func bundleNames(t *testing.T, api *apiregv1.APIService) []string {
	t.Helper()
	if len(api.Spec.CABundle) == 0 {
		return nil
	}
	parsed, err := certs.ParseBundle(api.Spec.CABundle)
	if err != nil {
		t.Fatalf("APIService %s has an invalid caBundle: %v", api.Name, err)
	}
	out := make([]string, len(parsed))
	for i, c := range parsed {
		out[i] = c.Subject.CommonName
	}
	return out
}

// waitForBundle waits until APIService name's caBundle holds exactly want
// (common names, in order) and returns the APIService.
func waitForBundle(t *testing.T, name string, want ...*certs.KeyPair) *apiregv1.APIService {
	t.Helper()
	var api *apiregv1.APIService
	eventually(t, syncDeadline, "caBundle of APIService "+name, func() string {
		api = getAPIService(t, name)
		if got := bundleNames(t, api); !slices.Equal(got, names(want...)) {
			return fmt.Sprintf("holds %q, want %q", got, names(want...))
		}
		return ""
	})
	return api
}

// newAPIService returns an APIService v1.<unique group> backed by a Service
// that does not exist (it stays unavailable; the syncer does not care).
func newAPIService(base string, annotations map[string]string) *apiregv1.APIService {
	group := unique(base) + ".cabundle.test"
	return &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: "v1." + group, Annotations: annotations},
		Spec: apiregv1.APIServiceSpec{
			Group: group, Version: "v1", GroupPriorityMinimum: 100, VersionPriority: 10,
			Service: &apiregv1.ServiceReference{Namespace: "default", Name: "nowhere", Port: ptr.To[int32](443)},
		},
	}
}

// fromSecret is the annotation naming Secret ns/name as the CA source.
func fromSecret(ns, name string) map[string]string {
	return map[string]string{cmapi.WantInjectFromSecretAnnotation: ns + "/" + name}
}

// fromCertificate is the annotation naming Certificate ns/name as the source.
func fromCertificate(ns, name string) map[string]string {
	return map[string]string{cmapi.WantInjectAnnotation: ns + "/" + name}
}

// allowDirect returns the annotation a Secret named directly must carry.
func allowDirect() map[string]string {
	return map[string]string{cmapi.AllowsInjectionFromSecretAnnotation: "true"}
}

// caSecret returns Secret ns/name with annotations and, unless caPEM is nil,
// ca.crt.
func caSecret(ns, name string, annotations map[string]string, caPEM []byte) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Data:       map[string][]byte{"tls.crt": []byte("not read by the syncer")},
	}
	if caPEM != nil {
		s.Data[certs.CAKey] = caPEM
	}
	return s
}

// certificate returns Certificate ns/name storing its keypair in secretName.
func certificate(ns, name, secretName string) *cmapi.Certificate {
	return &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cmapi.CertificateSpec{SecretName: secretName, DNSNames: []string{"adapter." + ns + ".svc"},
			IssuerRef: cmmeta.IssuerReference{Name: "ca", Kind: "Issuer"}},
	}
}

// update reads obj, applies change and writes it back (admin client).
func update[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	if err := suite.admin.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	change(obj)
	if err := suite.admin.Update(t.Context(), obj); err != nil {
		t.Fatalf("updating %T %s: %v", obj, obj.GetName(), err)
	}
}

// setCA replaces ca.crt of Secret ns/name.
func setCA(t *testing.T, ns, name string, caPEM []byte) {
	t.Helper()
	update(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, func(s *corev1.Secret) {
		s.Data[certs.CAKey] = caPEM
	})
}

// recorder is an events.EventRecorder that keeps "type reason" of each Event.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Eventf(_, _ runtime.Object, eventtype, reason, _, _ string, _ ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, eventtype+" "+reason)
}

func (r *recorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}
