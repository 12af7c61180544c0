package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
)

// adapter is a minimal aggregated API server on 127.0.0.1: it answers the
// aggregator's discovery GET for one group/version over TLS with a serving
// certificate for <service>.<namespace>.svc.
type adapter struct {
	srv     *httptest.Server
	port    int32
	ca      *certs.KeyPair
	serving atomic.Pointer[tls.Certificate]
	group   string
	version string
	service string
	ns      string
}

// startAdapter starts an adapter for group/version served as Service ns/svc,
// with a fresh CA.
func startAdapter(t *testing.T, group, version, ns, svc string) *adapter {
	t.Helper()
	a := &adapter{group: group, version: version, ns: ns, service: svc}
	a.rotate(t)
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serveHTTP))
	a.srv.TLS = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.serving.Load(), nil },
	}
	// The aggregator's failed handshakes (wrong CA) are expected in tests.
	a.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	a.port = int32(a.srv.Listener.Addr().(*net.TCPAddr).Port)
	return a
}

// rotate issues a new CA and serving certificate and starts serving it.
func (a *adapter) rotate(t *testing.T) {
	t.Helper()
	ca, err := certs.NewCA("e2e-adapter-ca-"+a.service, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServing([]string{a.service + "." + a.ns + ".svc"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	a.ca = ca
	a.serving.Store(&pair)
}

func (a *adapter) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/apis/"+a.group+"/"+a.version {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: a.group + "/" + a.version,
		APIResources: []metav1.APIResource{},
	})
}

// name is the APIService name for the adapter's group/version.
func (a *adapter) name() string { return a.version + "." + a.group }

// objects returns the namespace, the ExternalName Service that sends the
// aggregator to 127.0.0.1, and an APIService with the given caBundle.
func (a *adapter) objects(caBundle []byte) (*corev1.Namespace, *corev1.Service, *apiregv1.APIService) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.ns}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: a.service, Namespace: a.ns},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: a.port}},
		},
	}
	port := a.port
	api := &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: a.name()},
		Spec: apiregv1.APIServiceSpec{
			Group: a.group, Version: a.version,
			Service:              &apiregv1.ServiceReference{Namespace: a.ns, Name: a.service, Port: &port},
			CABundle:             caBundle,
			GroupPriorityMinimum: 100,
			VersionPriority:      100,
		},
	}
	return ns, svc, api
}
