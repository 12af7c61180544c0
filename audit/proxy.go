package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
)

// ServiceProxy probes Services through the API server's service proxy
// (/api/v1/namespaces/NS/services/https:SVC:PORT/proxy/...), which dials
// the backend from where the aggregator dials it, without verifying its
// certificate: it separates network causes from TLS and HTTP ones.
type ServiceProxy struct {
	// Client is a REST client for the core API group (a clientset's
	// CoreV1().RESTClient()).
	Client rest.Interface
	// Timeout bounds one probe. Default: 1s.
	Timeout time.Duration
}

// maxProbeBody bounds how much of an answer is kept.
const maxProbeBody = 512

// ProbeService implements ProxyProber.
func (p ServiceProxy) ProbeService(ctx context.Context, namespace, service string, port int32, path string) (int, string, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := p.Client.Get().
		AbsPath("/api/v1/namespaces", namespace, "services", "https:"+service+":"+strconv.Itoa(int(port)), "proxy").
		Suffix(path).Do(ctx)
	var status int
	res.StatusCode(&status)
	body, err := res.Raw()
	if len(body) > maxProbeBody {
		body = body[:maxProbeBody]
	}
	if status != 0 {
		return status, string(body), nil // an HTTP answer: the status says it
	}
	if err == nil {
		err = fmt.Errorf("no answer")
	}
	return 0, string(body), err
}
