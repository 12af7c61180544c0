package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestBackendDialerSpec(t *testing.T) {
	for _, spec := range []string{"", "direct", "none", "http://127.0.0.1:3128", "unix:///run/tunnel.sock"} {
		if _, err := BackendDialer(spec); err != nil {
			t.Errorf("BackendDialer(%q) = %v", spec, err)
		}
	}
	for _, spec := range []string{"socks5://127.0.0.1:1080", "http://", "http://127.0.0.1:3128/path", "unix://host/sock", "unix://", "%zz", "proxy:3128"} {
		if _, err := BackendDialer(spec); err == nil || !strings.Contains(err.Error(), "--backend-dial") {
			t.Errorf("BackendDialer(%q) = %v, want an error naming the flag", spec, err)
		}
	}
	dial, _ := BackendDialer(DialNone)
	if _, err := dial(t.Context(), "tcp", "10.244.1.7:6443"); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("none: %v, want ErrNotAvailable", err)
	}
}

// connectProxy is a loopback HTTP CONNECT proxy answering with answer: ""
// tunnels to the destination (loopback only), else the status line sent.
func connectProxy(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				switch answer {
				case "hang":
					_, _ = io.Copy(io.Discard, br)
					return
				case "":
				default:
					_, _ = io.WriteString(conn, answer)
					return
				}
				backend, err := net.Dial("tcp", req.Host)
				if err != nil {
					fmt.Fprintf(conn, "HTTP/1.1 502 dial tcp %s: connect: connection refused\r\n\r\n", req.Host)
					return
				}
				defer backend.Close()
				_, _ = io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
				go func() { _, _ = io.Copy(backend, br) }()
				_, _ = io.Copy(conn, backend)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestProberThroughAProxy: the Prober reads a serving certificate through a
// CONNECT proxy, and the proxy's refusals, silences and floods end in a
// bounded error that names them.
func TestProberThroughAProxy(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	backend := srv.Listener.Addr().String()

	probe := func(answer string) ([]byte, error) {
		dial, err := BackendDialer(connectProxy(t, answer))
		if err != nil {
			t.Fatal(err)
		}
		p := NewProber(ProberOptions{Dial: dial, Timeout: 500 * time.Millisecond})
		chain, err := p.ServingCertificate(t.Context(), backend, "example.com")
		if err != nil {
			return nil, err
		}
		return chain[0].Raw, nil
	}
	raw, err := probe("")
	if err != nil || string(raw) != string(srv.Certificate().Raw) {
		t.Fatalf("through the proxy: %v, want the server's certificate", err)
	}
	tests := []struct{ name, answer, want string }{
		{"refused", "HTTP/1.1 502 dial tcp 10.244.1.7:6443: connect: connection refused\r\n\r\n", "502 dial tcp 10.244.1.7:6443: connect: connection refused"},
		{"no agent", "HTTP/1.1 503 No agent available\r\n\r\n", "No agent available"},
		{"silent", "hang", "deadline exceeded"},
		{"a flood for an answer", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 10000) + "\r\n\r\n", "longer than"},
		{"bytes after the answer", "HTTP/1.1 200 OK\r\n\r\nextra", "bytes after its answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := probe(tt.answer)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("probe = %v, want an error with %q", err, tt.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("probe took %s: not bounded by its timeout", took)
			}
		})
	}
	// A proxy that is not there.
	dial, _ := BackendDialer("unix://" + t.TempDir() + "/none.sock")
	if _, err := dial(context.Background(), "tcp", backend); err == nil || !strings.Contains(err.Error(), "dialing the proxy") {
		t.Errorf("no proxy: %v", err)
	}
}
