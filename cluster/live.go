package cluster

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"apiservice-guard.io/apiservice-guard/internal/ttlcache"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// indexEndpointSliceService is the field index of EndpointSlices by the
// Service they belong to (label kubernetes.io/service-name).
const indexEndpointSliceService = "guard.serviceName"

// indexRoleRefName is the field index of RoleBindings and ClusterRoleBindings
// by the name of the role they bind.
const indexRoleRefName = "guard.roleRefName"

// LiveOptions configures a Live view. Zero values take the documented defaults.
type LiveOptions struct {
	// ObjectTTL is how long a Secret or Certificate read by name is reused
	// before it is read again from the API server. Defaults to 30s.
	ObjectTTL time.Duration
	// NotFoundTTL is how long "not found" (and, for Certificates, "cert-manager
	// not installed") is reused. Defaults to 5s.
	NotFoundTTL time.Duration
	// MaxObjects bounds the Secrets and the Certificates kept, each; the
	// oldest is evicted first. Defaults to 1024.
	MaxObjects int
	// Prober answers ServingCertificate. Defaults to NewProber(ProberOptions{}).
	Prober *Prober
	// SyncTimeout bounds StartLive's wait for the first sync (unused by
	// NewLive). Defaults to 2m.
	SyncTimeout time.Duration
}

func (o LiveOptions) withDefaults() LiveOptions {
	if o.ObjectTTL <= 0 {
		o.ObjectTTL = 30 * time.Second
	}
	if o.NotFoundTTL <= 0 {
		o.NotFoundTTL = 5 * time.Second
	}
	if o.MaxObjects <= 0 {
		o.MaxObjects = 1024
	}
	if o.Prober == nil {
		o.Prober = NewProber(ProberOptions{})
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 2 * time.Minute
	}
	return o
}

// Live is the View of a running cluster. Most kinds come from a
// controller-runtime informer cache configured by CacheOptions; Secrets and
// Certificates are read by name through an uncached reader and kept briefly,
// so the guard never lists or watches Secrets cluster-wide.
type Live struct {
	cache        cache.Cache
	reader       client.Reader
	opts         LiveOptions
	secrets      *ttlcache.Cache[*corev1.Secret]
	certificates *ttlcache.Cache[*cmapi.Certificate]
}

var _ View = (*Live)(nil)

// cachedObjects are the kinds Live reads from the informer cache.
func cachedObjects() []client.Object {
	return []client.Object{
		&corev1.Namespace{}, &corev1.Service{}, &discoveryv1.EndpointSlice{},
		&corev1.Pod{}, &corev1.Node{}, &networkingv1.NetworkPolicy{},
		&apiregv1.APIService{}, &corev1.ServiceAccount{},
		&rbacv1.RoleBinding{}, &rbacv1.ClusterRoleBinding{},
	}
}

// CacheOptions returns the cache options Live needs: managedFields stripped
// from every object, Pods and Nodes reduced to what rules read (see
// TransformPod, TransformNode), and ReaderFailOnMissingInformer so that a read
// of an uncached kind (a Secret, say) through the cache fails instead of
// silently starting a cluster-wide informer. A nil scheme means NewScheme().
// Pass the result as the manager's Options.Cache; a caller that reads other
// kinds through the manager's client must start their informers explicitly
// (cache.GetInformer) or read them through the APIReader.
func CacheOptions(scheme *runtime.Scheme) cache.Options {
	if scheme == nil {
		scheme = NewScheme()
	}
	return cache.Options{
		Scheme:                      scheme,
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Transform: TransformPod},
			&corev1.Node{}: {Transform: TransformNode},
		},
	}
}

// NewLive returns a Live view reading from c, which must have been built with
// CacheOptions, and from reader, an uncached reader (the manager's
// APIReader) used only to GET Secrets and Certificates by name. It registers
// the informers and indexes Live needs, so call it before c starts.
func NewLive(ctx context.Context, c cache.Cache, reader client.Reader, opts LiveOptions) (*Live, error) {
	for _, obj := range cachedObjects() {
		if _, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	if err := indexFields(ctx, c); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	return &Live{
		cache:        c,
		reader:       reader,
		opts:         opts,
		secrets:      ttlcache.New[*corev1.Secret](opts.MaxObjects),
		certificates: ttlcache.New[*cmapi.Certificate](opts.MaxObjects),
	}, nil
}

// StartLive builds a cache and an uncached client from cfg, starts the cache
// until ctx ends and waits (at most SyncTimeout) for it to sync. It is for
// commands that run without a manager (diagnose); a manager should use
// CacheOptions and NewLive.
func StartLive(ctx context.Context, cfg *rest.Config, opts LiveOptions) (*Live, error) {
	copts := CacheOptions(nil)
	c, err := cache.New(cfg, copts)
	if err != nil {
		return nil, fmt.Errorf("creating cache: %w", err)
	}
	reader, err := client.New(cfg, client.Options{Scheme: copts.Scheme})
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	l, err := NewLive(ctx, c, reader, opts)
	if err != nil {
		return nil, err
	}
	cacheCtx, stopCache := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Start(cacheCtx) }()
	syncCtx, cancel := context.WithTimeout(ctx, l.opts.SyncTimeout)
	defer cancel()
	synced := make(chan bool, 1)
	go func() { synced <- l.WaitForCacheSync(syncCtx) }()
	select {
	case err := <-errc:
		stopCache()
		return nil, fmt.Errorf("cache stopped before it synced: %w", errors.Join(err, context.Cause(ctx)))
	case ok := <-synced:
		if !ok {
			stopCache()
			return nil, fmt.Errorf("waiting for the cache to sync: %w", context.Cause(syncCtx))
		}
	}
	// On success the cache runs until ctx ends; stopCache is for failures.
	context.AfterFunc(ctx, stopCache)
	return l, nil
}

// WaitForCacheSync blocks until every informer Live uses has synced; false
// means ctx ended first.
func (l *Live) WaitForCacheSync(ctx context.Context) bool {
	return l.cache.WaitForCacheSync(ctx)
}

// getCached reads one object from the cache without copying it: View results
// are read-only.
func getCached[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c client.Reader, ns, name string) (PT, error) {
	obj := PT(new(T))
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return obj, nil
}

// ptrs points into items, which the caller owns.
func ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// Namespace implements View.
func (l *Live) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return getCached[corev1.Namespace](ctx, l.cache, "", name)
}

// Service implements View.
func (l *Live) Service(ctx context.Context, ns, name string) (*corev1.Service, error) {
	return getCached[corev1.Service](ctx, l.cache, ns, name)
}

// EndpointSlices implements View, through the service-name index.
func (l *Live) EndpointSlices(ctx context.Context, ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	err := l.cache.List(ctx, &list, client.InNamespace(ns),
		client.MatchingFields{indexEndpointSliceService: svc}, client.UnsafeDisableDeepCopy)
	return ptrs(list.Items), err
}

// Pods implements View. A nil selector matches every pod. A namespace is
// read through the cache's built-in namespace index, the rest by label.
func (l *Live) Pods(ctx context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	if sel == nil {
		sel = labels.Everything()
	}
	var list corev1.PodList
	err := l.cache.List(ctx, &list, client.InNamespace(ns),
		client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy)
	return ptrs(list.Items), err
}

// Nodes implements View.
func (l *Live) Nodes(ctx context.Context) ([]*corev1.Node, error) {
	var list corev1.NodeList
	err := l.cache.List(ctx, &list, client.UnsafeDisableDeepCopy)
	return ptrs(list.Items), err
}

// NetworkPolicies implements View.
func (l *Live) NetworkPolicies(ctx context.Context, ns string) ([]*networkingv1.NetworkPolicy, error) {
	var list networkingv1.NetworkPolicyList
	err := l.cache.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy)
	return ptrs(list.Items), err
}

// APIService implements View.
func (l *Live) APIService(ctx context.Context, name string) (*apiregv1.APIService, error) {
	return getCached[apiregv1.APIService](ctx, l.cache, "", name)
}

// ServiceAccount implements View.
func (l *Live) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	return getCached[corev1.ServiceAccount](ctx, l.cache, ns, name)
}

// RoleBindings implements View.
func (l *Live) RoleBindings(ctx context.Context, ns, roleName string) ([]*rbacv1.RoleBinding, error) {
	var list rbacv1.RoleBindingList
	err := l.cache.List(ctx, &list, append(roleRefFilter(roleName), client.InNamespace(ns), client.UnsafeDisableDeepCopy)...)
	return ptrs(list.Items), err
}

// ClusterRoleBindings implements View.
func (l *Live) ClusterRoleBindings(ctx context.Context, roleName string) ([]*rbacv1.ClusterRoleBinding, error) {
	var list rbacv1.ClusterRoleBindingList
	err := l.cache.List(ctx, &list, append(roleRefFilter(roleName), client.UnsafeDisableDeepCopy)...)
	return ptrs(list.Items), err
}

// roleRefFilter selects bindings by roleRef name through the index, or none.
func roleRefFilter(roleName string) []client.ListOption {
	if roleName == "" {
		return nil
	}
	return []client.ListOption{client.MatchingFields{indexRoleRefName: roleName}}
}

// Secret implements View: a GET by name through the uncached reader, reused
// for ObjectTTL (NotFoundTTL when it does not exist).
func (l *Live) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return getByName(ctx, l, l.secrets, ns, name, func(err error) error { return err })
}

// Certificate implements View like Secret. When the API server does not
// serve cert-manager's Certificate kind the error wraps ErrNotAvailable.
func (l *Live) Certificate(ctx context.Context, ns, name string) (*cmapi.Certificate, error) {
	return getByName(ctx, l, l.certificates, ns, name, func(err error) error {
		if missingAPI(err) {
			// %v, not %w: the cause may be a 404 that must not read as
			// "this Certificate does not exist".
			return fmt.Errorf("cert-manager Certificate %s/%s: %w: %v", ns, name, ErrNotAvailable, err)
		}
		return err
	})
}

// getByName reads one object through the uncached reader, answering from
// store while the last answer is fresh. classify maps the read error; only
// success, "not found" and ErrNotAvailable are stored.
func getByName[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, l *Live, store *ttlcache.Cache[PT], ns, name string, classify func(error) error) (PT, error) {
	key := ns + "/" + name
	if obj, err, ok := store.Get(key); ok {
		return obj, err
	}
	obj := PT(new(T))
	err := l.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	if err != nil {
		obj = nil
		err = classify(err)
	}
	switch {
	case err == nil:
		store.Put(key, obj, nil, l.opts.ObjectTTL)
	case apierrors.IsNotFound(err), errors.Is(err, ErrNotAvailable):
		store.Put(key, nil, err, l.opts.NotFoundTTL)
	}
	return obj, err
}

// missingAPI reports whether err says the API server does not serve the
// requested kind at all: no REST mapping, or a 404 that names no object
// (the resource path itself is unknown, e.g. the CRD was just removed).
func missingAPI(err error) bool {
	if meta.IsNoMatchError(err) {
		return true
	}
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

// ServingCertificate implements View through the Prober.
func (l *Live) ServingCertificate(ctx context.Context, address, serverName string) ([]*x509.Certificate, error) {
	return l.opts.Prober.ServingCertificate(ctx, address, serverName)
}

// indexFields registers the field indexes Live reads by: EndpointSlices by
// Service, and role bindings by the role they bind.
func indexFields(ctx context.Context, c cache.Cache) error {
	err := c.IndexField(ctx, &discoveryv1.EndpointSlice{}, indexEndpointSliceService, func(o client.Object) []string {
		if svc := o.GetLabels()[discoveryv1.LabelServiceName]; svc != "" {
			return []string{svc}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("indexing EndpointSlices by service: %w", err)
	}
	if err := c.IndexField(ctx, &rbacv1.RoleBinding{}, indexRoleRefName, func(o client.Object) []string {
		return []string{o.(*rbacv1.RoleBinding).RoleRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing RoleBindings by role: %w", err)
	}
	if err := c.IndexField(ctx, &rbacv1.ClusterRoleBinding{}, indexRoleRefName, func(o client.Object) []string {
		return []string{o.(*rbacv1.ClusterRoleBinding).RoleRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing ClusterRoleBindings by role: %w", err)
	}
	return nil
}
