package cabundle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/test/requestlog"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"apiservice-guard.io/apiservice-guard/cabundle"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// interval is the syncer's Interval in these tests; deadlines are counted in
// it.
const interval = 500 * time.Millisecond

// syncDeadline bounds how long the running syncer may take to act: a watch
// event or a requeue is due within one interval, so ten leave ample slack.
const syncDeadline = 10 * interval

// suite is the control plane with a manager running the syncer as the
// guard's ServiceAccount (the RBAC of manifests/base); TestMain sets it up.
var suite struct {
	cp *harness.ControlPlane
	// admin is an uncached admin client: what tests create and inspect.
	admin client.Client
	// requests records every request the manager makes.
	requests *requestlog.Log
	// logPath is the manager's log (JSON lines).
	logPath string
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "cabundle tests need kube-apiserver and etcd: run them with `make test`, "+
			"or set KUBEBUILDER_ASSETS=$(hack/tools.sh)")
		return 1
	}
	cp, err := harness.Start(harness.Options{CRDPaths: []string{filepath.Join("..", "test", "crds")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cabundle: starting the control plane:", err)
		return 1
	}
	defer func() {
		_ = cp.Stop()
		os.RemoveAll(cp.Dir)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped, err := startSyncer(ctx, cp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cabundle:", err)
		return 1
	}
	code := m.Run()
	cancel()
	if err := <-stopped; err != nil {
		fmt.Fprintln(os.Stderr, "cabundle: manager:", err)
		code = 1
	}
	return code
}

// startSyncer installs the guard's RBAC and runs a manager with the syncer as
// serve builds it, as the guard's ServiceAccount. The returned channel yields
// the manager's result once ctx ends.
func startSyncer(ctx context.Context, cp *harness.ControlPlane) (<-chan error, error) {
	if err := cp.InstallGuardRBAC(ctx, ".."); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.GuardKubeconfig)
	if err != nil {
		return nil, err
	}
	suite.cp, suite.admin, suite.requests = cp, cp.Client, &requestlog.Log{}
	suite.logPath = filepath.Join(cp.Dir, "manager.log")
	logFile, err := os.Create(suite.logPath)
	if err != nil {
		return nil, err
	}
	logger := zap.New(zap.WriteTo(logFile), zap.UseDevMode(true)) // dev mode: V(1) included
	ctrl.SetLogger(logger)
	scheme := cluster.NewScheme()
	mgr, err := ctrl.NewManager(suite.requests.Wrap(cfg), manager.Options{
		Scheme:  scheme,
		Cache:   cluster.CacheOptions(scheme),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Logger:  logger,
	})
	if err != nil {
		return nil, err
	}
	s, err := cabundle.New(mgr.GetClient(), cabundle.Options{
		Reader:   mgr.GetAPIReader(),
		Interval: interval,
		Recorder: mgr.GetEventRecorder("apiservice-guard"),
	})
	if err != nil {
		return nil, err
	}
	if err := s.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx); logFile.Close() }()
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return nil, fmt.Errorf("manager cache did not sync")
	}
	return stopped, nil
}

// managerLog returns what the manager has logged so far.
func managerLog(t *testing.T) string {
	t.Helper()
	f, err := os.Open(suite.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// dumpLogOnFailure prints the manager's log lines about names when t fails.
func dumpLogOnFailure(t *testing.T, names ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, line := range strings.Split(managerLog(t), "\n") {
			for _, n := range names {
				if strings.Contains(line, n) {
					t.Log(line)
					break
				}
			}
		}
	})
}

// runID keeps names unique across runs of a test in one process (-count=N).
var runID atomic.Int32

// unique returns base with a per-call suffix.
func unique(base string) string { return fmt.Sprintf("%s-%d", base, runID.Add(1)) }

// eventually polls check every 50ms until it returns "" or the deadline
// passes, then fails with what check last said.
func eventually(t *testing.T, deadline time.Duration, what string, check func() string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s: %s", what, deadline, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getAPIService reads an APIService as stored, managedFields included.
func getAPIService(t *testing.T, name string) *apiregv1.APIService {
	t.Helper()
	api := &apiregv1.APIService{}
	if err := suite.admin.Get(t.Context(), client.ObjectKey{Name: name}, api); err != nil {
		t.Fatalf("getting APIService %s: %v", name, err)
	}
	return api
}

// fieldsOf returns the fields manager owns on api, through an operation, as
// a JSON value; nil when it owns none.
func fieldsOf(t *testing.T, api *apiregv1.APIService, manager string) map[string]any {
	t.Helper()
	for _, mf := range api.ManagedFields {
		if mf.Manager != manager || mf.FieldsV1 == nil {
			continue
		}
		if mf.Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("manager %s wrote APIService %s with %s, want Apply", manager, api.Name, mf.Operation)
		}
		var fields map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			t.Fatal(err)
		}
		return fields
	}
	return nil
}

// caBundleOnly is the managedFields entry of a manager owning spec.caBundle
// and nothing else.
var caBundleOnly = map[string]any{"f:spec": map[string]any{"f:caBundle": map[string]any{}}}

// assertOwnsOnlyCABundle checks that the syncer's field manager owns exactly
// spec.caBundle of api.
func assertOwnsOnlyCABundle(t *testing.T, api *apiregv1.APIService) {
	t.Helper()
	got := fieldsOf(t, api, cabundle.DefaultFieldManager)
	if diff := cmp.Diff(caBundleOnly, got); diff != "" {
		t.Errorf("fields of manager %s on APIService %s (-want +got):\n%s", cabundle.DefaultFieldManager, api.Name, diff)
	}
}

// eventsAbout returns the reasons of the Events recorded on APIService name
// (in "default", where Events about cluster-scoped objects go).
func eventsAbout(t *testing.T, name string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := suite.admin.List(t.Context(), &list, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		t.Fatalf("listing Events: %v", err)
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "APIService" && e.Regarding.Name == name {
			reasons = append(reasons, e.Type+" "+e.Reason+": "+e.Note)
		}
	}
	return reasons
}

// waitForEvent waits until an Event with reason is recorded on APIService
// name, and returns its "type reason: note".
func waitForEvent(t *testing.T, name, reason string) string {
	t.Helper()
	var found string
	eventually(t, syncDeadline, "Event "+reason+" on APIService "+name, func() string {
		events := eventsAbout(t, name)
		for _, e := range events {
			if _, rest, _ := strings.Cut(e, " "); strings.HasPrefix(rest, reason+":") {
				found = e
				return ""
			}
		}
		return fmt.Sprintf("Events: %q", events)
	})
	return found
}

// create creates objects with the admin client. APIServices are deleted
// when the test ends: each one, unavailable, keeps the aggregator busy.
func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := suite.admin.Create(t.Context(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		if api, ok := o.(*apiregv1.APIService); ok {
			name := api.Name
			t.Cleanup(func() {
				del := &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: name}}
				if err := suite.admin.Delete(context.Background(), del); client.IgnoreNotFound(err) != nil {
					t.Errorf("deleting APIService %s: %v", name, err)
				}
			})
		}
	}
}

// namespace creates a fresh namespace and returns its name.
func namespace(t *testing.T, base string) string {
	t.Helper()
	ns := unique(base)
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	return ns
}
