package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// ServerOptions configure the webhook's HTTPS server. Zero values take the
// documented defaults.
type ServerOptions struct {
	// Host and Port are the listen address. Port defaults to 9443.
	Host string
	Port int
	// CertDir holds tls.crt and tls.key, reloaded when they change.
	CertDir string
	// ReadHeaderTimeout bounds the request line and headers. Default: 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the whole request, body included: a trickled body,
	// or one never sent after "Expect: 100-continue", is cut off then.
	// Default: 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of the answer; the API server waits 30 s at most. Default: 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection without requests.
	// Default: 90s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request headers. Default: 64 KiB.
	MaxHeaderBytes int
	// MaxConnections is how many connections are served at once; more wait
	// in the listen backlog. Default: 1024.
	MaxConnections int
	// TLSOpts adjust the TLS configuration (minimum version, protocols).
	TLSOpts []func(*tls.Config)
}

func (o ServerOptions) withDefaults() ServerOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 5*time.Second)
	def(&o.ReadTimeout, 10*time.Second)
	def(&o.WriteTimeout, 30*time.Second)
	def(&o.IdleTimeout, 90*time.Second)
	if o.Port == 0 {
		o.Port = 9443
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 1024
	}
	return o
}

// Server is the webhook's HTTPS server, a controller-runtime webhook.Server
// that, unlike its default one, bounds what a client can hold: headers,
// body and answer each have a deadline, and connections are capped.
type Server struct {
	opts    ServerOptions
	mux     *http.ServeMux
	started atomic.Bool
	addr    atomic.Pointer[string] // where it listens, once started
	// draining makes every answer close its connection (Drain).
	draining atomic.Bool
}

var _ ctrlwebhook.Server = (*Server)(nil)

// NewServer returns a server with opts (defaults applied).
func NewServer(opts ServerOptions) *Server {
	return &Server{opts: opts.withDefaults(), mux: http.NewServeMux()}
}

// NeedLeaderElection implements webhook.Server: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Register implements webhook.Server.
func (s *Server) Register(path string, hook http.Handler) { s.mux.Handle(path, hook) }

// WebhookMux implements webhook.Server.
func (s *Server) WebhookMux() *http.ServeMux { return s.mux }

// Drain prepares a shutdown: from now on every answer closes its
// connection ("Connection: close"), so that clients open new connections,
// to other replicas once this one is out of the Service's endpoints,
// instead of reusing one this replica will close. Requests are still
// served until Start's context ends.
func (s *Server) Drain() { s.draining.Store(true) }

// Addr is the address the server listens on, "" before it does.
func (s *Server) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Start implements webhook.Server: it serves until ctx ends, then shuts
// down, giving requests in flight up to a minute.
func (s *Server) Start(ctx context.Context) error {
	o := s.opts
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	for _, op := range o.TLSOpts {
		op(cfg)
	}
	if cfg.GetCertificate == nil {
		w, err := certwatcher.New(filepath.Join(o.CertDir, "tls.crt"), filepath.Join(o.CertDir, "tls.key"))
		if err != nil {
			return err
		}
		cfg.GetCertificate = w.GetCertificate
		go func() {
			if err := w.Start(ctx); err != nil {
				log.FromContext(ctx).Error(err, "certificate watcher")
			}
		}()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.draining.Load() {
				w.Header().Set("Connection", "close")
			}
			s.mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		// Failed handshakes and cut-off clients are not logged: a hostile
		// client must not flood the log. (The TLS handshake is bounded by
		// the shortest timeout above.)
		ErrorLog: stdlog.New(io.Discard, "", 0),
	}
	tlsLn := tls.NewListener(&limitListener{Listener: ln, slots: make(chan struct{}, o.MaxConnections)}, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			log.FromContext(ctx).Error(err, "shutting down the webhook server")
		}
	}()
	log.FromContext(ctx).Info("serving webhooks", "address", addr, "maxConnections", o.MaxConnections)
	s.started.Store(true)
	if err := srv.Serve(tlsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}

// StartedChecker implements webhook.Server: ready once a TLS handshake
// with the server succeeds.
func (s *Server) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		if !s.started.Load() {
			return errors.New("webhook server has not started yet")
		}
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", s.Addr(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a reachability check
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}

// limitListener serves at most cap(slots) connections at once: Accept
// waits for a slot.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
}

// slotConn gives its slot back when closed, once.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
