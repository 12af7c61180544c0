package install

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"apiservice-guard.io/apiservice-guard/test/harness"
)

// noopWebhook is the cheapest webhook anyone could write: it allows every
// AdmissionReview, answering only its UID. It serves the guard's own
// serving certificate (read from the guard's Secret), so the API server
// reaches it through the same Service, caBundle and TLS; the benchmarks
// compare the guard with it.
type noopWebhook struct {
	addr string
	srv  *http.Server
}

func startNoopWebhook(t testing.TB) *noopWebhook {
	t.Helper()
	s, _ := secret(t)
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatalf("the guard's serving pair: %v", err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	allow := func(w http.ResponseWriter, r *http.Request) {
		var review struct {
			Request struct {
				UID string `json:"uid"`
			} `json:"request"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"response": map[string]any{"uid": review.Request.UID, "allowed": true}})
	}
	n := &noopWebhook{addr: ln.Addr().String(), srv: &http.Server{Handler: http.HandlerFunc(allow)}}
	go func() { _ = n.srv.Serve(ln) }()
	t.Cleanup(func() { _ = n.srv.Close() })
	return n
}
