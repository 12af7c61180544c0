package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/certs"
)

const svcName = "keda-operator-metrics-apiserver.keda.svc"

func mustServing(t *testing.T, ca *certs.KeyPair, validity time.Duration, names ...string) *certs.KeyPair {
	t.Helper()
	kp, err := ca.IssueServing(names, nil, validity)
	if err != nil {
		t.Fatalf("IssueServing(%v): %v", names, err)
	}
	return kp
}

// signed issues a certificate from tmpl signed by parent, for shapes the
// package does not mint itself (intermediate CAs, client certificates).
func signed(t *testing.T, tmpl *x509.Certificate, parent *certs.KeyPair) *certs.KeyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.Cert, key.Public(), parent.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certs.KeyPair{Cert: cert, Key: key}
}

func TestVerifyServing(t *testing.T) {
	ca, other := mustCA(t, "keda-ca", 365*24*time.Hour), mustCA(t, "other-ca", time.Hour)
	leaf := mustServing(t, ca, 30*24*time.Hour, svcName)
	inter := signed(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "intermediate"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, ca)
	viaInter := mustServing(t, inter, time.Hour, svcName)
	clientOnly := signed(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: svcName}, DNSNames: []string{svcName},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
	now := time.Now()
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	tests := []struct {
		name    string
		roots   []*x509.Certificate
		chain   []*x509.Certificate
		dnsName string
		now     time.Time
		wantAs  any    // pointer to the x509 error type expected; nil means no error
		wantErr string // or a substring of the error
	}{
		{name: "good chain", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{leaf.Cert}, dnsName: svcName, now: now},
		{name: "CA among others", roots: []*x509.Certificate{other.Cert, ca.Cert}, chain: []*x509.Certificate{leaf.Cert}, dnsName: svcName, now: now},
		{name: "no name check", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{leaf.Cert}, now: now},
		{name: "through an intermediate", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{viaInter.Cert, inter.Cert}, dnsName: svcName, now: now},
		{name: "intermediate not presented", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{viaInter.Cert}, dnsName: svcName, now: now, wantAs: &unknown},
		{name: "wrong CA", roots: []*x509.Certificate{other.Cert}, chain: []*x509.Certificate{leaf.Cert}, dnsName: svcName, now: now, wantAs: &unknown},
		{name: "no roots", chain: []*x509.Certificate{leaf.Cert}, dnsName: svcName, now: now, wantAs: &unknown},
		{name: "wrong DNS name", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{leaf.Cert}, dnsName: "metrics-server.kube-system.svc", now: now, wantAs: &hostname},
		{name: "expired leaf", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{leaf.Cert}, dnsName: svcName, now: now.Add(60 * 24 * time.Hour), wantAs: &invalid},
		{name: "not yet valid", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{leaf.Cert}, dnsName: svcName, now: now.Add(-time.Hour), wantAs: &invalid},
		{name: "client certificate", roots: []*x509.Certificate{ca.Cert}, chain: []*x509.Certificate{clientOnly.Cert}, dnsName: svcName, now: now, wantAs: &invalid},
		{name: "empty chain", roots: []*x509.Certificate{ca.Cert}, now: now, wantErr: "no serving certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := certs.VerifyServing(tc.roots, tc.chain, tc.dnsName, tc.now)
			switch {
			case tc.wantAs != nil:
				if !errors.As(err, tc.wantAs) {
					t.Errorf("VerifyServing() = %v, want a %T", err, tc.wantAs)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("VerifyServing() = %v, want an error containing %q", err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("VerifyServing() = %v, want nil", err)
			}
		})
	}
	err := certs.VerifyServing([]*x509.Certificate{ca.Cert}, []*x509.Certificate{leaf.Cert}, svcName, now.Add(60*24*time.Hour))
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired leaf: VerifyServing() = %v, want a CertificateInvalidError with reason Expired", err)
	}
}

func TestHasDNSName(t *testing.T) {
	ca := mustCA(t, "ca", time.Hour)
	exact := mustServing(t, ca, time.Hour, "metrics-server", svcName)
	wildcard := mustServing(t, ca, time.Hour, "*.keda.svc")
	cnOnly, err := ca.IssueServing(nil, []net.IP{net.ParseIP("10.0.0.1")}, time.Hour) // CN "serving", no DNS SANs
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		dns  string
		want bool
	}{
		{"exact", exact.Cert, svcName, true},
		{"second name", exact.Cert, "metrics-server", true},
		{"case-insensitive", exact.Cert, strings.ToUpper(svcName), true},
		{"cluster.local form is another name", exact.Cert, svcName + ".cluster.local", false},
		{"absent", exact.Cert, "keda-operator.keda.svc", false},
		{"wildcard", wildcard.Cert, svcName, true},
		{"wildcard covers one label only", wildcard.Cert, "a.b.keda.svc", false},
		{"subject CN is not considered", cnOnly.Cert, "serving", false},
	}
	for _, tc := range tests {
		if got := certs.HasDNSName(tc.cert, tc.dns); got != tc.want {
			t.Errorf("%s: HasDNSName(%v, %q) = %v, want %v", tc.name, tc.cert.DNSNames, tc.dns, got, tc.want)
		}
	}
}

func TestExpiry(t *testing.T) {
	ca := mustCA(t, "ca", 10*24*time.Hour)
	c := ca.Cert
	tests := []struct {
		name    string
		now     time.Time
		want    time.Duration
		wantErr string
	}{
		{name: "valid", now: c.NotAfter.Add(-72 * time.Hour), want: 72 * time.Hour},
		{name: "last instant", now: c.NotAfter, want: 0},
		{name: "expired", now: c.NotAfter.Add(time.Second), wantErr: "expired on " + c.NotAfter.UTC().Format(time.RFC3339)},
		{name: "not yet valid", now: c.NotBefore.Add(-time.Second), wantErr: "is not valid before " + c.NotBefore.UTC().Format(time.RFC3339)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := certs.Expiry(c, tc.now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), certs.Describe(c)) {
					t.Errorf("Expiry() = %v, %v; want an error naming the certificate and containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Expiry() = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
