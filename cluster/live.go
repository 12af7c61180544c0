package cluster

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/internal/ttlcache"
)

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
	// MaxSecretBytes bounds the bytes of the Secrets kept (their data; a
	// Secret may hold 1 MiB). Defaults to 32 MiB.
	MaxSecretBytes int64
	// MaxCertificateBytes bounds the bytes of the cert-manager Certificates
	// kept (their JSON, twice over for the decoded form). Defaults to 8 MiB.
	MaxCertificateBytes int64
	// Prober answers ServingCertificate. Defaults to NewProber(ProberOptions{}).
	Prober *Prober
	// SyncTimeout bounds StartLive's wait for the first sync (unused by
	// NewLive). Defaults to 2m.
	SyncTimeout time.Duration
	// PolicyAPIs are the policy APIs to watch from the start, cluster-scoped
	// and Cilium's (see DiscoverPolicyAPIs; FollowPolicyAPIs adds those
	// installed later). Default: none.
	PolicyAPIs PolicyAPIs
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
	if o.MaxSecretBytes <= 0 {
		o.MaxSecretBytes = 32 << 20
	}
	if o.MaxCertificateBytes <= 0 {
		o.MaxCertificateBytes = 8 << 20
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
	// synced is set once every informer has synced; reads wait for it.
	synced atomic.Bool

	namespaces      *store[corev1.Namespace]
	services        *store[corev1.Service]
	endpointSlices  *store[discoveryv1.EndpointSlice]
	pods            *store[corev1.Pod]
	nodes           *store[corev1.Node]
	networkPolicies *store[networkingv1.NetworkPolicy]
	// policy holds the informers of the policy APIs served (cluster-scoped
	// and Cilium's); policyMu serializes adding to them.
	policy              atomic.Pointer[policyStores]
	policyMu            sync.Mutex
	apiServices         *store[apiregv1.APIService]
	roleBindings        *store[rbacv1.RoleBinding]
	clusterRoleBindings *store[rbacv1.ClusterRoleBinding]
	validatingWebhooks  *store[admissionregv1.ValidatingWebhookConfiguration]
	mutatingWebhooks    *store[admissionregv1.MutatingWebhookConfiguration]
	crds                *store[apiextensionsv1.CustomResourceDefinition]
}

var _ View = (*Live)(nil)

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
			&apiextensionsv1.CustomResourceDefinition{}: {Transform: TransformCRD},
		},
	}
}

// NewLive returns a Live view reading from c, which must have been built with
// CacheOptions, and from reader, an uncached reader (the manager's
// APIReader) used only to GET Secrets and Certificates by name. It registers
// the informers and indexes Live needs, so call it before c starts.
func NewLive(ctx context.Context, c cache.Cache, reader client.Reader, opts LiveOptions) (*Live, error) {
	opts = opts.withDefaults()
	l := &Live{
		cache:        c,
		reader:       reader,
		opts:         opts,
		secrets:      ttlcache.NewSized(opts.MaxObjects, opts.MaxSecretBytes, secretBytes),
		certificates: ttlcache.NewSized(opts.MaxObjects, opts.MaxCertificateBytes, certificateBytes),
	}
	b := &storeBuilder{ctx: ctx, cache: c}
	nsIndex := toolscache.Indexers{indexNamespace: byNamespace}
	l.namespaces = build[corev1.Namespace](b, &corev1.Namespace{}, corev1.Resource("namespaces"), nil)
	l.services = build[corev1.Service](b, &corev1.Service{}, corev1.Resource("services"), nil)
	l.endpointSlices = build[discoveryv1.EndpointSlice](b, &discoveryv1.EndpointSlice{}, discoveryv1.Resource("endpointslices"),
		toolscache.Indexers{indexService: sliceService})
	l.pods = build[corev1.Pod](b, &corev1.Pod{}, corev1.Resource("pods"), nsIndex)
	l.nodes = build[corev1.Node](b, &corev1.Node{}, corev1.Resource("nodes"), nil)
	l.networkPolicies = build[networkingv1.NetworkPolicy](b, &networkingv1.NetworkPolicy{}, networkingv1.Resource("networkpolicies"), nsIndex)
	// Informers the cache starts with: it syncs them with the rest.
	policies, _ := (*policyStores)(nil).withAPIs(b, opts.PolicyAPIs)
	l.policy.Store(policies)
	refIndex := toolscache.Indexers{indexServiceNamespace: byServiceNamespace}
	l.apiServices = build[apiregv1.APIService](b, &apiregv1.APIService{}, apiregv1.Resource("apiservices"), refIndex)
	l.roleBindings = build[rbacv1.RoleBinding](b, &rbacv1.RoleBinding{}, rbacv1.Resource("rolebindings"),
		toolscache.Indexers{indexNamespace: byNamespace, indexRoleRef: roleBindingRole})
	l.clusterRoleBindings = build[rbacv1.ClusterRoleBinding](b, &rbacv1.ClusterRoleBinding{}, rbacv1.Resource("clusterrolebindings"),
		toolscache.Indexers{indexRoleRef: clusterRoleBindingRole})
	l.validatingWebhooks = build[admissionregv1.ValidatingWebhookConfiguration](b, &admissionregv1.ValidatingWebhookConfiguration{},
		admissionregv1.Resource("validatingwebhookconfigurations"), refIndex)
	l.mutatingWebhooks = build[admissionregv1.MutatingWebhookConfiguration](b, &admissionregv1.MutatingWebhookConfiguration{},
		admissionregv1.Resource("mutatingwebhookconfigurations"), refIndex)
	l.crds = build[apiextensionsv1.CustomResourceDefinition](b, &apiextensionsv1.CustomResourceDefinition{},
		apiextensionsv1.Resource("customresourcedefinitions"), refIndex)
	if b.err != nil {
		return nil, b.err
	}
	return l, nil

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

// Reader is the informer cache Live reads from: for listing kinds it
// watches that no View question lists (the audit's APIServices).
func (l *Live) Reader() client.Reader { return l.cache }

// WaitForCacheSync blocks until every informer Live uses has synced; false
// means ctx ended first.
func (l *Live) WaitForCacheSync(ctx context.Context) bool {
	if l.synced.Load() {
		return true
	}
	ok := l.cache.WaitForCacheSync(ctx)
	if ok {
		l.synced.Store(true)
	}
	return ok
}

// ready blocks a read until the caches have synced, so a review never sees a
// half-filled cache.
func (l *Live) ready(ctx context.Context) error {
	if l.synced.Load() || l.WaitForCacheSync(ctx) {
		return nil
	}
	return fmt.Errorf("cluster view not synced: %w", context.Cause(ctx))
}

// Namespace implements View.
func (l *Live) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return readOne(ctx, l, l.namespaces, "", name)
}

// Service implements View.
func (l *Live) Service(ctx context.Context, ns, name string) (*corev1.Service, error) {
	return readOne(ctx, l, l.services, ns, name)
}

// EndpointSlices implements View, through the service-name index.
func (l *Live) EndpointSlices(ctx context.Context, ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
	return readIndex(ctx, l, l.endpointSlices, indexService, namespaced(ns, svc))
}

// Pods implements View. A nil selector matches every pod; an empty namespace
// means all namespaces.
func (l *Live) Pods(ctx context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	var pods []*corev1.Pod
	var err error
	if ns == "" {
		pods, err = readAll(ctx, l, l.pods)
	} else {
		pods, err = readIndex(ctx, l, l.pods, indexNamespace, ns)
	}
	if err != nil {
		return nil, err
	}
	if sel != nil && !sel.Empty() {
		pods = slices.DeleteFunc(pods, func(p *corev1.Pod) bool { return !sel.Matches(labels.Set(p.Labels)) })
	}
	// The informer's store has no order; rules name pods in messages, and a
	// message must not change while nothing changes (the audit rewrites a
	// report only when its text does).
	slices.SortFunc(pods, func(a, b *corev1.Pod) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return pods, nil
}

// Nodes implements View.
func (l *Live) Nodes(ctx context.Context) ([]*corev1.Node, error) {
	return readAll(ctx, l, l.nodes)
}

// NetworkPolicies implements View.
func (l *Live) NetworkPolicies(ctx context.Context, ns string) ([]*networkingv1.NetworkPolicy, error) {
	return readIndex(ctx, l, l.networkPolicies, indexNamespace, ns)
}

// APIService implements View.
func (l *Live) APIService(ctx context.Context, name string) (*apiregv1.APIService, error) {
	return readOne(ctx, l, l.apiServices, "", name)
}

// ServiceReferences implements View. For a namespace it reads the index of
// referenced Services' namespaces, so a namespace no Service of which is
// referenced, the common case, costs no list and no allocation.
func (l *Live) ServiceReferences(ctx context.Context, ns string) ([]ServiceReference, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	var out []ServiceReference
	for _, idx := range [...]toolscache.Indexer{l.apiServices.indexer, l.validatingWebhooks.indexer, l.mutatingWebhooks.indexer, l.crds.indexer} {
		var items []any
		if ns == "" {
			items = idx.List()
		} else {
			var err error
			if items, err = idx.ByIndex(indexServiceNamespace, ns); err != nil {
				return nil, err
			}
		}
		for _, item := range items {
			out = appendServiceReferences(out, item, ns)
		}
	}
	return out, nil
}

// RoleBindings implements View, through the roleRef index when roleName is set.
func (l *Live) RoleBindings(ctx context.Context, ns, roleName string) ([]*rbacv1.RoleBinding, error) {
	if roleName == "" {
		return readIndex(ctx, l, l.roleBindings, indexNamespace, ns)
	}
	return readIndex(ctx, l, l.roleBindings, indexRoleRef, namespaced(ns, roleName))
}

// ClusterRoleBindings implements View, through the roleRef index when
// roleName is set.
func (l *Live) ClusterRoleBindings(ctx context.Context, roleName string) ([]*rbacv1.ClusterRoleBinding, error) {
	if roleName == "" {
		return readAll(ctx, l, l.clusterRoleBindings)
	}
	return readIndex(ctx, l, l.clusterRoleBindings, indexRoleRef, namespaced("", roleName))
}

func readOne[T any](ctx context.Context, l *Live, s *store[T], ns, name string) (*T, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	return s.get(ns, name)
}

func readIndex[T any](ctx context.Context, l *Live, s *store[T], index, value string) ([]*T, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	return s.byIndex(index, value)
}

func readAll[T any](ctx context.Context, l *Live, s *store[T]) ([]*T, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	return s.list(), nil
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

// certificateBytes is what a cached Certificate holds, about: twice its
// JSON (names, usages and annotations are where a large one is large).
func certificateBytes(c *cmapi.Certificate) int64 {
	if c == nil {
		return 0
	}
	data, err := json.Marshal(c)
	if err != nil {
		return 1 << 20 // cannot happen for a decoded object; count it large
	}
	return 2 * int64(len(data))
}

// secretBytes is what a cached Secret holds, about: its data.
func secretBytes(s *corev1.Secret) int64 {
	if s == nil {
		return 0
	}
	n := int64(512)
	for k, v := range s.Data {
		n += int64(len(k) + len(v))
	}
	for k, v := range s.StringData {
		n += int64(len(k) + len(v))
	}
	return n
}
