package audit

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// startControlPlane starts kube-apiserver and etcd with the report CRDs of
// both APIs installed.
func startControlPlane(t *testing.T) *harness.ControlPlane {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("these tests need kube-apiserver and etcd: run them with `make test`, or set KUBEBUILDER_ASSETS=$(hack/tools.sh)")
	}
	crds := filepath.Join("..", "test", "crds", "reports")
	cp, err := harness.Start(harness.Options{CRDPaths: []string{filepath.Join(crds, "openreports"), filepath.Join(crds, "wgpolicyk8s")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
		os.RemoveAll(cp.Dir)
	})
	return cp
}

// TestResolveAPI: auto takes OpenReports over wgpolicyk8s, and none when
// neither is served; an API asked for by name must be served.
func TestResolveAPI(t *testing.T) {
	both := meta.NewDefaultRESTMapper(nil)
	for _, api := range []API{APIOpenReports, APIWGPolicy} {
		both.Add(reportKinds[api].cluster, meta.RESTScopeRoot)
		both.Add(reportKinds[api].namespaced, meta.RESTScopeNamespace)
	}
	wgOnly := meta.NewDefaultRESTMapper(nil)
	wgOnly.Add(reportKinds[APIWGPolicy].cluster, meta.RESTScopeRoot)
	neither := meta.NewDefaultRESTMapper(nil)
	tests := []struct {
		name    string
		mapper  meta.RESTMapper
		want    API
		got     API
		wantErr bool
	}{
		{"auto, both", both, APIAuto, APIOpenReports, false},
		{"auto, wgpolicyk8s only", wgOnly, APIAuto, APIWGPolicy, false},
		{"auto, neither", neither, APIAuto, APINone, false},
		{"wgpolicyk8s asked, both", both, APIWGPolicy, APIWGPolicy, false},
		{"openreports asked, not served", wgOnly, APIOpenReports, APIOpenReports, true},
		{"none asked", both, APINone, APINone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveAPI(tt.mapper, tt.want)
			if got != tt.got || (err != nil) != tt.wantErr {
				t.Errorf("ResolveAPI(%s) = %s, %v; want %s, error %v", tt.want, got, err, tt.got, tt.wantErr)
			}
		})
	}
}

// TestWriter writes, against a real API server, a report per object in
// each API: created on the first write, not written again while the
// verdict says the same (nor after a restart of the writer), rewritten when
// it changes with unchanged results keeping their time, and deleted.
func TestWriter(t *testing.T) {
	cp := startControlPlane(t)
	ctx := t.Context()
	c := cp.Client
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "deny"}}
	if err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	obj := corev1.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: "default", Name: "deny", UID: np.UID}
	api := corev1.ObjectReference{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: "v1beta1.x.example.com", UID: types.UID("0b7e6a52-0000-4000-8000-000000000001")}
	failing := Verdict{Object: obj,
		Findings: []policies.Finding{{Rule: "networkpolicy-blocks-apiservice", Action: policies.Enforce, Message: "blocks", Fix: "allow it"}},
		Passed:   []policies.EnabledRule{{Name: "networkpolicy-invalid", Action: policies.Warn}}}
	passing := Verdict{Object: obj, Passed: []policies.EnabledRule{{Name: "networkpolicy-blocks-apiservice"}, {Name: "networkpolicy-invalid"}}}
	rules := policies.DefaultRules()

	for _, which := range []API{APIOpenReports, APIWGPolicy} {
		t.Run(string(which), func(t *testing.T) {
			clock := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			w := NewWriter(c, rules, WriterOptions{API: which, Now: func() time.Time { return clock }})
			get := func(o corev1.ObjectReference) (*unstructured.Unstructured, error) {
				u := &unstructured.Unstructured{}
				u.SetGroupVersionKind(reportKind(which, o.Namespace))
				return u, c.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: string(o.UID)}, u)
			}
			mustWrite := func(v Verdict, want bool) *unstructured.Unstructured {
				t.Helper()
				wrote, err := w.Write(ctx, v)
				if err != nil || wrote != want {
					t.Fatalf("Write() = %v, %v; want %v", wrote, err, want)
				}
				u, err := get(v.Object)
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			summary := func(u *unstructured.Unstructured) [3]int64 {
				var s [3]int64
				for i, f := range []string{"pass", "fail", "warn"} {
					s[i], _, _ = unstructured.NestedInt64(u.Object, "summary", f)
				}
				return s
			}
			stamp := func(u *unstructured.Unstructured, i int) int64 {
				results, _, _ := unstructured.NestedSlice(u.Object, "results")
				s, _, _ := unstructured.NestedInt64(results[i].(map[string]any), "timestamp", "seconds")
				return s
			}

			first := mustWrite(failing, true)
			if got := summary(first); got != [3]int64{1, 1, 0} {
				t.Errorf("summary pass/fail/warn = %v", got)
			}
			again := mustWrite(failing, false)
			if again.GetResourceVersion() != first.GetResourceVersion() {
				t.Errorf("an unchanged verdict rewrote the report")
			}

			// A restarted writer finds the report and does not rewrite it.
			clock = clock.Add(time.Hour)
			w = NewWriter(c, rules, WriterOptions{API: which, Now: func() time.Time { return clock }})
			uids, err := w.Load(ctx)
			if err != nil || len(uids) != 1 || uids[0] != obj.UID {
				t.Fatalf("Load() = %v, %v", uids, err)
			}
			mustWrite(failing, false)

			// The fix: rewritten; networkpolicy-invalid still passes and
			// keeps its time, the fixed rule's pass is new.
			fixed := mustWrite(passing, true)
			if got := summary(fixed); got != [3]int64{2, 0, 0} {
				t.Errorf("after the fix, summary = %v", got)
			}
			if got, want := stamp(fixed, 0), clock.Unix(); got != want {
				t.Errorf("new pass at %d, want %d", got, want)
			}
			if got, want := stamp(fixed, 1), clock.Add(-time.Hour).Unix(); got != want {
				t.Errorf("unchanged pass at %d, want its first time %d", got, want)
			}

			// A cluster-scoped object gets a cluster-scoped report.
			mustWrite(Verdict{Object: api, Passed: []policies.EnabledRule{{Name: "apiservice-unreachable"}}}, true)

			n, err := w.Prune(ctx, map[types.UID]bool{api.UID: true})
			if err != nil || n != 1 {
				t.Fatalf("Prune() = %d, %v; want 1", n, err)
			}
			if _, err := get(obj); !apierrors.IsNotFound(err) {
				t.Errorf("pruned report: %v, want not found", err)
			}
			if deleted, err := w.Delete(ctx, api.UID); err != nil || !deleted {
				t.Errorf("Delete() = %v, %v", deleted, err)
			}
			if _, err := get(api); !apierrors.IsNotFound(err) {
				t.Errorf("deleted report: %v, want not found", err)
			}
		})
	}
}

// TestWriterNone writes nothing.
func TestWriterNone(t *testing.T) {
	w := NewWriter(nil, nil, WriterOptions{API: APINone})
	if wrote, err := w.Write(t.Context(), Verdict{Object: corev1.ObjectReference{UID: "x"}}); wrote || err != nil {
		t.Errorf("Write() = %v, %v", wrote, err)
	}
}
