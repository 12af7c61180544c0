package policies_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/google/go-cmp/cmp"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/policies"
)

// mutate runs the engine's mutating rules on the fixture's review.
func (f *fixture) mutate(t *testing.T, cfg policies.Config, fieldManager string) (*apiregv1.APIService, []policies.Finding) {
	t.Helper()
	r := createReview(f.api, time.Time{})
	if f.old != nil {
		r = updateReview(f.old, f.api, time.Time{})
	}
	r.FieldManager = fieldManager
	before := f.api.DeepCopy()
	obj, findings := mustEngine(t, cfg).Mutate(t.Context(), r, newView(t, f.objects()...))
	if diff := cmp.Diff(before, f.api); diff != "" {
		t.Errorf("Mutate changed the review's object (-before +after):\n%s", diff)
	}
	api, _ := obj.(*apiregv1.APIService)
	if api == nil {
		t.Fatalf("Mutate returned %T, want an APIService", obj)
	}
	return api, findings
}

// injectFrom annotates the APIService with inject-ca-from naming Certificate
// keda/keda-serving, whose Secret keda/keda-serving-tls holds ca (and is
// annotated as the Certificate's, as cert-manager does).
func (f *fixture) injectFrom(ca []byte) {
	f.api.Annotations = map[string]string{cmapi.WantInjectAnnotation: kedaNS + "/keda-serving"}
	f.certificates = append(f.certificates, certificate(kedaNS, "keda-serving", "keda-serving-tls", kedaDNSName))
	s := tlsSecret(kedaNS, "keda-serving-tls", f.pki.serving.CertPEM(), f.pki.serving.KeyPEM(), ca)
	s.Annotations = map[string]string{cmapi.CertificateNameKey: "keda-serving"}
	f.secrets = append(f.secrets, s)
}

func TestCABundleInject(t *testing.T) {
	p := mustPKI(t)
	caPEM := p.ca.CertPEM()
	both := certs.EncodePEM(p.otherCA.Cert, p.ca.Cert)
	tests := []struct {
		name       string
		setup      func(*fixture)
		wantBundle []byte   // nil: unchanged
		mentions   []string // in the finding; none expected when empty
	}{
		{
			name: "empty caBundle and insecureSkipTLSVerify: set and cleared",
			setup: func(f *fixture) {
				f.api.Spec.CABundle = nil
				f.api.Spec.InsecureSkipTLSVerify = true
				f.injectFrom(caPEM)
			},
			wantBundle: caPEM,
			mentions:   []string{"caBundle set from ca.crt of Secret keda/keda-serving-tls", "insecureSkipTLSVerify cleared"},
		},
		{
			name:  "already holds the CA: a no-op, silent",
			setup: func(f *fixture) { f.injectFrom(caPEM) },
		},
		{
			name:  "holds the CA next to another: left exactly as it is",
			setup: func(f *fixture) { f.api.Spec.CABundle = both; f.injectFrom(caPEM) },
		},
		{
			name:       "holds only another CA: merged, old first",
			setup:      func(f *fixture) { f.api.Spec.CABundle = p.otherCA.CertPEM(); f.injectFrom(caPEM) },
			wantBundle: both,
			mentions:   []string{"caBundle set from"},
		},
		{
			name: "direct Secret allowed",
			setup: func(f *fixture) {
				f.api.Spec.CABundle = nil
				f.api.Annotations = map[string]string{cmapi.WantInjectFromSecretAnnotation: kedaNS + "/ca-direct"}
				s := secret(kedaNS, "ca-direct", map[string][]byte{"ca.crt": caPEM})
				s.Annotations = map[string]string{cmapi.AllowsInjectionFromSecretAnnotation: "true"}
				f.secrets = append(f.secrets, s)
			},
			wantBundle: caPEM,
			mentions:   []string{"Secret keda/ca-direct"},
		},
		{
			name: "direct Secret not allowed",
			setup: func(f *fixture) {
				f.api.Spec.CABundle = nil
				f.api.Annotations = map[string]string{cmapi.WantInjectFromSecretAnnotation: kedaNS + "/ca-direct"}
				f.secrets = append(f.secrets, secret(kedaNS, "ca-direct", map[string][]byte{"ca.crt": caPEM}))
			},
			mentions: []string{"caBundle not injected from Secret keda/ca-direct", "allow-direct-injection"},
		},
		{
			name: "Certificate missing",
			setup: func(f *fixture) {
				f.api.Annotations = map[string]string{cmapi.WantInjectAnnotation: kedaNS + "/nope"}
			},
			mentions: []string{"Certificate keda/nope not found"},
		},
		{
			name: "namespace missing",
			setup: func(f *fixture) {
				f.api.Annotations = map[string]string{cmapi.WantInjectAnnotation: "no-such-ns/keda-serving"}
			},
			mentions: []string{"namespace no-such-ns does not exist"},
		},
		{
			name:     "annotation without a slash",
			setup:    func(f *fixture) { f.api.Annotations = map[string]string{cmapi.WantInjectAnnotation: "no-slash"} },
			mentions: []string{`"no-slash" is not <namespace>/<name>`},
		},
		{
			name:     "annotation with an empty part",
			setup:    func(f *fixture) { f.api.Annotations = map[string]string{cmapi.WantInjectAnnotation: "keda/"} },
			mentions: []string{"empty namespace or name"},
		},
		{
			name: "Secret without ca.crt",
			setup: func(f *fixture) {
				f.injectFrom(nil)
				delete(f.secrets[len(f.secrets)-1].Data, "ca.crt")
			},
			mentions: []string{"Secret keda/keda-serving-tls has no ca.crt"},
		},
		{
			name:     "ca.crt not PEM",
			setup:    func(f *fixture) { f.api.Spec.CABundle = nil; f.injectFrom([]byte("hello")) },
			mentions: []string{"ca.crt", "not PEM"},
		},
		{
			name: "Secret of another Certificate",
			setup: func(f *fixture) {
				f.injectFrom(caPEM)
				f.secrets[len(f.secrets)-1].Annotations[cmapi.CertificateNameKey] = "someone-else"
			},
			mentions: []string{"not annotated cert-manager.io/certificate-name: keda-serving"},
		},
		{
			name:  "no annotation: untouched",
			setup: func(f *fixture) { f.api.Spec.CABundle = nil },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			orig := f.api.DeepCopy()
			got, findings := f.mutate(t, defaultConfig(t), "")
			want := orig.Spec.CABundle
			if tc.wantBundle != nil {
				want = tc.wantBundle
			}
			if !bytes.Equal(got.Spec.CABundle, want) {
				t.Errorf("caBundle:\n%s\nwant:\n%s", got.Spec.CABundle, want)
			}
			wantInsecure := orig.Spec.InsecureSkipTLSVerify && tc.wantBundle == nil
			if got.Spec.InsecureSkipTLSVerify != wantInsecure {
				t.Errorf("insecureSkipTLSVerify = %v, want %v", got.Spec.InsecureSkipTLSVerify, wantInsecure)
			}
			if len(got.Spec.CABundle) > 0 {
				if _, err := certs.ParseBundle(got.Spec.CABundle); err != nil {
					t.Errorf("stored caBundle would not be valid PEM: %v", err)
				}
			}
			inject := ruleFindings(findings, "apiservice-cabundle-inject")
			if len(tc.mentions) == 0 {
				if len(inject) > 0 {
					t.Errorf("want no finding, got %v", inject)
				}
				return
			}
			if len(inject) != 1 || inject[0].Action != policies.Warn {
				t.Fatalf("want one Warn finding, got %v", findings)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(inject[0].String(), m) {
					t.Errorf("finding %q does not mention %q", inject[0].String(), m)
				}
			}
			// Idempotent: mutating the result again changes nothing.
			f.api = got
			again, more := f.mutate(t, defaultConfig(t), "")
			if !bytes.Equal(again.Spec.CABundle, got.Spec.CABundle) || again.Spec.InsecureSkipTLSVerify != got.Spec.InsecureSkipTLSVerify {
				t.Errorf("second call changed the object: caBundle %q -> %q", got.Spec.CABundle, again.Spec.CABundle)
			}
			if tc.wantBundle != nil && len(ruleFindings(more, "apiservice-cabundle-inject")) > 0 {
				t.Errorf("second call reported %v, want nothing", more)
			}
		})
	}
}

func TestCABundleInjectAuditChangesNothing(t *testing.T) {
	f := newFixture(t)
	f.api.Spec.CABundle = nil
	f.injectFrom(f.pki.ca.CertPEM())
	cfg := defaultConfig(t)
	cfg.Rules = map[string]policies.Action{"apiservice-cabundle-inject": policies.Audit}
	got, findings := f.mutate(t, cfg, "")
	if len(got.Spec.CABundle) > 0 {
		t.Errorf("audit mode set caBundle %q", got.Spec.CABundle)
	}
	if diff := cmp.Diff([]verdict{{"apiservice-cabundle-inject", policies.Audit}}, verdicts(findings)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestCABundlePreserve(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*fixture)
		manager  string
		keep     bool
		mentions []string
	}{
		{
			name:     "emptied while it verifies the mounted serving certificate",
			manager:  "kubectl-client-side-apply",
			keep:     true,
			mentions: []string{"field manager kubectl-client-side-apply tried to empty it", "verifies the serving certificate of keda/" + kedaSvc},
		},
		{
			name:     "no serving certificate found, but Available",
			setup:    func(f *fixture) { f.secrets = nil },
			keep:     true,
			mentions: []string{"Available with"},
		},
		{
			name: "no serving certificate found, not Available",
			setup: func(f *fixture) {
				f.secrets = nil
				f.stored.Status.Conditions = nil
				asAvailable(apiregv1.ConditionFalse)(f.stored)
			},
		},
		{
			name: "old bundle does not verify the serving certificate",
			setup: func(f *fixture) {
				f.old.Spec.CABundle = f.pki.otherCA.CertPEM()
				f.stored.Status.Conditions = nil
				asAvailable(apiregv1.ConditionFalse)(f.stored)
			},
		},
		{
			name:  "emptied together with insecureSkipTLSVerify: true",
			setup: func(f *fixture) { f.api.Spec.InsecureSkipTLSVerify = true },
		},
		{
			name:  "replaced, not emptied",
			setup: func(f *fixture) { f.api.Spec.CABundle = f.pki.otherCA.CertPEM() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.update(apiregv1.ConditionTrue)
			f.api = f.old.DeepCopy()
			f.api.Spec.CABundle = nil
			if tc.setup != nil {
				tc.setup(f)
			}
			got, findings := f.mutate(t, defaultConfig(t), tc.manager)
			preserve := ruleFindings(findings, "apiservice-cabundle-preserve")
			if !tc.keep {
				if !bytes.Equal(got.Spec.CABundle, f.api.Spec.CABundle) || len(preserve) > 0 {
					t.Errorf("caBundle %q, findings %v; want the write as it is, silently", got.Spec.CABundle, preserve)
				}
				return
			}
			if !bytes.Equal(got.Spec.CABundle, f.old.Spec.CABundle) {
				t.Errorf("caBundle = %q, want the old one kept", got.Spec.CABundle)
			}
			if len(preserve) != 1 || preserve[0].Action != policies.Warn {
				t.Fatalf("want one Warn finding, got %v", findings)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(preserve[0].String(), m) {
					t.Errorf("finding %q does not mention %q", preserve[0].String(), m)
				}
			}
		})
	}
}

// The mutating rules never run as validating ones: Evaluate reports nothing
// from them.
func TestMutatingRulesNotEvaluated(t *testing.T) {
	f := newFixture(t)
	f.api.Spec.CABundle = nil
	f.api.Annotations = map[string]string{cmapi.WantInjectAnnotation: "no-slash"}
	for _, fd := range f.evaluate(t, time.Time{}) {
		if strings.HasPrefix(fd.Rule, "apiservice-cabundle-inject") || fd.Rule == "apiservice-cabundle-preserve" {
			t.Errorf("Evaluate ran mutating rule: %v", fd)
		}
	}
}
