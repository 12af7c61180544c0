package servingcert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"apiservice-guard.io/apiservice-guard/certs"
)

// ErrNoCertificate is what the TLS handshake gets before the Secret has
// given a serving pair.
var ErrNoCertificate = errors.New("no serving certificate yet: waiting for the Secret")

// Keeper serves the guard's current serving pair from memory: it watches
// its one Secret (a watch with a field selector on the name, which RBAC
// resourceNames allow; never a list) and loads each version that holds a
// pair. A
// deleted Secret leaves the last pair in service until the leader writes a
// new one. Every replica runs one; it is safe for concurrent use.
type Keeper struct {
	opts    Options
	client  kubernetes.Interface
	current atomic.Pointer[served]
	// kick tells the Rotator (on the leader) that the Secret changed.
	kick   chan struct{}
	expiry prometheus.Gauge
}

// served is what the Keeper serves, and the CAs it last saw.
type served struct {
	cert     *tls.Certificate
	material Material
}

// NewKeeper returns a Keeper for opts' Secret, read through c.
func NewKeeper(c kubernetes.Interface, opts Options) (*Keeper, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	k := &Keeper{opts: opts, client: c, kick: make(chan struct{}, 1),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apiservice_guard_serving_certificate_expiry_timestamp_seconds",
			Help: "When the serving certificate this replica serves expires (Unix seconds); 0 before it has one.",
		})}
	if opts.Registry != nil {
		if err := opts.Registry.Register(k.expiry); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// GetCertificate is for tls.Config: the current pair, or ErrNoCertificate.
func (k *Keeper) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s := k.current.Load(); s != nil {
		return s.cert, nil
	}
	return nil, ErrNoCertificate
}

// Serving returns the material this replica serves: the pair and the CAs
// of the Secret version it came from (zero before the first).
func (k *Keeper) Serving() Material {
	if s := k.current.Load(); s != nil {
		return s.material
	}
	return Material{}
}

// NeedLeaderElection is false: every replica serves.
func (k *Keeper) NeedLeaderElection() bool { return false }

// Start watches the Secret until ctx ends. It never lists: a watch from no
// version (with a field selector on the Secret's name, which RBAC
// resourceNames allow) begins with the Secret as it is, then its changes;
// a watch that ends is taken up from the last version seen, or from none
// when that version is gone.
func (k *Keeper) Start(ctx context.Context) error {
	k.notify() // the Rotator's first look, Secret or none
	secrets := k.client.CoreV1().Secrets(k.opts.Namespace)
	selector := fields.OneTermEqualSelector("metadata.name", k.opts.Secret).String()
	logger := log.FromContext(ctx).WithName("servingcert")
	version, backoff := "", time.Duration(0)
	for ctx.Err() == nil {
		w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: selector, ResourceVersion: version, AllowWatchBookmarks: true})
		if err != nil {
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
			logger.Info("watching the certificate Secret failed; retrying", "error", err.Error(), "retryIn", backoff.String())
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		version = k.follow(ctx, w, version)
	}
	return nil
}

// follow applies a watch's events until it ends and returns the version
// to take it up from.
func (k *Keeper) follow(ctx context.Context, w watch.Interface, version string) string {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return version
		case ev, ok := <-w.ResultChan():
			if !ok {
				return version
			}
			switch ev.Type {
			case watch.Error:
				if apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)) || apierrors.IsGone(apierrors.FromObject(ev.Object)) {
					return "" // too old: start again from the Secret as it is
				}
				return version
			case watch.Added, watch.Modified:
				k.load(ctx, ev.Object)
			case watch.Deleted:
				k.notify()
			}
			if m, err := meta.Accessor(ev.Object); err == nil && ev.Type != watch.Error {
				version = m.GetResourceVersion()
			}
		}
	}
}

// load serves the pair of a Secret version, when it holds a usable one.
func (k *Keeper) load(ctx context.Context, obj any) {
	defer k.notify()
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	m, err := decode(s)
	if m.Serving == nil {
		log.FromContext(ctx).Info("the Secret holds no usable serving pair; serving the last one", "secret", s.Namespace+"/"+s.Name, "problems", errString(err))
		return
	}
	cert, err := m.Serving.TLSCertificate()
	if err != nil {
		log.FromContext(ctx).Info("the Secret's serving pair does not load; serving the last one", "secret", s.Namespace+"/"+s.Name, "error", err.Error())
		return
	}
	prev := k.current.Swap(&served{cert: &cert, material: m})
	k.expiry.Set(float64(m.Serving.Cert.NotAfter.Unix()))
	if prev == nil || !sameCert(prev.material.Serving.Cert, m.Serving.Cert) {
		log.FromContext(ctx).Info("serving certificate loaded", "fingerprint", certs.Fingerprint(m.Serving.Cert),
			"issuer", certs.Describe(issuer(m)), "notAfter", m.Serving.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
}

// issuer returns the CA of m's bundle that signed its serving certificate,
// else the serving certificate itself.
func issuer(m Material) *x509.Certificate {
	for _, ca := range m.Bundle {
		if m.Serving.Cert.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return m.Serving.Cert
}

// notify kicks the Rotator without waiting: one pending kick is enough.
func (k *Keeper) notify() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
