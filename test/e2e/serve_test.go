package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// TestServingEndpoints runs a second guard with its own certificate directory
// and checks what the serve command promises: TLS >= 1.2, no HTTP/2, a
// certificate replaced on disk served without a restart, readiness with the
// cache check, and Prometheus metrics of reviews.
func TestServingEndpoints(t *testing.T) {
	dir := t.TempDir()
	first := writeServingCert(t, dir)
	port, metricsPort := freePort(t), freePort(t)
	g, err := suite.StartGuardWith(harness.GuardOptions{
		Bin: suite.guardBin, Config: defaultConfig, CertDir: dir, Port: port, Kubeconfig: suite.GuardKubeconfig,
		MetricsAddr: fmt.Sprintf("127.0.0.1:%d", metricsPort),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Stop() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	state, err := handshake(addr, &tls.Config{RootCAs: pool(first.ca), NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("TLS with the first certificate: %v", err)
	}
	if state.NegotiatedProtocol == "h2" {
		t.Error("HTTP/2 was negotiated; it must be disabled")
	}
	if state.Version < tls.VersionTLS12 {
		t.Errorf("negotiated TLS version %x, want >= 1.2", state.Version)
	}
	if _, err := handshake(addr, &tls.Config{RootCAs: pool(first.ca), MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}

	second := writeServingCert(t, dir)
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		st, err := handshake(addr, &tls.Config{RootCAs: pool(second.ca)})
		return err == nil && bytes.Equal(st.PeerCertificates[0].Raw, second.leaf.Cert.Raw), nil
	})
	if err != nil {
		t.Fatalf("the replaced certificate was not served without a restart: %v\n%s", err, g.Logs())
	}

	readyz := get(t, "http://"+g.HealthAddr+"/readyz?verbose")
	for _, check := range []string{"[+]caches ok", "[+]webhook ok"} {
		if !strings.Contains(readyz, check) {
			t.Errorf("/readyz lacks %q:\n%s", check, readyz)
		}
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(second.ca)}}}
	resp, err := client.Post("https://"+addr+"/validate", "application/json", strings.NewReader(insecureReview))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "[apiservice-insecure-skip-tls]") {
		t.Fatalf("review answer lacks the warning: %s", body)
	}
	metrics := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	for _, m := range []string{
		`apiservice_guard_admission_requests_total{kind="APIService",operation="CREATE",verdict="allowed",webhook="validate"} 1`,
		`apiservice_guard_findings_total{action="Warn",point="admission",rule="apiservice-insecure-skip-tls"} 1`,
		`apiservice_guard_review_duration_seconds_count{kind="APIService"} 1`,
	} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestDryRunRecordsNoEvent: a server-side dry run still shows the warning
// but records no Event; the same apply for real does (the positive control).
func TestDryRunRecordsNoEvent(t *testing.T) {
	dumpGuardLogsOnFailure(t)
	manifest := func(name string) string {
		return fmt.Sprintf(`apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1.%s.e2e.apiservice-guard.io
spec:
  group: %s.e2e.apiservice-guard.io
  version: v1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {namespace: default, name: nothing-here, port: 443}
`, name, name)
	}
	_, stderr, err := kubectl(t, manifest("dryrun"), "apply", "--dry-run=server", "-f", "-")
	if err != nil || !strings.Contains(stderr, "Warning: [apiservice-insecure-skip-tls]") {
		t.Fatalf("dry run: err=%v, stderr=%s", err, stderr)
	}
	t.Cleanup(func() {
		_, _, _ = kubectl(t, "", "delete", "apiservice", "v1.real.e2e.apiservice-guard.io", "--ignore-not-found")
	})
	if _, stderr, err := kubectl(t, manifest("real"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	waitEvent(t, "v1.real.e2e.apiservice-guard.io", "PolicyWarning", "[apiservice-insecure-skip-tls]")
	if n := countEvents(t, "v1.dryrun.e2e.apiservice-guard.io"); n != 0 {
		t.Fatalf("%d Events recorded for a dry-run request", n)
	}
}

type servingPair struct{ ca, leaf *certs.KeyPair }

// writeServingCert writes a new CA-issued certificate for 127.0.0.1 to dir.
func writeServingCert(t *testing.T, dir string) servingPair {
	t.Helper()
	ca, err := certs.NewCA("guard-e2e-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServing([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return servingPair{ca: ca, leaf: leaf}
}

func pool(ca *certs.KeyPair) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// freePort is a free loopback port, never the webhook's (free while no
// guard serves it).
func freePort(t *testing.T) int {
	t.Helper()
	port, err := harness.FreePort(suite.Env.WebhookInstallOptions.LocalServingPort)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

const insecureReview = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"m1",
"kind":{"group":"apiregistration.k8s.io","version":"v1","kind":"APIService"},
"resource":{"group":"apiregistration.k8s.io","version":"v1","resource":"apiservices"},
"name":"v1.metrics.e2e.apiservice-guard.io","operation":"CREATE","userInfo":{"username":"e2e"},
"object":{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1.metrics.e2e.apiservice-guard.io"},
"spec":{"group":"metrics.e2e.apiservice-guard.io","version":"v1","groupPriorityMinimum":100,"versionPriority":100,
"insecureSkipTLSVerify":true,"service":{"namespace":"default","name":"kubernetes","port":443}}}}}`

// TestServeWaitsForTheAPIServer: started while its API server cannot be
// reached (its address leads nowhere yet), serve does not exit: it waits,
// logs why, and turns ready once the API server can be reached.
func TestServeWaitsForTheAPIServer(t *testing.T) {
	cfg, err := clientcmd.LoadFromFile(suite.GuardKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	late := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var apiAddr string
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		apiAddr, c.Server = u.Host, "https://"+late
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	// In 5 s, late starts leading to the API server.
	go func() {
		time.Sleep(5 * time.Second)
		ln, err := net.Listen("tcp", late)
		if err != nil {
			t.Errorf("forwarder: %v", err)
			return
		}
		t.Cleanup(func() { _ = ln.Close() })
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", apiAddr)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	start := time.Now()
	useGuard(t, harness.GuardOptions{Config: defaultConfig, Kubeconfig: kubeconfig})
	if took := time.Since(start); took < 5*time.Second {
		t.Errorf("ready after %s, before the API server could be reached", took)
	}
	if logs := suite.guard.Logs(); !strings.Contains(logs, "waiting for the API server") {
		t.Errorf("the guard did not say it waited:\n%s", logs)
	}
}
