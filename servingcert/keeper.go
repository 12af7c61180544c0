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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"apiservice-guard.io/apiservice-guard/certs"
)

// ErrNoCertificate is what the TLS handshake gets before the Secret has
// given a serving pair.
var ErrNoCertificate = errors.New("no serving certificate yet: waiting for the Secret")

// Keeper serves the guard's current serving pair from memory: it watches
// its one Secret (a list and watch with a field selector on the name, which
// RBAC resourceNames allow) and loads each version that holds a pair. A
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

// Start watches the Secret until ctx ends.
func (k *Keeper) Start(ctx context.Context) error {
	secrets := k.client.CoreV1().Secrets(k.opts.Namespace)
	byName := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", k.opts.Secret).String()
	}
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			byName(&o)
			return secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			byName(&o)
			return secrets.Watch(ctx, o)
		},
	}
	inf := toolscache.NewSharedIndexInformer(lw, &corev1.Secret{}, 10*time.Minute, toolscache.Indexers{})
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.load(ctx, obj) },
		UpdateFunc: func(_, obj any) { k.load(ctx, obj) },
		DeleteFunc: func(any) { k.notify() },
	}); err != nil {
		return err
	}
	go inf.Run(ctx.Done())
	if toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		k.notify() // the Rotator's first look, Secret or none
	}
	<-ctx.Done()
	return nil
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
