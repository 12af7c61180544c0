package certs_test

import (
	"bytes"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/certs"
)

func mustCA(t *testing.T, cn string, validity time.Duration) *certs.KeyPair {
	t.Helper()
	kp, err := certs.NewCA(cn, validity)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", cn, err)
	}
	return kp
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseBundle(t *testing.T) {
	a, b := mustCA(t, "ca-a", time.Hour), mustCA(t, "ca-b", time.Hour)
	badBase64 := []byte("-----BEGIN CERTIFICATE-----\n!!! not base64 !!!\n-----END CERTIFICATE-----\n")
	crlf := bytes.ReplaceAll(a.CertPEM(), []byte("\n"), []byte("\r\n"))
	tests := []struct {
		name    string
		in      []byte
		want    []string // subject CNs
		wantErr string   // substring; "" means no error
	}{
		{name: "one certificate", in: a.CertPEM(), want: []string{"ca-a"}},
		{name: "two certificates", in: join(a.CertPEM(), b.CertPEM()), want: []string{"ca-a", "ca-b"}},
		{name: "surrounding whitespace", in: join([]byte("\n  \n"), a.CertPEM(), []byte("\n\n"), b.CertPEM(), []byte("\n \t")), want: []string{"ca-a", "ca-b"}},
		{name: "CRLF line endings", in: crlf, want: []string{"ca-a"}},
		{name: "empty", in: nil, wantErr: certs.ErrEmpty.Error()},
		{name: "only whitespace", in: []byte(" \n\t\n"), wantErr: certs.ErrEmpty.Error()},
		{name: "garbage", in: []byte("not a certificate"), wantErr: "not PEM: no -----BEGIN CERTIFICATE----- block found"},
		{name: "base64 of PEM (double encoded)", in: []byte("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUI="), wantErr: "not PEM"},
		// Text outside blocks is ignored, as the aggregator's CertPool does:
		// openssl output and commented CA files work in a cluster.
		{name: "trailing text", in: join(a.CertPEM(), []byte("garbage")), want: []string{"ca-a"}},
		{name: "leading openssl subject line", in: join([]byte("subject=CN = ca-a\n"), a.CertPEM()), want: []string{"ca-a"}},
		{name: "comment between blocks", in: join(a.CertPEM(), []byte("# ca-b, added for rotation\n"), b.CertPEM()), want: []string{"ca-a", "ca-b"}},
		{name: "private key after a certificate", in: join(a.CertPEM(), a.KeyPEM()), wantErr: "block 2 is a PRIVATE KEY"},
		{name: "EC private key", in: pemBlock("EC PRIVATE KEY", []byte{1, 2, 3}), wantErr: "block 1 is a EC PRIVATE KEY"},
		{name: "non-certificate block", in: join(a.CertPEM(), pemBlock("PUBLIC KEY", a.Cert.RawSubjectPublicKeyInfo)), wantErr: `block 2 is a "PUBLIC KEY" block, want CERTIFICATE`},
		{name: "corrupt DER", in: pemBlock("CERTIFICATE", a.Cert.Raw[:len(a.Cert.Raw)-10]), wantErr: "block 1 is not a valid certificate"},
		{name: "bad base64 first", in: join(badBase64, a.CertPEM()), wantErr: "block 1 is not valid PEM"},
		{name: "bad base64 in the middle", in: join(a.CertPEM(), badBase64, b.CertPEM()), wantErr: "block 2 is not valid PEM"},
		{name: "missing END line", in: bytes.TrimSuffix(a.CertPEM(), []byte("-----END CERTIFICATE-----\n")), wantErr: "block 1 is not valid PEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := certs.ParseBundle(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseBundle() = %d certificates, error %v; want error containing %q", len(got), err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("ParseBundle() returned %d certificates with an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBundle(): %v", err)
			}
			var cns []string
			for _, c := range got {
				cns = append(cns, c.Subject.CommonName)
			}
			if diff := cmp.Diff(tc.want, cns); diff != "" {
				t.Errorf("ParseBundle() subjects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseBundleEmptyIsErrEmpty(t *testing.T) {
	if _, err := certs.ParseBundle([]byte("\n")); !errors.Is(err, certs.ErrEmpty) {
		t.Errorf("ParseBundle(newline) error = %v, want ErrEmpty", err)
	}
}

func TestEncodePEMRoundTrip(t *testing.T) {
	a, b := mustCA(t, "ca-a", time.Hour), mustCA(t, "ca-b", time.Hour)
	if got := certs.EncodePEM(); len(got) != 0 {
		t.Errorf("EncodePEM() = %q, want nothing", got)
	}
	got, err := certs.ParseBundle(certs.EncodePEM(a.Cert, b.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(a.Cert) || !got[1].Equal(b.Cert) {
		t.Errorf("round trip gave %d certificates, want ca-a then ca-b", len(got))
	}
	if !bytes.Equal(certs.EncodePEM(a.Cert), a.CertPEM()) {
		t.Error("EncodePEM(cert) differs from KeyPair.CertPEM()")
	}
}

func TestFingerprint(t *testing.T) {
	a, b := mustCA(t, "ca-a", time.Hour), mustCA(t, "ca-b", time.Hour)
	fa := certs.Fingerprint(a.Cert)
	if len(fa) != 64 || strings.Trim(fa, "0123456789abcdef") != "" {
		t.Errorf("Fingerprint() = %q, want 64 lower-case hex digits", fa)
	}
	if fa == certs.Fingerprint(b.Cert) {
		t.Error("two certificates have the same fingerprint")
	}
}
