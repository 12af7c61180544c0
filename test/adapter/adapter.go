// Package adapter is a minimal aggregated API server for tests and the demo:
// it answers the aggregator's discovery GET for one group/version over TLS on
// a loopback address, with a serving certificate for <service>.<namespace>.svc.
// Put it behind a Service of type ExternalName ("localhost") and the real
// kube-aggregator checks it exactly as it would a pod in a cluster.
package adapter

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
)

// Options describe an adapter.
type Options struct {
	// Group and Version are the API served, e.g. external.metrics.k8s.io, v1beta1.
	Group, Version string
	// Namespace and Service name the Service the APIService points at; the
	// serving certificate is issued for <Service>.<Namespace>.svc.
	Namespace, Service string
	// Addr is the listen address. Default "127.0.0.1:0" (a free port).
	Addr string
}

// Adapter is a running test adapter.
type Adapter struct {
	opts    Options
	srv     *http.Server
	ln      net.Listener
	ca      atomic.Pointer[certs.KeyPair]
	serving atomic.Pointer[tls.Certificate]
	status  atomic.Int32 // when set, the HTTP status every request gets
	hang    atomic.Bool  // when set, requests get no answer
}

// Hang makes the adapter take every request and never answer it (until
// the client gives up), as a stuck adapter does; false answers again.
func (a *Adapter) Hang(on bool) { a.hang.Store(on) }

// AnswerWith makes the adapter answer every request with status (0: serve
// normally), as an adapter that cannot authenticate the API server answers
// 401 or 403.
func (a *Adapter) AnswerWith(status int) { a.status.Store(int32(status)) }

// Start issues a fresh CA and serving certificate and starts serving.
func Start(opts Options) (*Adapter, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	a := &Adapter{opts: opts}
	if _, err := a.Rotate(); err != nil {
		return nil, err
	}
	if err := a.listen(opts.Addr); err != nil {
		return nil, err
	}
	return a, nil
}

// listen serves on addr.
func (a *Adapter) listen(addr string) error {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.serving.Load(), nil },
	}
	ln, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		return fmt.Errorf("adapter listening on %s: %w", addr, err)
	}
	a.ln = ln
	// Failed handshakes (the aggregator with a wrong caBundle) are expected.
	srv := &http.Server{Handler: http.HandlerFunc(a.serveHTTP), ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 5 * time.Second}
	a.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("adapter: %v", err)
		}
	}()
	return nil
}

// Close stops the adapter.
func (a *Adapter) Close() { _ = a.srv.Close() }

// Restart serves again, after Close, on the same address with the same
// certificates: an adapter brought back up.
func (a *Adapter) Restart() error { return a.listen(a.ln.Addr().String()) }

// Port is the port the adapter listens on.
func (a *Adapter) Port() int32 { return int32(a.ln.Addr().(*net.TCPAddr).Port) }

// CA is the CA that issued the current serving certificate.
func (a *Adapter) CA() *certs.KeyPair { return a.ca.Load() }

// DNSName is the name the serving certificate is issued for.
func (a *Adapter) DNSName() string { return a.opts.Service + "." + a.opts.Namespace + ".svc" }

// Name is the APIService name for the adapter's group/version.
func (a *Adapter) Name() string { return a.opts.Version + "." + a.opts.Group }

// Rotate issues a new CA and serving certificate and serves the new one from
// the next handshake on. It returns the new CA.
func (a *Adapter) Rotate() (*certs.KeyPair, error) {
	ca, err := certs.NewCA("adapter-ca-"+a.opts.Service, 2*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	leaf, err := ca.IssueServing([]string{a.DNSName()}, nil, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return ca, a.Serve(ca, leaf)
}

// Serve switches to the given CA and serving pair.
func (a *Adapter) Serve(ca, leaf *certs.KeyPair) error {
	pair, err := leaf.TLSCertificate()
	if err != nil {
		return err
	}
	a.ca.Store(ca)
	a.serving.Store(&pair)
	return nil
}

func (a *Adapter) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if a.hang.Load() {
		<-r.Context().Done()
		return
	}
	if code := a.status.Load(); code != 0 {
		http.Error(w, http.StatusText(int(code)), int(code))
		return
	}
	if r.URL.Path != "/apis/"+a.opts.Group+"/"+a.opts.Version {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: a.opts.Group + "/" + a.opts.Version,
		APIResources: []metav1.APIResource{},
	})
}

// Objects returns the namespace, the ExternalName Service that sends the
// aggregator to localhost on the adapter's port, and an APIService with the
// given caBundle.
func (a *Adapter) Objects(caBundle []byte) (*corev1.Namespace, *corev1.Service, *apiregv1.APIService) {
	port := a.Port()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.opts.Namespace}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: a.opts.Service, Namespace: a.opts.Namespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: port}},
		},
	}
	api := &apiregv1.APIService{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService"},
		ObjectMeta: metav1.ObjectMeta{Name: a.Name()},
		Spec: apiregv1.APIServiceSpec{
			Group: a.opts.Group, Version: a.opts.Version,
			Service:              &apiregv1.ServiceReference{Namespace: a.opts.Namespace, Name: a.opts.Service, Port: &port},
			CABundle:             caBundle,
			GroupPriorityMinimum: 100,
			VersionPriority:      100,
		},
	}
	return ns, svc, api
}
