package install

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// loadNamespace is where the load's NetworkPolicies are written.
const loadNamespace = "load"

// loadAPIService is the APIService the load updates: a local one (no
// Service), so nothing but the guard's webhooks stands in its way.
const loadAPIService = "v1alpha1.load.example.com"

// load writes through the API server, each write passing the guard's
// webhooks (failurePolicy Fail): NetworkPolicy creates and deletes, and
// APIService updates. It counts the writes and keeps the failures.
type load struct {
	id     int64 // names this load's NetworkPolicies apart from an earlier one's
	ok     atomic.Int64
	mu     sync.Mutex
	failed []string
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// loads counts the loads started.
var loads atomic.Int64

// startLoad starts writers until the returned load is stopped.
func startLoad(t *testing.T, writers int) *load {
	t.Helper()
	c := suite.cp.Client
	ctx := t.Context()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: loadNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	api := &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: loadAPIService},
		Spec: apiregv1.APIServiceSpec{Group: "load.example.com", Version: "v1alpha1", GroupPriorityMinimum: 100, VersionPriority: 100}}
	if err := c.Create(ctx, api); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the load's APIService: %v", err)
	}
	run, stop := context.WithCancel(context.Background())
	l := &load{id: loads.Add(1), stop: stop}
	for w := range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				err := l.write(run, c, w, i)
				if run.Err() != nil {
					return // stopped: a write cut short is not a failure
				}
				l.record(fmt.Sprintf("writer %d, write %d", w, i), err)
			}
		}()
	}
	t.Cleanup(func() { l.finish() })
	return l
}

// write makes write i of writer w: a NetworkPolicy created, then deleted,
// then an APIService label patched, in turn.
func (l *load) write(ctx context.Context, c client.Client, w, i int) error {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: loadNamespace, Name: fmt.Sprintf("load-%d-%d-%d", l.id, w, i/3)},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "load"}}}}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	switch i % 3 {
	case 0:
		return c.Create(ctx, np)
	case 1:
		return c.Delete(ctx, np)
	default:
		patch := fmt.Sprintf(`{"metadata":{"labels":{"writer-%d":"%d"}}}`, w, i)
		return c.Patch(ctx, &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: loadAPIService}}, client.RawPatch(types.MergePatchType, []byte(patch)))
	}
}

func (l *load) record(what string, err error) {
	if err == nil {
		l.ok.Add(1)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, what+": "+err.Error())
}

// finish stops the writers and returns the writes made and the failures.
func (l *load) finish() (int64, []string) {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed
}
