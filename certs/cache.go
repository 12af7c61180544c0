package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/internal/ttlcache"
)

// Cache memoizes ParseBundle and VerifyServing by content: the same caBundle
// bytes or the same roots, chain and name are parsed or verified once. A
// verification result is keyed by the time bucket (Bucket wide) it was made
// in, so it is never reused across an expiry by more than one bucket. A nil
// *Cache is valid and caches nothing. Returned certificates are shared and
// must not be modified.
type Cache struct {
	parsed   *ttlcache.Cache[[]*x509.Certificate]
	verified *ttlcache.Cache[struct{}]
	bucket   time.Duration
}

// CacheOptions configure a Cache.
type CacheOptions struct {
	// Size bounds the parsed bundles and the verification results kept, each.
	// Default 4096.
	Size int
	// Bytes bounds the memory the parsed bundles hold, as estimated by
	// ParsedBytes; the oldest are evicted first. Default 32 MiB.
	Bytes int64
	// VerifiedBytes bounds the memory the verification results hold (a key
	// and an error message of at most MaxErrorLength each). Default 4 MiB.
	VerifiedBytes int64
	// Bucket is the time granularity of verification results and how long
	// entries live. Default 1 minute.
	Bucket time.Duration
}

// NewCache returns a cache.
func NewCache(o CacheOptions) *Cache {
	if o.Size <= 0 {
		o.Size = 4096
	}
	if o.Bucket <= 0 {
		o.Bucket = time.Minute
	}
	if o.Bytes <= 0 {
		o.Bytes = 32 << 20
	}
	if o.VerifiedBytes <= 0 {
		o.VerifiedBytes = 4 << 20
	}
	return &Cache{
		parsed:   ttlcache.NewSized(o.Size, o.Bytes, ParsedBytes),
		verified: ttlcache.NewSized(o.Size, o.VerifiedBytes, func(struct{}) int64 { return 0 }),
		bucket:   o.Bucket,
	}
}

// ParseBundle is ParseBundle, memoized by the bytes' SHA-256.
func (c *Cache) ParseBundle(data []byte) ([]*x509.Certificate, error) {
	if c == nil {
		return ParseBundle(data)
	}
	sum := sha256.Sum256(data)
	key := string(sum[:])
	if certs, err, ok := c.parsed.Get(key); ok {
		return certs, err
	}
	certs, err := ParseBundle(data)
	c.parsed.Put(key, certs, err, c.bucket)
	return certs, err
}

// VerifyServing is VerifyServing, memoized by roots, chain, name and the time
// bucket of now.
func (c *Cache) VerifyServing(roots, chain []*x509.Certificate, dnsName string, now time.Time) error {
	if c == nil {
		return VerifyServing(roots, chain, dnsName, now)
	}
	h := sha256.New()
	for _, group := range [][]*x509.Certificate{roots, chain} {
		for _, cert := range group {
			sum := sha256.Sum256(cert.Raw)
			h.Write(sum[:])
		}
		h.Write([]byte{0})
	}
	h.Write([]byte(dnsName))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()/int64(c.bucket))))
	key := string(h.Sum(nil))
	if _, err, ok := c.verified.Get(key); ok {
		return err
	}
	err := detach(VerifyServing(roots, chain, dnsName, now))
	c.verified.Put(key, struct{}{}, err, c.bucket)
	return err
}

// MaxErrorLength caps the message of a verification error kept by a Cache.
const MaxErrorLength = 1024

// detach returns a verification error that holds no certificate: x509's
// errors point to the certificate they are about, which a cached error
// would keep alive past the parse cache's budget. An unknown authority
// stays an x509.UnknownAuthorityError (without its certificate); any
// other error becomes its message, capped at MaxErrorLength.
func detach(err error) error {
	if err == nil {
		return nil
	}
	if ua := (x509.UnknownAuthorityError{}); errors.As(err, &ua) {
		return x509.UnknownAuthorityError{}
	}
	return errors.New(strings.Clone(shorten.String(err.Error(), MaxErrorLength)))
}

// ParsedBytes estimates what parsed certificates hold in memory: each
// certificate's DER bytes (Raw and the slices into it) and its decoded
// fields, about three times the DER and a little more.
func ParsedBytes(certs []*x509.Certificate) int64 {
	var n int64
	for _, c := range certs {
		n += 3*int64(len(c.Raw)) + 1024
	}
	return n
}

// Bytes is what the parsed bundles kept are estimated to hold.
func (c *Cache) Bytes() int64 {
	if c == nil {
		return 0
	}
	return c.parsed.Bytes()
}
