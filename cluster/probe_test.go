package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/certs"
)

const probeDNSName = "keda-operator-metrics-apiserver.keda.svc"

// countingListener counts accepted connections: each is one probe dial.
type countingListener struct {
	net.Listener
	accepts atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// tlsBackend is an httptest TLS server on 127.0.0.1 whose certificate can be
// swapped, recording the SNI names it was asked for.
type tlsBackend struct {
	ca       *certs.KeyPair
	lis      *countingListener
	srv      *httptest.Server
	cert     atomic.Pointer[tls.Certificate]
	mu       sync.Mutex
	sniNames []string
}

func newTLSBackend(t *testing.T) *tlsBackend {
	t.Helper()
	ca, err := certs.NewCA("probe-test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &tlsBackend{ca: ca, lis: &countingListener{Listener: inner}}
	b.rotate(t)
	b.srv = httptest.NewUnstartedServer(http.NotFoundHandler())
	b.srv.Listener = b.lis
	// The prober hangs up right after the handshake; that is not news.
	b.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	b.srv.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		b.mu.Lock()
		b.sniNames = append(b.sniNames, hello.ServerName)
		b.mu.Unlock()
		return b.cert.Load(), nil
	}}
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	return b
}

// rotate issues a new serving certificate and returns its fingerprint.
func (b *tlsBackend) rotate(t *testing.T) string {
	t.Helper()
	leaf, err := b.ca.IssueServing([]string{probeDNSName}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	b.cert.Store(&pair)
	return certs.Fingerprint(leaf.Cert)
}

func (b *tlsBackend) addr() string { return b.lis.Addr().String() }

func (b *tlsBackend) serverNames() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.sniNames...)
}

// fakeClock is an injectable time source for TTL expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestProber(opts ProberOptions) (*Prober, *fakeClock) {
	p := NewProber(opts)
	clock := &fakeClock{now: time.Now()}
	p.results.SetClock(clock.Now)
	return p, clock
}

func TestProberReturnsChainAndSendsSNI(t *testing.T) {
	b := newTLSBackend(t)
	p, _ := newTestProber(ProberOptions{})
	chain, err := p.ServingCertificate(t.Context(), b.addr(), probeDNSName)
	if err != nil {
		t.Fatalf("ServingCertificate: %v", err)
	}
	if len(chain) != 1 {
		t.Fatalf("chain has %d certificates, want the leaf", len(chain))
	}
	if err := certs.VerifyServing([]*x509.Certificate{b.ca.Cert}, chain, probeDNSName, time.Now()); err != nil {
		t.Errorf("presented leaf does not verify against the test CA: %v", err)
	}
	if diff := cmp.Diff([]string{probeDNSName}, b.serverNames()); diff != "" {
		t.Errorf("SNI seen by the server (-want +got):\n%s", diff)
	}
}

func TestProberCachesAndDeduplicates(t *testing.T) {
	b := newTLSBackend(t)
	p, _ := newTestProber(ProberOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := p.ServingCertificate(t.Context(), b.addr(), probeDNSName)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("ServingCertificate: %v", err)
		}
	}
	if _, err := p.ServingCertificate(t.Context(), b.addr(), probeDNSName); err != nil {
		t.Fatal(err)
	}
	if n := b.lis.accepts.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1 (cached and deduplicated)", n)
	}
	// A different server name is another key.
	if _, err := p.ServingCertificate(t.Context(), b.addr(), "other.keda.svc"); err != nil {
		t.Fatal(err)
	}
	if n := b.lis.accepts.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2 after a new server name", n)
	}
}

func TestProberSeesRotatedCertificateAfterTTL(t *testing.T) {
	b := newTLSBackend(t)
	p, clock := newTestProber(ProberOptions{TTL: time.Minute})
	first := fingerprintOf(t, p, b)
	rotated := b.rotate(t)
	clock.Step(30 * time.Second)
	if got := fingerprintOf(t, p, b); got != first {
		t.Errorf("within TTL got %s, want the cached %s", got, first)
	}
	clock.Step(31 * time.Second)
	if got := fingerprintOf(t, p, b); got != rotated {
		t.Errorf("after TTL got %s, want the rotated %s", got, rotated)
	}
	if n := b.lis.accepts.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2", n)
	}
}

func fingerprintOf(t *testing.T, p *Prober, b *tlsBackend) string {
	t.Helper()
	chain, err := p.ServingCertificate(t.Context(), b.addr(), probeDNSName)
	if err != nil {
		t.Fatal(err)
	}
	return certs.Fingerprint(chain[0])
}

// rawServer accepts TCP on 127.0.0.1 and hands each connection to serve; at
// cleanup it closes the listener and every connection and waits for serve.
func rawServer(t *testing.T, serve func(net.Conn)) *countingListener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &countingListener{Listener: inner}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis
}

// silentConn holds a connection open without ever answering.
func silentConn(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

func TestProberFailures(t *testing.T) {
	silent := func(t *testing.T) string {
		return rawServer(t, silentConn).Addr().String()
	}
	garbage := func(t *testing.T) string {
		return rawServer(t, func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\nnot TLS at all\x00\xff"))
			c.Close()
		}).Addr().String()
	}
	refused := func(t *testing.T) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		lis.Close()
		return addr
	}
	tests := []struct {
		name   string
		server func(t *testing.T) string
	}{
		{name: "accepts TCP but never speaks TLS", server: silent},
		{name: "answers with garbage", server: garbage},
		{name: "connection refused", server: refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestProber(ProberOptions{})
			chain, err := p.ServingCertificate(t.Context(), tt.server(t), probeDNSName)
			if err == nil {
				t.Fatalf("ServingCertificate = %d certificates, want an error", len(chain))
			}
			if errors.Is(err, ErrNotAvailable) {
				t.Errorf("err = %v; a failed probe is not ErrNotAvailable", err)
			}
		})
	}
}

func TestProberCachesFailuresBriefly(t *testing.T) {
	lis := rawServer(t, func(c net.Conn) { c.Close() })
	p, clock := newTestProber(ProberOptions{FailureTTL: 5 * time.Second})
	for range 3 {
		if _, err := p.ServingCertificate(t.Context(), lis.Addr().String(), probeDNSName); err == nil {
			t.Fatal("want an error")
		}
	}
	if n := lis.accepts.Load(); n != 1 {
		t.Errorf("dialled %d times within FailureTTL, want 1", n)
	}
	clock.Step(6 * time.Second)
	if _, err := p.ServingCertificate(t.Context(), lis.Addr().String(), probeDNSName); err == nil {
		t.Fatal("want an error")
	}
	if n := lis.accepts.Load(); n != 2 {
		t.Errorf("dialled %d times after FailureTTL, want 2", n)
	}
}

func TestProberRespectsContext(t *testing.T) {
	lis := rawServer(t, silentConn)
	p, _ := newTestProber(ProberOptions{Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := p.ServingCertificate(ctx, lis.Addr().String(), probeDNSName)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the caller's deadline", err)
	}
}
