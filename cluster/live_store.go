package cluster

import (
	"context"
	"fmt"
	"sync/atomic"

	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// store reads one kind straight from its informer's indexer. The objects are
// the cache's own pointers: no deep copy and no reflection copy into a list,
// which is what makes a warm review cheap. They are read-only, as every View
// result is.
type store[T any] struct {
	indexer toolscache.Indexer
	gr      schema.GroupResource
	// changes counts the informer's events once track is called: a
	// listing made at one count is current until the count moves.
	changes  atomic.Uint64
	informer toolscache.SharedIndexInformer
}

// track starts counting the informer's events (store.changes).
func (s *store[T]) track() error {
	if s == nil {
		return nil
	}
	count := func(any) { s.changes.Add(1) }
	_, err := s.informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: count, DeleteFunc: count, UpdateFunc: func(_, obj any) { count(obj) }})
	return err
}

// version is the count of changes; 0 for a nil store.
func (s *store[T]) version() uint64 {
	if s == nil {
		return 0
	}
	return s.changes.Load()
}

// newStore gets (without starting) the informer of obj's kind from c and adds
// Live's own indexes to it; call it before c starts.
func newStore[T any](ctx context.Context, c cache.Cache, obj client.Object, gr schema.GroupResource, indexers toolscache.Indexers) (*store[T], error) {
	inf, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("informer for %s: %w", gr, err)
	}
	shared, ok := inf.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("informer for %s is a %T, not a client-go SharedIndexInformer", gr, inf)
	}
	if len(indexers) > 0 {
		if err := inf.AddIndexers(indexers); err != nil {
			return nil, fmt.Errorf("indexing %s: %w", gr, err)
		}
	}
	return &store[T]{indexer: shared.GetIndexer(), gr: gr, informer: shared}, nil
}

// hasSynced is the informer's HasSynced.
func (s *store[T]) hasSynced() func() bool {
	if s == nil {
		return func() bool { return false } // its build failed
	}
	return s.informer.HasSynced
}

// get returns the object namespace/name, or a NotFound error.
func (s *store[T]) get(namespace, name string) (*T, error) {
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	item, exists, err := s.indexer.GetByKey(key)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, apierrors.NewNotFound(s.gr, name)
	}
	return item.(*T), nil
}

// byIndex returns the objects whose index value is value.
func (s *store[T]) byIndex(index, value string) ([]*T, error) {
	items, err := s.indexer.ByIndex(index, value)
	if err != nil {
		return nil, err
	}
	return typed[T](items), nil
}

// list returns every object.
func (s *store[T]) list() []*T { return typed[T](s.indexer.List()) }

func typed[T any](items []any) []*T {
	out := make([]*T, len(items))
	for i, item := range items {
		out[i] = item.(*T)
	}
	return out
}

// Index names of Live's own indexes.
const (
	indexNamespace = "guard.namespace"
	indexService   = "guard.namespace/service"
	indexRoleRef   = "guard.namespace/roleRef"
	// indexServiceNamespace indexes APIServices, webhook configurations and
	// CRDs by the namespaces of the Services they reference.
	indexServiceNamespace = "guard.serviceNamespace"
)

// byNamespace indexes an object by its namespace.
func byNamespace(obj any) ([]string, error) {
	return []string{obj.(client.Object).GetNamespace()}, nil
}

// namespaced joins a namespace and a value into an index value.
func namespaced(ns, value string) string { return ns + "/" + value }

// storeBuilder builds the stores of a Live view, keeping the first error.
type storeBuilder struct {
	ctx   context.Context
	cache cache.Cache
	err   error
}

func build[T any](b *storeBuilder, obj client.Object, gr schema.GroupResource, indexers toolscache.Indexers) *store[T] {
	if b.err != nil {
		return nil
	}
	s, err := newStore[T](b.ctx, b.cache, obj, gr, indexers)
	b.err = err
	return s
}

// sliceService indexes an EndpointSlice by namespace/Service.
func sliceService(obj any) ([]string, error) {
	s := obj.(*discoveryv1.EndpointSlice)
	if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
		return []string{namespaced(s.Namespace, svc)}, nil
	}
	return nil, nil
}

// roleBindingRole indexes a RoleBinding by namespace/role name.
func roleBindingRole(obj any) ([]string, error) {
	b := obj.(*rbacv1.RoleBinding)
	return []string{namespaced(b.Namespace, b.RoleRef.Name)}, nil
}

// clusterRoleBindingRole indexes a ClusterRoleBinding by "/"+role name.
func clusterRoleBindingRole(obj any) ([]string, error) {
	return []string{namespaced("", obj.(*rbacv1.ClusterRoleBinding).RoleRef.Name)}, nil
}
