package e2e

import (
	"testing"

	"apiservice-guard.io/apiservice-guard/test/adapter"
)

// startAdapter starts a test adapter for group/version served as Service
// ns/svc, stopped when the test ends.
func startAdapter(t *testing.T, group, version, ns, svc string) *adapter.Adapter {
	t.Helper()
	a, err := adapter.Start(adapter.Options{Group: group, Version: version, Namespace: ns, Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}
