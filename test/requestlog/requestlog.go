// Package requestlog records the requests a Kubernetes client makes, for tests
// that assert what a client did (and did not) ask.
package requestlog

import (
	"net/http"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// Log records the method and URL of every request a rest.Config's
// transport makes, so tests can assert what a client did (and did not) ask.
type Log struct {
	mu   sync.Mutex
	reqs []string // "METHOD path?query"
}

// Wrap makes cfg record its requests in l and returns cfg.
func (l *Log) Wrap(cfg *rest.Config) *rest.Config {
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			l.mu.Lock()
			l.reqs = append(l.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
			l.mu.Unlock()
			return rt.RoundTrip(r)
		})
	}
	return cfg
}

// Matching returns the recorded requests whose path contains substr.
func (l *Log) Matching(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.reqs {
		if path, _, _ := strings.Cut(r, "?"); strings.Contains(path, substr) {
			out = append(out, r)
		}
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
