package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/test/adapter"
	"apiservice-guard.io/apiservice-guard/test/harness"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// runs numbers the namespaces of repeated runs (-count), which share the
// control plane.
var runs atomic.Int32

// liveEnv is one control plane shared by the benchmarks of a run, started by
// the first benchmark that needs it and stopped by TestMain.
var liveEnv = sync.OnceValues(func() (*harness.ControlPlane, error) {
	started.Store(true)
	// The OpenReports CRDs, for the audit benchmark's reports; the
	// ClusterNetworkPolicy and Cilium CRDs, for the scale benchmark's
	// cluster-wide policies.
	crd := func(name string) string { return filepath.Join("..", "test", "crds", name) }
	return harness.Start(harness.Options{CRDPaths: []string{crd(filepath.Join("reports", "openreports")),
		crd("clusternetworkpolicies.policy.networking.k8s.io.yaml"),
		crd("ciliumnetworkpolicies.cilium.io.yaml"), crd("ciliumclusterwidenetworkpolicies.cilium.io.yaml")}})
})

var started atomic.Bool

// stopViews stop the Live views that outlive one benchmark (the scale
// benchmark's, shared by its runs), before the control plane stops.
var stopViews []context.CancelFunc

func TestMain(m *testing.M) {
	// The guard's serve command sets a zap logger; without one,
	// controller-runtime's placeholder keeps a record of every
	// log.FromContext call (one per review) until it gives up after 30s,
	// which would grow the heap the benchmarks measure. On the clean path
	// nothing is logged, so the output can be discarded.
	log.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	code := m.Run()
	for _, stop := range stopViews {
		stop()
	}
	if started.Load() {
		if cp, err := liveEnv(); err == nil {
			if err := cp.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "bench: stopping control plane:", err)
			}
			os.RemoveAll(cp.Dir)
		}
	}
	os.Exit(code)
}

// BenchmarkAPIServiceReviewLive measures one in-process validating review of
// an APIService UPDATE: AdmissionRequest decoding, every APIService rule, and
// the response, reading a Live view whose informer cache is synced from a
// real kube-apiserver. Caches are warm: the Secret holding the serving
// certificate was read once before timing, and the TLS probe result of the
// ExternalName backend is cached. Reports p50 and p99 per review.
func BenchmarkAPIServiceReviewLive(b *testing.B) {
	cp, err := liveEnv()
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	live, err := cluster.StartLive(ctx, cp.Env.Config, cluster.LiveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	v := webhook.NewValidator(webhook.Options{Engine: engine, View: live})

	b.Run("backend=pods-with-mounted-secret", func(b *testing.B) {
		req := kedaLikeBackend(b, ctx, cp.Client)
		measure(b, ctx, v, req)
	})
	b.Run("backend=externalname-probed", func(b *testing.B) {
		req := probedBackend(b, ctx, cp.Client)
		measure(b, ctx, v, req)
	})
}

// measure times each review separately and reports percentiles. The first
// review (cold caches) is done before timing, and its answer must be allowed
// with no warnings: the benchmark measures the clean path.
func measure(b *testing.B, ctx context.Context, v *webhook.Validator, req admission.Request) {
	b.Helper()
	resp := v.Handle(ctx, req)
	if !resp.Allowed || len(resp.Warnings) > 0 {
		b.Fatalf("warm-up review not clean: allowed=%v warnings=%q result=%+v", resp.Allowed, resp.Warnings, resp.Result)
	}
	b.ReportAllocs()
	percentiles(b, func() {
		if resp := v.Handle(ctx, req); !resp.Allowed {
			b.Fatal("review denied during the benchmark")
		}
	})
}

// percentiles runs op b.N times, timing each call separately, and reports
// the median and the 99th percentile in microseconds.
func percentiles(b *testing.B, op func()) {
	b.Helper()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		op()
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	pct := func(p float64) float64 {
		return float64(durations[int(float64(len(durations)-1)*p)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// kedaLikeBackend creates KEDA's shape: a ClusterIP Service 443 -> 6443,
// two pods mounting the serving Secret, a ready EndpointSlice, RBAC for
// the ServiceAccount, and an Available APIService; it returns an UPDATE
// request for that APIService with the correct caBundle.
func kedaLikeBackend(b *testing.B, ctx context.Context, c client.Client) admission.Request {
	ns, svc := fmt.Sprintf("keda-%d", runs.Add(1)), "keda-operator-metrics-apiserver"
	ca, leaf := issue(b, svc+"."+ns+".svc")
	labels := map[string]string{"app": svc}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "keda-operator", Namespace: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kedaorg-certs", Namespace: ns},
			Data: map[string][]byte{"tls.crt": leaf.CertPEM(), "tls.key": leaf.KeyPEM(), "ca.crt": ca.CertPEM()}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: svc, Namespace: ns}, Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(6443)}},
		}},
		endpointSlice(ns, svc),
	}
	for i := range 2 {
		objs = append(objs, kedaPod(ns, fmt.Sprintf("%s-%d", svc, i), labels))
	}
	objs = append(objs, authBindings(ns, "keda-operator")...)
	create(b, ctx, c, objs...)
	return updateRequest(b, ctx, c, apiService("external.metrics.k8s.io", ns, svc, 443, ca.CertPEM()))
}

// probedBackend is an ExternalName Service whose certificate the guard gets
// by a TLS probe of the test adapter on 127.0.0.1 (cached after warm-up).
func probedBackend(b *testing.B, ctx context.Context, c client.Client) admission.Request {
	ns := fmt.Sprintf("monitoring-%d", runs.Add(1))
	a, err := adapter.Start(adapter.Options{Group: "custom.metrics.k8s.io", Version: "v1beta1", Namespace: ns, Service: "prometheus-adapter"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Close)
	nsObj, svc, api := a.Objects(a.CA().CertPEM())
	create(b, ctx, c, nsObj, svc)
	return updateRequest(b, ctx, c, api)
}

func issue(b *testing.B, dnsName string) (ca, leaf *certs.KeyPair) {
	ca, err := certs.NewCA("bench-ca", 2*365*24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	if leaf, err = ca.IssueServing([]string{dnsName}, nil, 365*24*time.Hour); err != nil {
		b.Fatal(err)
	}
	return ca, leaf
}

func kedaPod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: corev1.PodSpec{
		ServiceAccountName: "keda-operator",
		Containers: []corev1.Container{{Name: "adapter", Image: "keda-metrics-apiserver",
			Ports:        []corev1.ContainerPort{{Name: "https", ContainerPort: 6443}},
			VolumeMounts: []corev1.VolumeMount{{Name: "certs", MountPath: "/certs"}}}},
		Volumes: []corev1.Volume{{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "kedaorg-certs"}}}},
	}}
}

func endpointSlice(ns, svc string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-abc", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}},
	}
}

func apiService(group, ns, svc string, port int32, bundle []byte) *apiregv1.APIService {
	return &apiregv1.APIService{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService"},
		ObjectMeta: metav1.ObjectMeta{Name: "v1beta1." + group},
		Spec: apiregv1.APIServiceSpec{Group: group, Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100,
			Service: &apiregv1.ServiceReference{Namespace: ns, Name: svc, Port: &port}, CABundle: bundle},
	}
}

func create(b *testing.B, ctx context.Context, c client.Client, objs ...client.Object) {
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			b.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	// The Live view's informers pick the objects up asynchronously.
	time.Sleep(500 * time.Millisecond)
}

// updateRequest builds the AdmissionRequest of an UPDATE from an Available
// copy of api (old) to api (new), as the API server would send it.
func updateRequest(b *testing.B, _ context.Context, _ client.Client, api *apiregv1.APIService) admission.Request {
	old := api.DeepCopy()
	old.Status.Conditions = []apiregv1.APIServiceCondition{{Type: apiregv1.Available, Status: apiregv1.ConditionTrue}}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "bench",
		Kind:      metav1.GroupVersionKind{Group: apiregv1.GroupName, Version: "v1", Kind: "APIService"},
		Resource:  metav1.GroupVersionResource{Group: apiregv1.GroupName, Version: "v1", Resource: "apiservices"},
		Name:      api.Name,
		Operation: admissionv1.Update,
		Object:    raw(b, api),
		OldObject: raw(b, old),
	}}
}

func raw(b *testing.B, obj runtime.Object) runtime.RawExtension {
	data, err := json.Marshal(obj)
	if err != nil {
		b.Fatal(err)
	}
	return runtime.RawExtension{Raw: data}
}
