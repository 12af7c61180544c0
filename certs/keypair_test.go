package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/certs"
)

func TestNewCA(t *testing.T) {
	before := time.Now()
	ca := mustCA(t, "guard-ca", 48*time.Hour)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("NewCA() cert is not a CA: IsCA=%v basic=%v usage=%v", c.IsCA, c.BasicConstraintsValid, c.KeyUsage)
	}
	if c.Subject.CommonName != "guard-ca" || c.Issuer.CommonName != "guard-ca" {
		t.Errorf("subject %q issuer %q, want guard-ca for both", c.Subject.CommonName, c.Issuer.CommonName)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if c.NotBefore.After(before) || c.NotAfter.Before(before.Add(47*time.Hour)) || c.NotAfter.After(before.Add(49*time.Hour)) {
		t.Errorf("validity %s .. %s, want about now .. now+48h", c.NotBefore, c.NotAfter)
	}
}

func TestIssueServing(t *testing.T) {
	ca := mustCA(t, "guard-ca", time.Hour)
	ip := net.ParseIP("10.0.0.7")
	kp, err := ca.IssueServing([]string{"guard.guard-system.svc", "guard"}, []net.IP{ip}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := kp.Cert
	if diff := cmp.Diff([]string{"guard.guard-system.svc", "guard"}, c.DNSNames); diff != "" {
		t.Errorf("DNSNames (-want +got):\n%s", diff)
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(ip) {
		t.Errorf("IPAddresses = %v, want [%v]", c.IPAddresses, ip)
	}
	if c.IsCA || c.Subject.CommonName != "guard.guard-system.svc" {
		t.Errorf("IsCA=%v CN=%q, want a leaf named after the first DNS name", c.IsCA, c.Subject.CommonName)
	}
	if err := certs.VerifyServing([]*x509.Certificate{ca.Cert}, []*x509.Certificate{c}, "guard.guard-system.svc", time.Now()); err != nil {
		t.Errorf("issued certificate does not verify against its CA: %v", err)
	}
	if kp.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Error("CA and leaf share a serial number")
	}
}

func TestKeyPairPEMAndTLS(t *testing.T) {
	ca := mustCA(t, "guard-ca", time.Hour)
	kp, err := ca.IssueServing([]string{"guard"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(kp.KeyPEM())
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("KeyPEM() is not one PRIVATE KEY block")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Errorf("KeyPEM() is not PKCS#8: %v", err)
	}
	tc, err := kp.TLSCertificate()
	if err != nil {
		t.Fatalf("TLSCertificate(): %v", err)
	}
	if len(tc.Certificate) != 1 || !bytes.Equal(tc.Certificate[0], kp.Cert.Raw) {
		t.Error("TLSCertificate() does not hold the leaf")
	}
	// A key from another pair does not match.
	if _, err := tls.X509KeyPair(kp.CertPEM(), ca.KeyPEM()); err == nil {
		t.Error("leaf certificate accepted with the CA's key")
	}
}

func TestWriteFiles(t *testing.T) {
	ca := mustCA(t, "guard-ca", time.Hour)
	kp, err := ca.IssueServing([]string{"guard"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	for range 2 { // the second write replaces the files
		if err := kp.WriteFiles(dir); err != nil {
			t.Fatalf("WriteFiles: %v", err)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
		t.Errorf("written pair does not load: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 600", e.Name(), perm)
		}
	}
	if diff := cmp.Diff([]string{"tls.crt", "tls.key"}, names); diff != "" {
		t.Errorf("files in %s (-want +got):\n%s", dir, diff)
	}
}
