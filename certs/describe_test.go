package certs_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/certs"
)

func TestDescribe(t *testing.T) {
	ca := mustCA(t, "keda-ca", time.Hour)
	// der stands in for a certificate's DER bytes: Describe only hashes them.
	der := []byte("der")
	const derPrint = "(sha256 5050d80d)"
	tests := []struct {
		name string
		cert *x509.Certificate
		want string
	}{{
		name: "CA",
		cert: ca.Cert,
		want: `"CN=keda-ca" (sha256 ` + certs.Fingerprint(ca.Cert)[:8] + ")",
	}, {
		name: "full subject",
		cert: &x509.Certificate{Raw: der, Subject: pkix.Name{CommonName: "keda-ca", Organization: []string{"acme"}}},
		want: `"CN=keda-ca,O=acme" ` + derPrint,
	}, {
		name: "no subject",
		cert: &x509.Certificate{Raw: der},
		want: "(no subject) " + derPrint,
	}, {
		name: "control characters and bidi overrides dropped",
		cert: &x509.Certificate{Raw: der, Subject: pkix.Name{CommonName: "keda\x1b[31m-ca\u202e\n"}},
		want: `"CN=keda[31m-ca" ` + derPrint,
	}, {
		name: "invalid UTF-8 replaced",
		cert: &x509.Certificate{Raw: der, Subject: pkix.Name{CommonName: "ca\xff"}},
		want: "\"CN=ca\uFFFD\" " + derPrint,
	}, {
		name: "long subject cut",
		cert: &x509.Certificate{Raw: der, Subject: pkix.Name{CommonName: strings.Repeat("x", 100)}},
		want: `"CN=` + strings.Repeat("x", 58) + `..." ` + derPrint,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, certs.Describe(tt.cert)); diff != "" {
				t.Errorf("Describe() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDescribeTellsSameNamedCAsApart: a stale and a fresh CA with one common
// name get different names.
func TestDescribeTellsSameNamedCAsApart(t *testing.T) {
	stale, fresh := mustCA(t, "keda-ca", time.Hour), mustCA(t, "keda-ca", time.Hour)
	s, f := certs.Describe(stale.Cert), certs.Describe(fresh.Cert)
	if s == f {
		t.Errorf("Describe() = %q for both CAs named keda-ca, want different names", s)
	}
	for _, got := range []string{s, f} {
		if !strings.HasPrefix(got, `"CN=keda-ca" (sha256 `) {
			t.Errorf("Describe() = %q, want the subject and a fingerprint", got)
		}
	}
}

func TestDescribeIssuer(t *testing.T) {
	stale, fresh := mustCA(t, "keda-ca", time.Hour), mustCA(t, "keda-ca", time.Hour)
	leaf, err := fresh.IssueServing([]string{"keda.keda.svc"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyID := `"CN=keda-ca" (key id `
	tests := []struct {
		name       string
		candidates []*x509.Certificate
		want       string // prefix
	}{
		{name: "issuer among the candidates", candidates: []*x509.Certificate{stale.Cert, fresh.Cert}, want: certs.Describe(fresh.Cert)},
		{name: "only a CA with the same name", candidates: []*x509.Certificate{stale.Cert}, want: keyID},
		{name: "no candidates", want: keyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := certs.DescribeIssuer(leaf.Cert, tt.candidates...)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("DescribeIssuer() = %q, want prefix %q", got, tt.want)
			}
			if got == certs.Describe(stale.Cert) {
				t.Errorf("DescribeIssuer() = %q names the stale CA", got)
			}
		})
	}
}
