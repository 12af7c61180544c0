package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sync/singleflight"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/internal/ttlcache"
)

// ProberOptions configures a Prober. Zero values take the documented defaults.
type ProberOptions struct {
	// Timeout bounds one probe, TCP dial and TLS handshake together.
	// Defaults to 1s.
	Timeout time.Duration
	// TTL is how long a presented chain is reused before the server is probed
	// again, so a rotated certificate is seen at most TTL late. Defaults to 1m.
	TTL time.Duration
	// FailureTTL is how long a failed probe is reused, so a down backend is
	// not dialled on every admission request. Defaults to 5s.
	FailureTTL time.Duration
	// MaxEntries bounds the number of (address, serverName) results kept; the
	// oldest is evicted first. Defaults to 1024.
	MaxEntries int
	// Dial opens the connection to a backend (see BackendDialer). Defaults
	// to a direct dial.
	Dial DialFunc
}

func (o ProberOptions) withDefaults() ProberOptions {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.TTL <= 0 {
		o.TTL = time.Minute
	}
	if o.FailureTTL <= 0 {
		o.FailureTTL = 5 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1024
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	return o
}

// Prober fetches the certificate chain a TLS server presents, without
// verifying it: verification against an APIService caBundle is a rule's job.
// Results are cached per (address, serverName) and concurrent probes of the
// same key share one connection. A Prober is safe for concurrent use.
type Prober struct {
	opts    ProberOptions
	results *ttlcache.Cache[probeResult]
	group   singleflight.Group
}

// probeResult is one cached probe: the chain, leaf first, and the leaf's
// fingerprint, used to notice a changed certificate.
type probeResult struct {
	chain       []*x509.Certificate
	fingerprint string
}

// NewProber returns a Prober with opts (defaults applied).
func NewProber(opts ProberOptions) *Prober {
	opts = opts.withDefaults()
	return &Prober{opts: opts, results: ttlcache.NewSized(opts.MaxEntries, maxProbeBytes, probeBytes)}
}

// ServingCertificate returns the chain presented by the TLS server at address
// ("host:port") for SNI serverName, leaf first. The returned certificates are
// shared with the cache and must not be modified. Failures are plain errors
// (connection refused, timeout, handshake failure), not ErrNotAvailable.
func (p *Prober) ServingCertificate(ctx context.Context, address, serverName string) ([]*x509.Certificate, error) {
	key := address + "\x00" + serverName
	if r, err, ok := p.results.Get(key); ok {
		return r.chain, err
	}
	// The shared probe must not fail for every waiter because the first
	// caller went away, so it runs detached from ctx, bounded by Timeout;
	// each caller still stops waiting when its own ctx ends.
	ch := p.group.DoChan(key, func() (any, error) {
		// A flight that ended between the lookup above and DoChan has
		// already stored its answer.
		if r, err, ok := p.results.Get(key); ok {
			return r.chain, err
		}
		return p.probeAndStore(context.WithoutCancel(ctx), key, address, serverName)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]*x509.Certificate), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("TLS probe of %s: %w", address, context.Cause(ctx))
	}
}

// probeAndStore probes once and caches the outcome, logging when the leaf
// certificate differs from the one seen last time.
func (p *Prober) probeAndStore(ctx context.Context, key, address, serverName string) ([]*x509.Certificate, error) {
	chain, err := p.probe(ctx, address, serverName)
	if err != nil {
		p.results.Put(key, probeResult{}, err, p.opts.FailureTTL)
		return nil, err
	}
	r := probeResult{chain: chain, fingerprint: certs.Fingerprint(chain[0])}
	if prev, ok := p.results.Last(key); ok && prev.fingerprint != "" && prev.fingerprint != r.fingerprint {
		log.FromContext(ctx).Info("serving certificate changed",
			"address", address, "serverName", serverName, "previous", prev.fingerprint, "fingerprint", r.fingerprint)
	}
	p.results.Put(key, r, nil, p.opts.TTL)
	return chain, nil
}

// probe dials address, completes a TLS handshake with SNI serverName and
// returns the presented chain.
func (p *Prober) probe(ctx context.Context, address, serverName string) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	raw, err := p.opts.Dial(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("TLS probe of %s (server name %q): %w", address, serverName, err)
	}
	tc := tls.Client(raw, &tls.Config{
		ServerName: serverName,
		// Only the presented chain is wanted; the rules verify it against
		// the APIService caBundle, as the aggregator would.
		InsecureSkipVerify: true, //nolint:gosec // see above
		MinVersion:         tls.VersionTLS12,
	})
	defer tc.Close()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS probe of %s (server name %q): %w", address, serverName, err)
	}
	chain := tc.ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, fmt.Errorf("TLS probe of %s (server name %q): %w", address, serverName, errNoPeerCertificate)
	}
	if len(chain) > maxProbeChain {
		// What a rule needs is the leaf and its issuers; a longer chain is
		// a server's attempt on the guard's memory.
		chain = chain[:maxProbeChain]
	}
	return chain, nil
}

// maxProbeChain is the most certificates kept of a presented chain, and
// maxProbeBytes bounds the chains the Prober keeps (the oldest evicted).
const (
	maxProbeChain = 8
	maxProbeBytes = 16 << 20
)

// probeBytes is what a kept chain holds, about.
func probeBytes(r probeResult) int64 { return certs.ParsedBytes(r.chain) }

var errNoPeerCertificate = errors.New("server presented no certificate")
