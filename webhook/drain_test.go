package webhook_test

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// TestDrainClosesConnections: before Drain a client keeps its connection;
// after it, each answer is still given but closes its connection, so the
// client's next request opens a new one (to another replica, in a cluster)
// instead of reusing one this replica is about to close.
func TestDrainClosesConnections(t *testing.T) {
	srv, pool := startServer(t, webhook.ServerOptions{})
	ca, err := certs.NewCA("drain", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body := string(apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString(ca.CertPEM()), 1)))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// review returns whether the request reused a connection and whether
	// the answer closes it.
	review := func() (reused, closes bool) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "https://"+srv.Addr()+webhook.ValidatePath, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		}))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("review: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end, so the connection may be reused
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("review: HTTP %d", resp.StatusCode)
		}
		return reused, resp.Close
	}
	if _, closes := review(); closes {
		t.Fatal("before Drain: the answer closes its connection")
	}
	if reused, closes := review(); !reused || closes {
		t.Fatalf("before Drain: reused=%v closes=%v, want a kept connection", reused, closes)
	}
	srv.Drain()
	if _, closes := review(); !closes {
		t.Fatal("after Drain: the answer keeps its connection")
	}
	if reused, closes := review(); reused || !closes {
		t.Fatalf("after Drain: reused=%v closes=%v, want a new connection, closed after the answer", reused, closes)
	}
}
