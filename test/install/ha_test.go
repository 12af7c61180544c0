package install

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/servingcert"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// leaseDuration is controller-runtime's default, which serve keeps.
const leaseDuration = 15 * time.Second

// endpoints stands in for the endpoints controller and kube-proxy: every
// 50 ms it reads each replica's /readyz and leads the Service's ClusterIP
// to the ready ones. It runs until the test ends.
func endpoints(t *testing.T, guards ...*guard) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var ready []string
			for _, g := range guards {
				if isReady(g) {
					ready = append(ready, g.Addr)
				}
			}
			_ = suite.cp.Network.Balance(suite.service, ready...)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// isReady reports whether the replica's /readyz answers 200.
func isReady(g *guard) bool {
	resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + g.HealthAddr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// leaseHolder is the holder of the guard's leader Lease.
func leaseHolder(t *testing.T) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := suite.cp.Client.Get(t.Context(), client.ObjectKey{Namespace: harness.GuardNamespace, Name: "apiservice-guard-leader"}, l); err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestHighAvailability: two replicas behind the Service, both serving
// admission, one (the Lease holder) doing the background work. The leader
// is stopped (SIGTERM, as a pod is deleted) under load: no write fails with
// failurePolicy Fail, the other replica holds the Lease within the lease
// duration and does the background work from then on, and no background
// write is made twice.
func TestHighAvailability(t *testing.T) {
	const starting = `"msg":"audit starting"`
	extra := []string{"--shutdown-delay=2s", "--audit-interval=1m"}
	fresh(t)
	a := startGuard(t, extra...)
	t.Cleanup(func() { _ = a.Stop() })
	eventually(t, 30*time.Second, "the first replica leads", func() bool {
		return leaseHolder(t) != "" && strings.Contains(a.Logs(), starting)
	})
	first := leaseHolder(t)
	b := startGuard(t, extra...)
	t.Cleanup(func() { _ = b.Stop() })
	endpoints(t, a, b)
	register(t)

	// Both serve the same pair; only the leader writes.
	if !sameCert(a.presented(t), b.presented(t)) {
		t.Error("the replicas serve different certificates")
	}
	time.Sleep(2 * time.Second)
	if n := b.writes(t, "secret") + b.writes(t, "validatingwebhookconfiguration") + b.writes(t, "mutatingwebhookconfiguration"); n != 0 {
		t.Errorf("the replica that does not lead made %d certificate writes", n)
	}
	if strings.Contains(b.Logs(), starting) {
		t.Error("the replica that does not lead audits")
	}

	l := startLoad(t, 4)
	time.Sleep(2 * time.Second)
	stopped := time.Now()
	exited := make(chan error, 1)
	go func() { exited <- a.Stop() }()
	// The stopping leader says it is not ready first, and still serves:
	// the endpoints move before the server goes.
	eventually(t, time.Second, "the stopping leader reports not ready", func() bool { return !isReady(a) })
	if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", a.Addr, &tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // reachability
		t.Errorf("the stopping leader stopped serving before its shutdown delay: %v", err)
	} else {
		conn.Close()
	}
	if err := <-exited; err != nil {
		t.Errorf("the leader's exit: %v", err)
	}
	t.Logf("the leader stopped in %s", time.Since(stopped).Round(time.Millisecond))
	eventually(t, leaseDuration, "the other replica holds the Lease", func() bool {
		h := leaseHolder(t)
		return h != "" && h != first
	})
	t.Logf("the other replica holds the Lease %s after the leader was told to stop", time.Since(stopped).Round(time.Millisecond))
	eventually(t, 10*time.Second, "the new leader audits", func() bool { return strings.Contains(b.Logs(), starting) })
	time.Sleep(2 * time.Second)
	writes, failed := l.finish()
	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed while one replica lived; first: %s", len(failed), writes+int64(len(failed)), failed[0])
	}
	t.Logf("%d writes through the webhooks, none failed", writes)

	// The new leader does the background work: a caBundle emptied is
	// restored by it, once per configuration; a rotation asked for is made.
	placeholder := func(block string) string { return block + "      caBundle: \"\"\n" }
	kubectl(t, webhookManifest(t, placeholder), "replace", "-f", "-")
	eventually(t, 10*time.Second, "the new leader restores caBundle", func() bool { return trustsSecret(t) })
	time.Sleep(2 * time.Second)
	if n := b.writes(t, "validatingwebhookconfiguration") + b.writes(t, "mutatingwebhookconfiguration"); n != 2 {
		t.Errorf("the new leader made %d caBundle writes, want 2", n)
	}
	leaf := b.presented(t)
	kubectl(t, "", "annotate", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret, servingcert.AnnotationRotate+"=serving-ha", "--overwrite")
	eventually(t, 10*time.Second, "the new leader rotates the serving certificate", func() bool { return !sameCert(b.presented(t), leaf) })
}
