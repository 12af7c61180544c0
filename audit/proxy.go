package audit

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
)

// APIServerProxy probes backends through the API server's service proxy
// (/api/v1/namespaces/NS/services/https:SVC:PORT/proxy/...) and pod proxy
// (.../pods/https:POD:PORT/proxy/...), which dial them from where the
// aggregator dials them, without verifying their certificates: it separates
// network causes from TLS and HTTP ones.
type APIServerProxy struct {
	host    *url.URL
	client  *http.Client
	timeout time.Duration
}

// NewAPIServerProxy probes through the API server of cfg, each probe
// bounded by timeout (default 1s).
func NewAPIServerProxy(cfg *rest.Config, timeout time.Duration) (*APIServerProxy, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	host, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	return &APIServerProxy{host: host, client: client, timeout: timeout}, nil
}

// maxProbeBody bounds how much of an answer is read: a backend's answer
// is evidence, not data.
const maxProbeBody = 512

// ProbeService implements ProxyProber.
func (p *APIServerProxy) ProbeService(ctx context.Context, namespace, service string, port int32, path string) (int, string, error) {
	return p.probe(ctx, namespace, "services", service, port, path)
}

// ProbePod implements ProxyProber.
func (p *APIServerProxy) ProbePod(ctx context.Context, namespace, pod string, port int32, path string) (int, string, error) {
	return p.probe(ctx, namespace, "pods", pod, port, path)
}

// probe GETs path through the proxy of one Service or pod. An HTTP answer
// (the backend's, or the proxy's own error) is a status and the start of
// its body; no answer is an error.
func (p *APIServerProxy) probe(ctx context.Context, namespace, resource, name string, port int32, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	u := p.host.JoinPath("/api/v1/namespaces", namespace, resource, "https:"+name+":"+strconv.Itoa(int(port)), "proxy", path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", "application/json")
	res, err := p.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = res.Body.Close() }()
	// A body cut short by the timeout still has its status.
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxProbeBody))
	return res.StatusCode, string(body), nil
}
