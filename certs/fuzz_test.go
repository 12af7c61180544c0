package certs

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"
)

// FuzzParseBundle: any input is either certificates or an error, never a panic.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseBundle(data)
		if err == nil && len(certs) == 0 {
			t.Fatalf("no error and no certificate for %q", data)
		}
		if len(certs) > MaxBundleCertificates {
			t.Fatalf("%d certificates parsed, at most %d", len(certs), MaxBundleCertificates)
		}
	})
}

// FuzzMergeCA: any bundle merged with a fixed, valid CA of two certificates,
// at any of the next 30 days, never panics; the result parses, holds the CA,
// says truly whether it changed, and merging again changes nothing.
func FuzzMergeCA(f *testing.F) {
	base := time.Now()
	ca1, err := NewCA("fuzz-ca", 365*24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	ca2, err := NewCA("fuzz-ca-next", 365*24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	shortLived, err := ca1.IssueServing([]string{"short.example"}, nil, 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	ca := []*x509.Certificate{ca1.Cert, ca2.Cert}
	f.Add([]byte(nil), uint16(0))
	f.Add([]byte("garbage"), uint16(0))
	f.Add(ca1.CertPEM(), uint16(0))
	f.Add(EncodePEM(ca2.Cert, ca1.Cert), uint16(0))
	f.Add(append([]byte("# comment\n"), EncodePEM(shortLived.Cert, ca1.Cert, ca2.Cert)...), uint16(48))
	f.Add(EncodePEM(shortLived.Cert, shortLived.Cert), uint16(2))
	f.Add(append(ca1.CertPEM(), ca1.KeyPEM()...), uint16(0))
	f.Add(ca1.CertPEM()[:200], uint16(0))
	f.Fuzz(func(t *testing.T, bundle []byte, hours uint16) {
		now := base.Add(time.Duration(hours%(30*24)) * time.Hour)
		in := bytes.Clone(bundle)
		got, changed := MergeCA(in, ca, now)
		if !bytes.Equal(in, bundle) {
			t.Fatalf("MergeCA modified its input")
		}
		if changed == bytes.Equal(got, bundle) {
			t.Fatalf("MergeCA changed = %v, but output equal to input is %v", changed, bytes.Equal(got, bundle))
		}
		parsed, err := ParseBundle(got)
		if err != nil {
			t.Fatalf("ParseBundle(MergeCA(%q)) error = %v", bundle, err)
		}
		for _, c := range ca {
			found := false
			for _, p := range parsed {
				found = found || bytes.Equal(p.Raw, c.Raw)
			}
			if !found {
				t.Fatalf("MergeCA(%q) = %q does not hold CA certificate %s", bundle, got, Describe(c))
			}
		}
		again, changedAgain := MergeCA(got, ca, now)
		if changedAgain || !bytes.Equal(again, got) {
			t.Fatalf("MergeCA not idempotent on %q: %q then %q", bundle, got, again)
		}
	})
}
