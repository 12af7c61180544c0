package webhook_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// TestDistinctLargeBundlesKeepMemoryBounded: a thousand APIService writes,
// each with a distinct caBundle of 400 certificates (the guard's parse
// cache would keep about 1.2 GB of them without its byte budget), leave
// the live heap under 256 MiB.
func TestDistinctLargeBundlesKeepMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("parses 400,000 certificates")
	}
	const (
		bundles   = 1000
		perBundle = 400
		heapBound = 256 << 20
	)
	var pool [][]byte
	for range perBundle + 1 {
		ca, err := certs.NewCA("memory-test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pool = append(pool, ca.CertPEM())
	}
	h := webhook.Handler(webhook.NewValidator(emptyCluster(t)))

	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	for i := range bundles {
		// Leave one certificate out, and start at another: every bundle's
		// bytes differ.
		var b bytes.Buffer
		for j := range perBundle {
			b.Write(pool[(i+j)%len(pool)])
		}
		if i/len(pool)%2 == 1 {
			b.WriteString("# " + strings.Repeat("x", i) + "\n")
		}
		body := apiServiceRequest(strings.Replace(okSpec, "%s", base64.StdEncoding.EncodeToString(b.Bytes()), 1))
		req := httptest.NewRequest(http.MethodPost, webhook.ValidatePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"uid":"u1"`) {
			t.Fatalf("review %d: HTTP %d %.300s", i, rec.Code, rec.Body.String())
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(h)
	t.Logf("live heap after %d distinct bundles of %d certificates: %d MiB (before: %d MiB)",
		bundles, perBundle, after.HeapAlloc>>20, base.HeapAlloc>>20)
	if after.HeapAlloc > heapBound {
		t.Errorf("live heap %d MiB, bound %d MiB", after.HeapAlloc>>20, heapBound>>20)
	}
}
