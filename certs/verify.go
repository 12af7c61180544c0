package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// VerifyServing checks that chain (leaf first, as a TLS server presents it)
// verifies against roots for dnsName at time now, exactly as the aggregator's
// TLS client does with the APIService caBundle as its only roots and
// ServerName "<service>.<namespace>.svc".
func VerifyServing(roots, chain []*x509.Certificate, dnsName string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no serving certificate")
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		DNSName:       dnsName,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// HasDNSName reports whether the certificate lists name among its DNS SANs.
// Like the aggregator's Go TLS client, the subject CN is not considered.
func HasDNSName(cert *x509.Certificate, name string) bool {
	return slices.Contains(cert.DNSNames, name) || cert.VerifyHostname(name) == nil
}

// Expiry classifies the validity of cert at now: an error when it is not valid
// (expired or not yet valid), else the time left.
func Expiry(cert *x509.Certificate, now time.Time) (time.Duration, error) {
	if now.After(cert.NotAfter) {
		return 0, fmt.Errorf("certificate %s expired on %s", Describe(cert), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return 0, fmt.Errorf("certificate %s is not valid before %s", Describe(cert), cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return cert.NotAfter.Sub(now), nil
}
