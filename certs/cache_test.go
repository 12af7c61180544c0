package certs

import (
	"crypto/x509"
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
