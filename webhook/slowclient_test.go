package webhook_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// slowServer runs the guard's own webhook server (webhook.Server) over TLS
// on loopback with short timeouts, and returns its address and the CA that
// issued its certificate.
func slowServer(t *testing.T, opts webhook.ServerOptions) (string, *x509.CertPool) {
	t.Helper()
	srv, pool := startServer(t, opts)
	return srv.Addr(), pool
}

// startServer is slowServer, returning the server.
func startServer(t *testing.T, opts webhook.ServerOptions) (*webhook.Server, *x509.CertPool) {
	t.Helper()
	ca, err := certs.NewCA("slow-client-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServing(nil, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts.CertDir = t.TempDir()
	if err := leaf.WriteFiles(opts.CertDir); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()

	srv := webhook.NewServer(opts)
	webhook.Register(srv, webhook.NewValidator(emptyCluster(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); srv.StartedChecker()(nil) != nil; {
		if time.Now().After(deadline) {
			t.Fatal("webhook server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return srv, pool
}

// goodReview posts a well-formed review and checks that it is answered.
func goodReview(t *testing.T, addr string, pool *x509.CertPool) {
	t.Helper()
	ca, err := certs.NewCA("bundle", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body := apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString(ca.CertPEM()), 1))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Post("https://"+addr+webhook.ValidatePath, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("a good review after the slow clients: %v", err)
	}
	defer resp.Body.Close()
	if data, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(data), `"allowed":true`) {
		t.Fatalf("a good review after the slow clients: HTTP %d %s", resp.StatusCode, data)
	}
}

// closedWithin waits for the server to close conn (a read ends), within
// limit; it returns what the server sent.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) string {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	data, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %s", limit)
	}
	return string(data)
}

// TestSlowClientsAreCutOff: clients that hold a connection without
// finishing their request, over real TLS sockets: each is closed within its
// timeout, and the server answers a good review afterwards.
func TestSlowClientsAreCutOff(t *testing.T) {
	opts := webhook.ServerOptions{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: 2 * time.Second, IdleTimeout: time.Second}
	addr, pool := slowServer(t, opts)
	dialTLS := func(t *testing.T) *tls.Conn {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	header := func(extra string) string {
		return "POST " + webhook.ValidatePath + " HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n" + extra + "\r\n"
	}
	const margin = 2 * time.Second
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"silent after the TCP connect", func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			closedWithin(t, conn, opts.ReadHeaderTimeout+margin)
		}},
		{"silent after the TLS handshake", func(t *testing.T) {
			closedWithin(t, dialTLS(t), opts.ReadHeaderTimeout+margin)
		}},
		{"headers trickled, never finished", func(t *testing.T) {
			conn := dialTLS(t)
			if _, err := io.WriteString(conn, "POST "+webhook.ValidatePath+" HTTP/1.1\r\nHost: guard\r\n"); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; ; i++ {
					if _, err := fmt.Fprintf(conn, "X-%d: a\r\n", i); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}()
			start := time.Now()
			got := closedWithin(t, conn, opts.ReadHeaderTimeout+margin)
			if took := time.Since(start); took < opts.ReadHeaderTimeout/2 {
				t.Errorf("closed after %s with %.100q: before the header timeout, for another reason", took, got)
			}
		}},
		{"body trickled", func(t *testing.T) {
			conn := dialTLS(t)
			if _, err := io.WriteString(conn, header("")); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					if _, err := io.WriteString(conn, "{"); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}()
			got := closedWithin(t, conn, opts.ReadTimeout+margin)
			if got != "" && !strings.Contains(got, "400") {
				t.Errorf("answer to a trickled body: %q", got)
			}
		}},
		{"Expect: 100-continue, the body never sent", func(t *testing.T) {
			conn := dialTLS(t)
			if _, err := io.WriteString(conn, header("Expect: 100-continue\r\n")); err != nil {
				t.Fatal(err)
			}
			got := closedWithin(t, conn, opts.ReadTimeout+margin)
			if !strings.HasPrefix(got, "HTTP/1.1 100 Continue") {
				t.Errorf("answer: %q, want 100 Continue, then the close", got)
			}
		}},
		{"headers over 64 KiB", func(t *testing.T) {
			conn := dialTLS(t)
			go func() {
				_, _ = io.WriteString(conn, header("X-Big: "+strings.Repeat("a", 200<<10)+"\r\n"))
			}()
			got := closedWithin(t, conn, opts.ReadHeaderTimeout+margin)
			if !strings.HasPrefix(got, "HTTP/1.1 431") {
				t.Errorf("answer: %.100q, want 431", got)
			}
		}},
		{"kept alive and idle", func(t *testing.T) {
			conn := dialTLS(t)
			body := `{}`
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", webhook.ValidatePath, len(body), body)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("first request: %v", err)
			}
			_ = resp.Body.Close()
			closedWithin(t, conn, opts.IdleTimeout+margin)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t)
			goodReview(t, addr, pool)
		})
	}
}

// TestManySlowClients: a thousand connections trickling their bodies, more
// than the connection cap: none stays open past its timeouts (the ones
// waiting for a slot are served, and cut off, in turn), and a good review
// is answered once they are gone.
func TestManySlowClients(t *testing.T) {
	opts := webhook.ServerOptions{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, MaxConnections: 256}
	addr, pool := slowServer(t, opts)
	const clients = 1000
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	outcomes := map[string]int{}
	for range clients {
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return // the backlog is full: refused is cut off too
			}
			defer conn.Close()
			tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
			if err := tc.Handshake(); err != nil {
				mu.Lock()
				outcomes["handshake: "+err.Error()]++
				mu.Unlock()
				return
			}
			_, _ = io.WriteString(tc, "POST "+webhook.ValidatePath+" HTTP/1.1\r\nHost: guard\r\nContent-Length: 100000\r\n\r\n{")
			began := time.Now()
			_, err = io.ReadAll(tc)
			mu.Lock()
			defer mu.Unlock()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			} else if time.Since(began) < opts.ReadTimeout/2 {
				outcomes[fmt.Sprintf("closed early: %v", err)]++
			} else {
				outcomes["cut off"]++
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if open > 0 || outcomes["cut off"] < clients/2 {
		t.Errorf("%d of %d slow connections still open after 20 s; want most of them served, then cut off: %v", open, clients, outcomes)
	}
	t.Logf("%d slow clients in %s (cap %d connections): %v", clients, took.Round(time.Millisecond), opts.MaxConnections, outcomes)
	goodReview(t, addr, pool)
}
