package certs_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/certs"
)

const (
	injectFrom       = cmapi.WantInjectAnnotation           // cert-manager.io/inject-ca-from
	injectFromSecret = cmapi.WantInjectFromSecretAnnotation // cert-manager.io/inject-ca-from-secret
)

func TestCASourceOf(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        certs.CASource
		wantOK      bool
		wantErr     string // the annotation value the error must quote; "" for no error
	}{
		{name: "no annotations", annotations: nil},
		{name: "unrelated annotations", annotations: map[string]string{"a": "b/c"}},
		{
			name:        "inject-ca-from",
			annotations: map[string]string{injectFrom: "keda/keda-cert"},
			want:        certs.CASource{Annotation: injectFrom, Namespace: "keda", Name: "keda-cert"},
			wantOK:      true,
		},
		{
			name:        "inject-ca-from-secret",
			annotations: map[string]string{injectFromSecret: "keda/keda-tls"},
			want:        certs.CASource{Annotation: injectFromSecret, Namespace: "keda", Name: "keda-tls"},
			wantOK:      true,
		},
		{
			// cainjector (v1.21) asks its sources in the order Secret,
			// Certificate, kubeconfig: the first one configured wins.
			name:        "both: inject-ca-from-secret wins, as in cainjector",
			annotations: map[string]string{injectFrom: "keda/keda-cert", injectFromSecret: "keda/keda-tls"},
			want:        certs.CASource{Annotation: injectFromSecret, Namespace: "keda", Name: "keda-tls"},
			wantOK:      true,
		},
		{
			name:        "both, the winner malformed: its error",
			annotations: map[string]string{injectFrom: "keda/keda-cert", injectFromSecret: "keda-tls"},
			want:        certs.CASource{Annotation: injectFromSecret},
			wantOK:      true,
			wantErr:     "keda-tls",
		},
		{
			name:        "name with dots",
			annotations: map[string]string{injectFrom: "kube-system/metrics-server.tls"},
			want:        certs.CASource{Annotation: injectFrom, Namespace: "kube-system", Name: "metrics-server.tls"},
			wantOK:      true,
		},
		{name: "no slash", annotations: map[string]string{injectFrom: "no-slash"}, want: certs.CASource{Annotation: injectFrom}, wantOK: true, wantErr: "no-slash"},
		{name: "empty namespace", annotations: map[string]string{injectFrom: "/name"}, want: certs.CASource{Annotation: injectFrom}, wantOK: true, wantErr: "/name"},
		{name: "empty name", annotations: map[string]string{injectFromSecret: "ns/"}, want: certs.CASource{Annotation: injectFromSecret}, wantOK: true, wantErr: "ns/"},
		{name: "two slashes", annotations: map[string]string{injectFrom: "ns/a/b"}, want: certs.CASource{Annotation: injectFrom}, wantOK: true, wantErr: "ns/a/b"},
		{name: "upper-case namespace", annotations: map[string]string{injectFrom: "Keda/keda-cert"}, want: certs.CASource{Annotation: injectFrom}, wantOK: true, wantErr: "Keda/keda-cert"},
		{name: "underscore in namespace", annotations: map[string]string{injectFromSecret: "ke_da/keda-tls"}, want: certs.CASource{Annotation: injectFromSecret}, wantOK: true, wantErr: "ke_da/keda-tls"},
		{name: "dot in namespace", annotations: map[string]string{injectFrom: "ke.da/keda-cert"}, want: certs.CASource{Annotation: injectFrom}, wantOK: true, wantErr: "ke.da/keda-cert"},
		{name: "space in name", annotations: map[string]string{injectFrom: "keda/keda cert"}, want: certs.CASource{Annotation: injectFrom}, wantOK: true, wantErr: "keda/keda cert"},
		{name: "empty value", annotations: map[string]string{injectFrom: ""}, want: certs.CASource{Annotation: injectFrom}, wantOK: true, wantErr: `""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := certs.CASourceOf(tc.annotations)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CASourceOf(%v) source mismatch (-want +got):\n%s", tc.annotations, diff)
			}
			if ok != tc.wantOK {
				t.Errorf("CASourceOf(%v) ok = %v, want %v", tc.annotations, ok, tc.wantOK)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CASourceOf(%v) error = %v, want none", tc.annotations, err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("CASourceOf(%v) error = nil, want one quoting %s", tc.annotations, tc.wantErr)
			case tc.wantErr != "":
				quoted := tc.wantErr
				if quoted != `""` {
					quoted = strconv.Quote(tc.wantErr)
				}
				if msg := err.Error(); !strings.Contains(msg, quoted) || !strings.Contains(msg, tc.want.Annotation) {
					t.Errorf("CASourceOf(%v) error = %q, want it to quote %s and name %s", tc.annotations, msg, quoted, tc.want.Annotation)
				}
			}
		})
	}
}

func TestCASourceString(t *testing.T) {
	tests := []struct {
		src          certs.CASource
		want         string
		wantFromSecr bool
	}{
		{src: certs.CASource{Annotation: injectFrom, Namespace: "keda", Name: "keda-cert"}, want: "Certificate keda/keda-cert"},
		{src: certs.CASource{Annotation: injectFromSecret, Namespace: "keda", Name: "keda-tls"}, want: "Secret keda/keda-tls", wantFromSecr: true},
	}
	for _, tc := range tests {
		if got := tc.src.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.src, got, tc.want)
		}
		if got := tc.src.FromSecret(); got != tc.wantFromSecr {
			t.Errorf("%#v.FromSecret() = %v, want %v", tc.src, got, tc.wantFromSecr)
		}
	}
}

// fakeReader is an in-memory certs.CAReader. Objects are keyed
// "<namespace>/<name>"; a key in forbidden is refused for either kind, and a
// key in failing fails with a plain error.
type fakeReader struct {
	secrets      map[string]*corev1.Secret
	certificates map[string]*cmapi.Certificate
	forbidden    map[string]bool
	failing      map[string]bool
}

var _ certs.CAReader = fakeReader{}

func (f fakeReader) Secret(_ context.Context, namespace, name string) (*corev1.Secret, error) {
	key := namespace + "/" + name
	if err := f.refuse(key, corev1.Resource("secrets"), name); err != nil {
		return nil, err
	}
	if s, ok := f.secrets[key]; ok {
		return s.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
}

func (f fakeReader) Certificate(_ context.Context, namespace, name string) (*cmapi.Certificate, error) {
	key := namespace + "/" + name
	if err := f.refuse(key, cmapi.Resource("certificates"), name); err != nil {
		return nil, err
	}
	if c, ok := f.certificates[key]; ok {
		return c.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(cmapi.Resource("certificates"), name)
}

// refuse returns the error configured for key, if any.
func (f fakeReader) refuse(key string, gr schema.GroupResource, name string) error {
	switch {
	case f.forbidden[key]:
		return apierrors.NewForbidden(gr, name, errors.New("RBAC: access denied"))
	case f.failing[key]:
		return errors.New("connection refused")
	}
	return nil
}

// secret builds a Secret.
func secret(ns, name string, annotations map[string]string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Data:       data,
	}
}

// certificate builds a Certificate writing to secretName.
func certificate(ns, name, secretName string) *cmapi.Certificate {
	return &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       cmapi.CertificateSpec{SecretName: secretName},
	}
}

func TestReadCA(t *testing.T) {
	ca := mustCA(t, "keda-ca", time.Hour)
	ca2 := mustCA(t, "keda-ca-next", time.Hour)
	owned := map[string]string{cmapi.CertificateNameKey: "keda-cert"}
	direct := map[string]string{cmapi.AllowsInjectionFromSecretAnnotation: "true"}
	caData := map[string][]byte{certs.CAKey: ca.CertPEM(), "tls.crt": []byte("ignored"), "tls.key": []byte("ignored")}

	fromCert := certs.CASource{Annotation: injectFrom, Namespace: "keda", Name: "keda-cert"}
	fromSecret := certs.CASource{Annotation: injectFromSecret, Namespace: "keda", Name: "keda-tls"}
	withCert := func(secretName string) map[string]*cmapi.Certificate {
		return map[string]*cmapi.Certificate{"keda/keda-cert": certificate("keda", "keda-cert", secretName)}
	}
	withSecret := func(annotations map[string]string, data map[string][]byte) map[string]*corev1.Secret {
		return map[string]*corev1.Secret{"keda/keda-tls": secret("keda", "keda-tls", annotations, data)}
	}

	tests := []struct {
		name      string
		reader    fakeReader
		src       certs.CASource
		wantCerts []string // subject CNs
		wantErr   []string // substrings of the message; nil for success
	}{
		{
			name:      "Certificate and its Secret",
			reader:    fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(owned, caData)},
			src:       fromCert,
			wantCerts: []string{"keda-ca"},
		},
		{
			name: "Certificate and its Secret holding two CAs",
			reader: fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(owned,
				map[string][]byte{certs.CAKey: join([]byte("# rotation\n"), ca2.CertPEM(), ca.CertPEM())})},
			src:       fromCert,
			wantCerts: []string{"keda-ca-next", "keda-ca"},
		},
		{
			name:    "Certificate missing",
			reader:  fakeReader{secrets: withSecret(owned, caData)},
			src:     fromCert,
			wantErr: []string{"Certificate keda/keda-cert not found"},
		},
		{
			name:    "Certificate without spec.secretName",
			reader:  fakeReader{certificates: withCert(""), secrets: withSecret(owned, caData)},
			src:     fromCert,
			wantErr: []string{"Certificate keda/keda-cert has no spec.secretName"},
		},
		{
			name:    "Certificate forbidden",
			reader:  fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(owned, caData), forbidden: map[string]bool{"keda/keda-cert": true}},
			src:     fromCert,
			wantErr: []string{"reading Certificate keda/keda-cert is forbidden", "RBAC: access denied"},
		},
		{
			name:    "Certificate read fails",
			reader:  fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(owned, caData), failing: map[string]bool{"keda/keda-cert": true}},
			src:     fromCert,
			wantErr: []string{"reading Certificate keda/keda-cert: connection refused"},
		},
		{
			name:    "Certificate's Secret missing",
			reader:  fakeReader{certificates: withCert("keda-tls")},
			src:     fromCert,
			wantErr: []string{"Secret keda/keda-tls not found"},
		},
		{
			name:    "Certificate's Secret forbidden",
			reader:  fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(owned, caData), forbidden: map[string]bool{"keda/keda-tls": true}},
			src:     fromCert,
			wantErr: []string{"reading Secret keda/keda-tls is forbidden"},
		},
		{
			name:    "Certificate's Secret without certificate-name annotation",
			reader:  fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(nil, caData)},
			src:     fromCert,
			wantErr: []string{"Secret keda/keda-tls is not annotated cert-manager.io/certificate-name: keda-cert", "Certificate keda/keda-cert"},
		},
		{
			name: "Certificate's Secret annotated for another Certificate",
			reader: fakeReader{certificates: withCert("keda-tls"),
				secrets: withSecret(map[string]string{cmapi.CertificateNameKey: "other-cert"}, caData)},
			src:     fromCert,
			wantErr: []string{"Secret keda/keda-tls is not annotated cert-manager.io/certificate-name: keda-cert"},
		},
		{
			// allow-direct-injection is for inject-ca-from-secret only.
			name:    "Certificate's Secret allowing direct injection but not owned",
			reader:  fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(direct, caData)},
			src:     fromCert,
			wantErr: []string{"Secret keda/keda-tls is not annotated cert-manager.io/certificate-name"},
		},
		{
			name:    "Certificate's Secret without ca.crt",
			reader:  fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(owned, map[string][]byte{"tls.crt": ca.CertPEM()})},
			src:     fromCert,
			wantErr: []string{"Secret keda/keda-tls has no ca.crt"},
		},
		{
			name:      "direct Secret allowing injection",
			reader:    fakeReader{secrets: withSecret(direct, caData)},
			src:       fromSecret,
			wantCerts: []string{"keda-ca"},
		},
		{
			name:    "direct Secret missing",
			reader:  fakeReader{},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls not found"},
		},
		{
			name:    "direct Secret without allow-direct-injection",
			reader:  fakeReader{secrets: withSecret(nil, caData)},
			src:     fromSecret,
			wantErr: []string{`Secret keda/keda-tls is not annotated cert-manager.io/allow-direct-injection: "true"`},
		},
		{
			// Being a Certificate's Secret does not allow direct injection.
			name:    "direct Secret owned by a Certificate",
			reader:  fakeReader{secrets: withSecret(map[string]string{cmapi.CertificateNameKey: "keda-tls"}, caData)},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls is not annotated cert-manager.io/allow-direct-injection"},
		},
		{
			name:    "direct Secret with allow-direct-injection not exactly true",
			reader:  fakeReader{secrets: withSecret(map[string]string{cmapi.AllowsInjectionFromSecretAnnotation: "True"}, caData)},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls is not annotated cert-manager.io/allow-direct-injection"},
		},
		{
			name:    "direct Secret forbidden",
			reader:  fakeReader{secrets: withSecret(direct, caData), forbidden: map[string]bool{"keda/keda-tls": true}},
			src:     fromSecret,
			wantErr: []string{"reading Secret keda/keda-tls is forbidden", "RBAC: access denied"},
		},
		{
			name:    "Secret without ca.crt",
			reader:  fakeReader{secrets: withSecret(direct, map[string][]byte{"tls.crt": ca.CertPEM()})},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls has no ca.crt"},
		},
		{
			name:    "Secret without data",
			reader:  fakeReader{secrets: withSecret(direct, nil)},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls has no ca.crt"},
		},
		{
			name:    "ca.crt empty",
			reader:  fakeReader{secrets: withSecret(direct, map[string][]byte{certs.CAKey: {}})},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls has no ca.crt"},
		},
		{
			name:    "ca.crt whitespace",
			reader:  fakeReader{secrets: withSecret(direct, map[string][]byte{certs.CAKey: []byte("\n \n")})},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls ca.crt: empty"},
		},
		{
			name:    "ca.crt not PEM",
			reader:  fakeReader{secrets: withSecret(direct, map[string][]byte{certs.CAKey: []byte("not a certificate")})},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls ca.crt: not PEM"},
		},
		{
			name:    "ca.crt holding a private key",
			reader:  fakeReader{secrets: withSecret(direct, map[string][]byte{certs.CAKey: ca.KeyPEM()})},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls ca.crt: block 1 is a PRIVATE KEY"},
		},
		{
			name:    "ca.crt holding a certificate and its key",
			reader:  fakeReader{certificates: withCert("keda-tls"), secrets: withSecret(owned, map[string][]byte{certs.CAKey: join(ca.CertPEM(), ca.KeyPEM())})},
			src:     fromCert,
			wantErr: []string{"Secret keda/keda-tls ca.crt: block 2 is a PRIVATE KEY"},
		},
		{
			name:    "ca.crt truncated",
			reader:  fakeReader{secrets: withSecret(direct, map[string][]byte{certs.CAKey: ca.CertPEM()[:100]})},
			src:     fromSecret,
			wantErr: []string{"Secret keda/keda-tls ca.crt: block 1 is not valid PEM"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := certs.ReadCA(t.Context(), tc.reader, tc.src)
			if tc.wantErr != nil {
				if got != nil {
					t.Errorf("ReadCA() = %+v, want nil with an error", got)
				}
				checkNoCAError(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("ReadCA() error = %v", err)
			}
			if diff := cmp.Diff("keda/keda-tls", got.Secret); diff != "" {
				t.Errorf("ReadCA().Secret mismatch (-want +got):\n%s", diff)
			}
			var cns []string
			for _, c := range got.Certs {
				cns = append(cns, c.Subject.CommonName)
			}
			if diff := cmp.Diff(tc.wantCerts, cns); diff != "" {
				t.Errorf("ReadCA().Certs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// checkNoCAError checks err wraps certs.ErrNoCA, contains every one of want,
// and is only the reason: it does not start with ErrNoCA's own text.
func checkNoCAError(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("ReadCA() error = nil, want one containing %q", want)
	}
	if !errors.Is(err, certs.ErrNoCA) {
		t.Errorf("ReadCA() error %q does not wrap certs.ErrNoCA", err)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("ReadCA() error = %q, want it to contain %q", msg, w)
		}
	}
	if strings.HasPrefix(msg, certs.ErrNoCA.Error()) {
		t.Errorf("ReadCA() error = %q, want only the reason, without the %q prefix", msg, certs.ErrNoCA.Error()+":")
	}
}
