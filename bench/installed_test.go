package bench

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/test/harness"
)

// installEnv is the guard installed from manifests/ on the shared control
// plane (harness.Installation), set up by the first benchmark that needs
// it.
var installEnv = sync.OnceValues(func() (*harness.Installation, error) {
	cp, err := liveEnv()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return cp.Install(ctx, "..")
})

// installed returns the installation, fresh (no webhook configurations,
// Secret or Lease left by an earlier benchmark). When the benchmark ends,
// its webhook configurations are deleted, so that the benchmarks after it
// write without a webhook.
func installed(b *testing.B) *harness.Installation {
	in, err := installEnv()
	if err != nil {
		b.Fatal(err)
	}
	if err := in.Fresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := in.Unregister(context.Background()); err != nil {
			b.Error(err)
		}
	})
	return in
}

// startReplica starts a self-managed replica (Installation.StartReplica),
// leads the webhook Service to it, and stops it when the benchmark ends.
func startReplica(b *testing.B, in *harness.Installation, extra ...string) *harness.Replica {
	r, err := in.StartReplica(extra...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Stop() })
	if err := in.CP.Network.Balance(in.Service, r.Addr); err != nil {
		b.Fatal(err)
	}
	return r
}

// trustedClient is the installation's TrustedClient for the benchmark.
func trustedClient(b *testing.B, in *harness.Installation, conns int) *http.Client {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	c, err := in.TrustedClient(ctx, conns)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
