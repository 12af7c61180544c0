package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCacheGivesTheSameAnswers(t *testing.T) {
	ca, err := NewCA("cache-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServing([]string{"svc.ns.svc"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(CacheOptions{})
	now := time.Now()
	for i := range 2 { // second round is served from the cache
		roots, err := c.ParseBundle(ca.CertPEM())
		if err != nil || len(roots) != 1 {
			t.Fatalf("round %d: ParseBundle = %v, %v", i, roots, err)
		}
		if _, err := c.ParseBundle([]byte("garbage")); err == nil {
			t.Fatalf("round %d: garbage parsed", i)
		}
		chain := []*x509.Certificate{leaf.Cert}
		if err := c.VerifyServing(roots, chain, "svc.ns.svc", now); err != nil {
			t.Fatalf("round %d: good chain: %v", i, err)
		}
		if err := c.VerifyServing([]*x509.Certificate{other.Cert}, chain, "svc.ns.svc", now); err == nil {
			t.Fatalf("round %d: wrong CA verified", i)
		}
		// The same content two hours later is another time bucket: expired.
		if err := c.VerifyServing(roots, chain, "svc.ns.svc", now.Add(2*time.Hour)); err == nil {
			t.Fatalf("round %d: expired chain verified from a stale cache entry", i)
		}
	}
	if c.parsed.Len() != 2 || c.verified.Len() != 3 {
		t.Fatalf("cache holds %d parsed, %d verified; want 2, 3", c.parsed.Len(), c.verified.Len())
	}
	var nilCache *Cache
	if _, err := nilCache.ParseBundle(ca.CertPEM()); err != nil {
		t.Fatalf("nil cache: %v", err)
	}
}

// TestCachedVerificationErrorsHoldNoCertificate: the errors kept are
// detached from the certificates they are about (x509's errors point to
// them), the unknown-authority kind is kept for what reads it, a long
// message is capped, and the results' bytes stay within their budget.
func TestCachedVerificationErrorsHoldNoCertificate(t *testing.T) {
	ca, err := NewCA("cache-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate of many names, which x509's HostnameError points to.
	names := make([]string, 400)
	for i := range names {
		names[i] = fmt.Sprintf("name-%03d.example.invalid", i)
	}
	leaf, err := ca.IssueServing(names, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{leaf.Cert}
	c := NewCache(CacheOptions{VerifiedBytes: 64 << 10})
	now := time.Now()

	err = c.VerifyServing([]*x509.Certificate{other.Cert}, chain, "", now)
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("wrong CA: %T %v, want an x509.UnknownAuthorityError", err, err)
	}
	if ua.Cert != nil {
		t.Error("the cached unknown-authority error holds the certificate")
	}

	if long := detach(errors.New(strings.Repeat("x", 10*MaxErrorLength))); len(long.Error()) > MaxErrorLength {
		t.Errorf("a detached message of %d bytes, want at most %d", len(long.Error()), MaxErrorLength)
	}
	for i := range 2 {
		err = c.VerifyServing([]*x509.Certificate{ca.Cert}, chain, "svc.ns.svc", now)
		if err == nil || len(err.Error()) > MaxErrorLength {
			t.Fatalf("round %d: name error %v, want one of at most %d bytes", i, err, MaxErrorLength)
		}
		var he x509.HostnameError
		if errors.As(err, &he) {
			t.Fatalf("round %d: the cached name error holds its certificate", i)
		}
	}

	for i := range 500 { // distinct keys: other names
		_ = c.VerifyServing([]*x509.Certificate{ca.Cert}, chain, fmt.Sprintf("svc-%d.ns.svc", i), now)
	}
	if got := c.verified.Bytes(); got > 64<<10 {
		t.Errorf("verification results hold %d bytes, budget %d", got, 64<<10)
	}
	if c.verified.Len() == 0 || c.verified.Len() >= 500 {
		t.Errorf("verification results: %d kept of 500, want some evicted", c.verified.Len())
	}
}
