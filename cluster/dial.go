package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DialFunc dials a backend: net.Dialer.DialContext, or through a proxy.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Ways to dial backends, as --backend-dial takes them.
const (
	// DialDirect dials backends from where the guard runs: its pod, on
	// the pod network.
	DialDirect = "direct"
	// DialNone does not dial backends: what they present is not read
	// (ErrNotAvailable), as from a machine off the pod network.
	DialNone = "none"
)

// BackendDialer returns how to dial backends for spec: DialDirect,
// DialNone, or an HTTP CONNECT proxy that reaches the pod network, as the
// API server's egress selector uses konnectivity: http://HOST:PORT or
// unix:///PATH.
func BackendDialer(spec string) (DialFunc, error) {
	switch spec {
	case DialDirect, "":
		var d net.Dialer
		return d.DialContext, nil
	case DialNone:
		return func(context.Context, string, string) (net.Conn, error) {
			return nil, fmt.Errorf("backends are not dialed from here (--backend-dial=none): %w", ErrNotAvailable)
		}, nil
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("--backend-dial %q: %w", spec, err)
	}
	var network, proxy string
	switch {
	case u.Scheme == "http" && u.Host != "" && (u.Path == "" || u.Path == "/"):
		network, proxy = "tcp", u.Host
	case u.Scheme == "unix" && u.Host == "" && u.Path != "":
		network, proxy = "unix", u.Path
	default:
		return nil, fmt.Errorf("--backend-dial %q: want %s, %s, http://HOST:PORT or unix:///PATH", spec, DialDirect, DialNone)
	}
	return func(ctx context.Context, _, address string) (net.Conn, error) {
		return dialConnect(ctx, network, proxy, address)
	}, nil
}

// maxConnectAnswer bounds the proxy's answer to CONNECT.
const maxConnectAnswer = 4096

// dialConnect opens a tunnel to address through the HTTP CONNECT proxy at
// network/proxy. A refusal names the proxy's status line, which carries
// its own dial error.
func dialConnect(ctx context.Context, network, proxy, address string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, proxy)
	if err != nil {
		return nil, fmt.Errorf("dialing the proxy %s: %w", proxy, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", address, address); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("proxy %s: %w", proxy, err)
	}
	br := bufio.NewReaderSize(&limitedConn{Conn: conn, left: maxConnectAnswer}, 512)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		_ = conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("proxy %s, dialing %s: %w", proxy, address, err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_ = conn.Close()
		return nil, fmt.Errorf("proxy %s, dialing %s: %s", proxy, address, strings.TrimSpace(res.Status))
	}
	if br.Buffered() > 0 {
		_ = conn.Close()
		return nil, fmt.Errorf("proxy %s, dialing %s: bytes after its answer", proxy, address)
	}
	if !stop() {
		_ = conn.Close()
		return nil, ctx.Err()
	}
	return conn, nil
}

// limitedConn reads at most left bytes: a proxy's answer to CONNECT.
type limitedConn struct {
	net.Conn
	left int
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("answer longer than %d bytes", maxConnectAnswer)
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}
