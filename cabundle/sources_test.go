package cabundle_test

import (
	"encoding/base64"
	"encoding/pem"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"apiservice-guard.io/apiservice-guard/cabundle"
	"apiservice-guard.io/apiservice-guard/certs"
)

// Log messages the syncer writes when it leaves a caBundle alone.
const (
	msgMalformed = "caBundle source annotation is malformed"
	msgNoCA      = "caBundle source holds no usable CA"
)

// sourceCase is an APIService whose source yields no CA.
type sourceCase struct {
	name string
	// setup creates what the source needs in ns and returns the
	// APIService's annotations.
	setup func(t *testing.T, ns string) map[string]string
	// reason is the Warning Event reason the syncer must record.
	reason string
	// fix, when set, repairs the source without touching the APIService
	// and returns the CA the bundle must then gain.
	fix func(t *testing.T, ns string) *certs.KeyPair
}

// secrets collects what must never appear in the manager's log: the
// base64 (as a logged []byte would be) of every certificate and key the
// cases put in Secrets or bundles, and the raw content of ca.crt values.
type secrets struct {
	mu      sync.Mutex
	strings []string
}

func (s *secrets) add(kps ...*certs.KeyPair) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kp := range kps {
		block, _ := pem.Decode(kp.KeyPEM())
		s.strings = append(s.strings,
			base64.StdEncoding.EncodeToString(kp.Cert.Raw)[:40],
			base64.StdEncoding.EncodeToString(block.Bytes)[:40])
	}
}

func (s *secrets) addRaw(data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.strings = append(s.strings, data)
}

func sourceCases(seen *secrets) []sourceCase {
	// fixWithCA sets ca.crt of Secret ns/name to a new CA.
	fixWithCA := func(name string) func(*testing.T, string) *certs.KeyPair {
		return func(t *testing.T, ns string) *certs.KeyPair {
			ca := newCA(t, "fixed")
			seen.add(ca)
			setCA(t, ns, name, ca.CertPEM())
			return ca
		}
	}
	// secretWith creates Secret ns/"ca" with annotations and ca.crt, and
	// names it by inject-ca-from-secret.
	secretWith := func(annotations map[string]string, caPEM func(t *testing.T) []byte) func(*testing.T, string) map[string]string {
		return func(t *testing.T, ns string) map[string]string {
			var data []byte
			if caPEM != nil {
				data = caPEM(t)
			}
			create(t, caSecret(ns, "ca", annotations, data))
			return fromSecret(ns, "ca")
		}
	}
	// malformed sets annotation key to value.
	malformed := func(key, value string) func(*testing.T, string) map[string]string {
		return func(*testing.T, string) map[string]string { return map[string]string{key: value} }
	}
	validCA := func(t *testing.T) []byte { ca := newCA(t, "valid"); seen.add(ca); return ca.CertPEM() }
	return []sourceCase{
		{name: "Secret without ca.crt", setup: secretWith(allowDirect(), nil),
			reason: cabundle.ReasonSourceUnavailable, fix: fixWithCA("ca")},
		{name: "ca.crt not PEM", setup: secretWith(allowDirect(), func(*testing.T) []byte {
			seen.addRaw("secret-but-not-a-certificate")
			return []byte("secret-but-not-a-certificate")
		}),
			reason: cabundle.ReasonSourceUnavailable, fix: fixWithCA("ca")},
		{name: "ca.crt a private key", setup: secretWith(allowDirect(), func(t *testing.T) []byte {
			ca := newCA(t, "leaked")
			seen.add(ca)
			return ca.KeyPEM()
		}), reason: cabundle.ReasonSourceUnavailable, fix: fixWithCA("ca")},
		{name: "ca.crt expired", setup: secretWith(allowDirect(), func(t *testing.T) []byte {
			ca := newCAValid(t, "expired", -30*time.Second)
			seen.add(ca)
			return ca.CertPEM()
		}), reason: cabundle.ReasonSourceUnavailable, fix: fixWithCA("ca")},
		{name: "Secret missing", setup: func(_ *testing.T, ns string) map[string]string { return fromSecret(ns, "ca") },
			reason: cabundle.ReasonSourceUnavailable, fix: func(t *testing.T, ns string) *certs.KeyPair {
				ca := newCA(t, "created")
				seen.add(ca)
				create(t, caSecret(ns, "ca", allowDirect(), ca.CertPEM()))
				return ca
			}},
		{name: "Secret not allowed", setup: secretWith(nil, validCA),
			reason: cabundle.ReasonSourceUnavailable, fix: func(t *testing.T, ns string) *certs.KeyPair {
				ca := newCA(t, "allowed")
				seen.add(ca)
				update(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"}}, func(s *corev1.Secret) {
					s.Annotations = allowDirect()
					s.Data[certs.CAKey] = ca.CertPEM()
				})
				return ca
			}},
		{name: "Certificate missing", setup: func(_ *testing.T, ns string) map[string]string { return fromCertificate(ns, "adapter") },
			reason: cabundle.ReasonSourceUnavailable, fix: func(t *testing.T, ns string) *certs.KeyPair {
				ca := newCA(t, "issued")
				seen.add(ca)
				create(t, certificate(ns, "adapter", "adapter-tls"),
					caSecret(ns, "adapter-tls", map[string]string{cmapi.CertificateNameKey: "adapter"}, ca.CertPEM()))
				return ca
			}},
		{name: "Certificate's Secret not its own", setup: func(t *testing.T, ns string) map[string]string {
			create(t, certificate(ns, "adapter", "adapter-tls"), caSecret(ns, "adapter-tls", nil, validCA(t)))
			return fromCertificate(ns, "adapter")
		}, reason: cabundle.ReasonSourceUnavailable, fix: func(t *testing.T, ns string) *certs.KeyPair {
			ca := newCA(t, "owned")
			seen.add(ca)
			update(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "adapter-tls"}}, func(s *corev1.Secret) {
				s.Annotations = map[string]string{cmapi.CertificateNameKey: "adapter"}
				s.Data[certs.CAKey] = ca.CertPEM()
			})
			return ca
		}},
		{name: "annotation no-slash", setup: malformed(cmapi.WantInjectFromSecretAnnotation, "no-slash"), reason: cabundle.ReasonSourceInvalid},
		{name: "annotation /x", setup: malformed(cmapi.WantInjectFromSecretAnnotation, "/x"), reason: cabundle.ReasonSourceInvalid},
		{name: "annotation ns/", setup: malformed(cmapi.WantInjectFromSecretAnnotation, "ns/"), reason: cabundle.ReasonSourceInvalid},
		{name: "annotation a/b/c", setup: malformed(cmapi.WantInjectAnnotation, "a/b/c"), reason: cabundle.ReasonSourceInvalid},
	}
}

// TestUnusableSourceWritesNothing: for every way a source can yield no CA,
// the syncer writes nothing (the stored bundle stays the valid one it was
// created with), records a Warning Event, re-reads the source every
// Interval without a hot loop, and fills the bundle once the source is
// repaired, without the APIService being touched. Nothing of a certificate
// or key reaches the log.
func TestUnusableSourceWritesNothing(t *testing.T) {
	seen := &secrets{}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range sourceCases(seen) {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				checkUnusableSource(t, tc, seen)
			})
		}
	})
	log := managerLog(t)
	if strings.Contains(log, "BEGIN PRIVATE KEY") {
		t.Error("the manager log holds a PEM private key")
	}
	for _, secret := range seen.strings {
		if strings.Contains(log, secret) {
			t.Errorf("the manager log holds %q, from a certificate, key or ca.crt", secret)
		}
	}
}

func checkUnusableSource(t *testing.T, tc sourceCase, seen *secrets) {
	ns := namespace(t, "unusable")
	ca0 := newCA(t, "ca0")
	seen.add(ca0)
	api := newAPIService("unusable", tc.setup(t, ns))
	api.Spec.CABundle = ca0.CertPEM()
	dumpLogOnFailure(t, api.Name)
	created := time.Now()
	create(t, api)
	before := getAPIService(t, api.Name)

	waitForEvent(t, api.Name, tc.reason)
	msg := msgNoCA
	if tc.reason == cabundle.ReasonSourceInvalid {
		msg = msgMalformed
	}
	eventually(t, syncDeadline, "the running syncer's second pass", func() string {
		if n := logLines(t, api.Name, msg); n < 2 {
			return "passes so far: " + strings.Repeat("|", n)
		}
		return ""
	})
	assertUntouched(t, before)
	if got := bundleNames(t, getAPIService(t, api.Name)); !slices.Equal(got, names(ca0)) {
		t.Errorf("caBundle holds %q, want %q", got, names(ca0))
	}
	// No hot loop: a pass per Interval, plus one per watch event (create,
	// status updates by the aggregator).
	if n, most := logLines(t, api.Name, msg), int(time.Since(created)/interval)+5; n > most {
		t.Errorf("%d passes in %s: want at most %d (one per %s)", n, time.Since(created).Round(time.Millisecond), most, interval)
	}

	s, rec := directSyncer(t, suite.admin)
	if res := reconcileOnce(t, s, api.Name); res.RequeueAfter != interval {
		t.Errorf("Reconcile = %+v, want RequeueAfter %s", res, interval)
	}
	if got, want := rec.recorded(), []string{"Warning " + tc.reason}; !slices.Equal(got, want) {
		t.Errorf("Events = %q, want %q", got, want)
	}
	assertUntouched(t, before)

	if tc.fix == nil {
		return
	}
	ca := tc.fix(t, ns)
	assertOwnsOnlyCABundle(t, waitForBundle(t, api.Name, ca0, ca))
}
