package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"apiservice-guard.io/apiservice-guard/test/requestlog"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// testEnv is one kube-apiserver + etcd shared by the live tests, started on
// first use and stopped by TestMain.
var testEnv struct {
	once sync.Once
	env  *envtest.Environment
	cfg  *rest.Config
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testEnv.env != nil {
		if err := testEnv.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// envConfig returns an admin rest.Config for the shared test API server.
func envConfig(t *testing.T) *rest.Config {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("live view tests need kube-apiserver and etcd: run them with `make test`, " +
			"or set KUBEBUILDER_ASSETS=$(hack/tools.sh) (it builds the pinned binaries and prints their directory)")
	}
	testEnv.once.Do(func() {
		testEnv.env = &envtest.Environment{Scheme: NewScheme()}
		testEnv.cfg, testEnv.err = testEnv.env.Start()
	})
	if testEnv.err != nil {
		t.Fatalf("starting envtest (KUBEBUILDER_ASSETS=%s): %v", os.Getenv("KUBEBUILDER_ASSETS"), testEnv.err)
	}
	return rest.CopyConfig(testEnv.cfg)
}

// adminClient returns an uncached client with the guard's scheme.
func adminClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func create(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(t.Context(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// runID keeps object names unique when the shared API server outlives one
// run of a test (go test -count=N).
var runID atomic.Int32

// unique returns base with a per-call suffix.
func unique(base string) string { return fmt.Sprintf("%s-%d", base, runID.Add(1)) }

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// kedaObjects is a KEDA metrics apiserver backend in namespace ns.
func kedaObjects(ns string) []client.Object {
	podLabels := map[string]string{"app": "keda-operator-metrics-apiserver"}
	om := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	return []client.Object{
		namespace(ns),
		&corev1.Service{ObjectMeta: om("keda-operator-metrics-apiserver"), Spec: corev1.ServiceSpec{
			Selector: podLabels,
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(6443)}},
		}},
		endpointSlice(ns, "keda-operator-metrics-apiserver-x1", "keda-operator-metrics-apiserver", "10.0.0.7"),
		endpointSlice(ns, "other-x1", "other", "10.0.0.8"),
		kedaPod(ns, podLabels),
		&corev1.ServiceAccount{ObjectMeta: om("keda-metrics-server")},
		&rbacv1.RoleBinding{ObjectMeta: om("reader"), RoleRef: rbacv1.RoleRef{
			APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view",
		}},
		&networkingv1.NetworkPolicy{ObjectMeta: om("default-deny"), Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		}},
	}
}

func endpointSlice(ns, name, svc, ip string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}},
	}
}

// kedaPod is a pod carrying everything TransformPod keeps and drops.
func kedaPod(ns string, podLabels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "keda-operator-metrics-apiserver-0", Namespace: ns, Labels: podLabels,
			Annotations: map[string]string{"big": strings.Repeat("x", 1024)},
		},
		Spec: corev1.PodSpec{
			NodeName:           "node-a",
			ServiceAccountName: "keda-metrics-server",
			Containers: []corev1.Container{{
				Name: "server", Image: "ghcr.io/kedacore/keda-metrics-apiserver:2.17.0",
				Args:  []string{"--secure-port=6443"},
				Env:   []corev1.EnvVar{{Name: "WATCH_NAMESPACE", Value: "secret-ish"}},
				Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 6443, Protocol: corev1.ProtocolTCP}},
			}},
			Volumes: []corev1.Volume{
				{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "kedaorg-certs"}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
				}}},
				{Name: "projected", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "serving"}}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
				}}}},
			},
		},
	}
}

// startLive starts a Live view on cfg for the test's lifetime.
func startLive(t *testing.T, cfg *rest.Config, opts LiveOptions) *Live {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	l, err := StartLive(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("StartLive: %v", err)
	}
	return l
}

func TestLiveReads(t *testing.T) {
	cfg := envConfig(t)
	admin := adminClient(t, cfg)
	ns := unique("live-reads")
	objs := kedaObjects(ns)
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: unique("live-reads-auth-delegator")}, RoleRef: rbacv1.RoleRef{
		APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator",
	}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: unique("node"), Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}
	group := unique("live-reads") + ".example.com"
	api := &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1beta1." + group}, Spec: apiregv1.APIServiceSpec{
		Group: group, Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100,
		Service: &apiregv1.ServiceReference{Namespace: ns, Name: "keda-operator-metrics-apiserver", Port: ptr.To[int32](443)},
	}}
	create(t, admin, append(objs, crb, node, api)...)
	pod := objs[4].(*corev1.Pod)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}},
		HostIP: "192.168.0.10", Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, Reason: "Started", Message: "ready"}}}
	if err := admin.Status().Update(t.Context(), pod); err != nil {
		t.Fatal(err)
	}

	l := startLive(t, cfg, LiveOptions{})
	ctx := t.Context()
	t.Run("gets", func(t *testing.T) {
		if _, err := l.Namespace(ctx, ns); err != nil {
			t.Errorf("Namespace: %v", err)
		}
		if svc, err := l.Service(ctx, ns, "keda-operator-metrics-apiserver"); err != nil || svc.Spec.Ports[0].TargetPort.IntVal != 6443 {
			t.Errorf("Service = %v, %v", svc, err)
		}
		if _, err := l.Service(ctx, ns, "missing"); !apierrors.IsNotFound(err) {
			t.Errorf("missing Service: err = %v, want NotFound", err)
		}
		if got, err := l.APIService(ctx, api.Name); err != nil || got.Spec.Service.Name != "keda-operator-metrics-apiserver" {
			t.Errorf("APIService = %v, %v", got, err)
		}
	})
	t.Run("lists", func(t *testing.T) {
		eps, err := l.EndpointSlices(ctx, ns, "keda-operator-metrics-apiserver")
		if err != nil || len(eps) != 1 || eps[0].Name != "keda-operator-metrics-apiserver-x1" {
			t.Errorf("EndpointSlices = %v, %v; want only the Service's slice", names(eps), err)
		}
		if kube, err := l.EndpointSlices(ctx, "default", "kubernetes"); err != nil || len(kube) == 0 {
			t.Errorf("EndpointSlices of default/kubernetes = %v, %v; want the API server's", names(kube), err)
		}
		sel := labels.SelectorFromSet(labels.Set{"app": "keda-operator-metrics-apiserver"})
		ours := ns + "/keda-operator-metrics-apiserver-0"
		if pods, err := l.Pods(ctx, ns, sel); err != nil || !slices.Equal(names(pods), []string{ours}) {
			t.Errorf("Pods(%q) = %v, %v; want [%s]", ns, names(pods), err, ours)
		}
		// Other tests' namespaces hold the same pod.
		if pods, err := l.Pods(ctx, "", sel); err != nil || !slices.Contains(names(pods), ours) {
			t.Errorf("Pods(all namespaces) = %v, %v; want %s among them", names(pods), err, ours)
		}
		if pods, err := l.Pods(ctx, ns, labels.SelectorFromSet(labels.Set{"app": "other"})); err != nil || len(pods) != 0 {
			t.Errorf("Pods(non-matching selector) = %v, %v", names(pods), err)
		}
		nps, err1 := l.NetworkPolicies(ctx, ns)
		rbs, err2 := l.RoleBindings(ctx, ns, "")
		crbs, err3 := l.ClusterRoleBindings(ctx, "")
		nodes, err4 := l.Nodes(ctx)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{
			"networkPolicy": len(nps) == 1, "roleBinding": len(rbs) == 1,
			"clusterRoleBinding": containsName(crbs, crb.Name), "node": containsName(nodes, node.Name),
		}
		want := map[string]bool{"networkPolicy": true, "roleBinding": true, "clusterRoleBinding": true, "node": true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("found (-want +got):\n%s", diff)
		}
		// By role, through the roleRef index.
		byRole, err := l.ClusterRoleBindings(ctx, crb.RoleRef.Name)
		if err != nil || !containsName(byRole, crb.Name) {
			t.Errorf("ClusterRoleBindings(%q) = %d bindings, %v; want %s among them", crb.RoleRef.Name, len(byRole), err, crb.Name)
		}
		if other, _ := l.ClusterRoleBindings(ctx, "no-such-role"); len(other) != 0 {
			t.Errorf("ClusterRoleBindings(no-such-role) = %d bindings, want 0", len(other))
		}
		if rbRole, err := l.RoleBindings(ctx, ns, rbs[0].RoleRef.Name); err != nil || len(rbRole) != 1 {
			t.Errorf("RoleBindings(%q) = %d, %v; want 1", rbs[0].RoleRef.Name, len(rbRole), err)
		}
		if other, _ := l.RoleBindings(ctx, ns, "no-such-role"); len(other) != 0 {
			t.Errorf("RoleBindings(no-such-role) = %d bindings, want 0", len(other))
		}
	})
	t.Run("pod transform", func(t *testing.T) {
		pods, err := l.Pods(ctx, ns, labels.Everything())
		if err != nil || len(pods) != 1 {
			t.Fatalf("Pods = %v, %v", names(pods), err)
		}
		want, _ := TransformPod(pod.DeepCopy())
		got := pods[0]
		if diff := cmp.Diff(want.(*corev1.Pod).Spec, got.Spec); diff != "" {
			t.Errorf("cached pod spec (-want +got):\n%s", diff)
		}
		c := got.Spec.Containers[0]
		if c.Ports[0].ContainerPort != 6443 || c.Env != nil || c.Args != nil || c.Image != "" {
			t.Errorf("container = %+v; want ports kept, env/args/image dropped", c)
		}
		ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if got.Status.PodIP != "10.0.0.7" || !cmp.Equal(got.Status.Conditions, ready) || got.Annotations != nil || got.ManagedFields != nil {
			t.Errorf("pod status/meta = %+v / %+v; want podIP and the Ready status kept, other conditions, annotations, managedFields dropped", got.Status, got.ObjectMeta)
		}
	})
}

func TestLiveSecretsAreReadByNameOnly(t *testing.T) {
	cfg := envConfig(t)
	admin := adminClient(t, cfg)
	ns := unique("live-secrets")
	create(t, admin, namespace(ns), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "kedaorg-certs", Namespace: ns},
		Data:       map[string][]byte{"ca.crt": []byte("not really a certificate")},
	})
	var reqs requestlog.Log
	l := startLive(t, reqs.Wrap(cfg), LiveOptions{NotFoundTTL: time.Hour})
	ctx := t.Context()
	for range 3 {
		s, err := l.Secret(ctx, ns, "kedaorg-certs")
		if err != nil || string(s.Data["ca.crt"]) != "not really a certificate" {
			t.Fatalf("Secret = %v, %v", s, err)
		}
		if _, err := l.Secret(ctx, ns, "missing"); !apierrors.IsNotFound(err) {
			t.Fatalf("missing Secret: err = %v, want NotFound", err)
		}
	}
	// Reading a Secret through the cache must not start an informer.
	if err := l.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kedaorg-certs"}, &corev1.Secret{}); !errors.As(err, new(*cache.ErrResourceNotCached)) {
		t.Errorf("cache Get of a Secret: err = %v, want ErrResourceNotCached", err)
	}
	want := []string{
		"GET /api/v1/namespaces/" + ns + "/secrets/kedaorg-certs?",
		"GET /api/v1/namespaces/" + ns + "/secrets/missing?",
	}
	if diff := cmp.Diff(want, reqs.Matching("/secrets")); diff != "" {
		t.Errorf("Secret requests (-want +got): one GET by name each, no list or watch:\n%s", diff)
	}
	if len(reqs.Matching("/pods")) == 0 {
		t.Error("no pod list/watch recorded: the request log does not see the cache's requests")
	}
}

func TestLiveCertificate(t *testing.T) {
	cfg := envConfig(t)
	admin := adminClient(t, cfg)
	ns := unique("live-certificates")
	create(t, admin, namespace(ns))
	l := startLive(t, cfg, LiveOptions{NotFoundTTL: time.Nanosecond})
	ctx := t.Context()

	_, err := l.Certificate(ctx, ns, "kedaorg-certs")
	if !errors.Is(err, ErrNotAvailable) || apierrors.IsNotFound(err) {
		t.Fatalf("without the CRD: err = %v, want ErrNotAvailable and not NotFound", err)
	}

	crds := envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "crds")}}
	if _, err := envtest.InstallCRDs(cfg, crds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(cfg, crds); err != nil {
			t.Errorf("uninstalling CRDs: %v", err)
		}
	})
	// The same view finds the kind once NotFoundTTL has passed.
	if _, err := l.Certificate(ctx, ns, "kedaorg-certs"); !apierrors.IsNotFound(err) || errors.Is(err, ErrNotAvailable) {
		t.Fatalf("with the CRD, missing Certificate: err = %v, want NotFound", err)
	}
	create(t, adminClient(t, cfg), &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Name: "kedaorg-certs", Namespace: ns},
		Spec: cmapi.CertificateSpec{SecretName: "kedaorg-certs", DNSNames: []string{"keda-operator-metrics-apiserver.keda.svc"},
			IssuerRef: cmmeta.IssuerReference{Name: "ca", Kind: "Issuer"}},
	})
	got, err := l.Certificate(ctx, ns, "kedaorg-certs")
	if err != nil || got.Spec.SecretName != "kedaorg-certs" {
		t.Errorf("Certificate = %v, %v", got, err)
	}
}

// TestLiveWithManager wires Live the way cmd/ does: the manager's cache built
// from CacheOptions, its APIReader for by-name reads.
func TestLiveWithManager(t *testing.T) {
	cfg := envConfig(t)
	admin := adminClient(t, cfg)
	ns := unique("live-manager")
	create(t, admin, kedaObjects(ns)...)
	create(t, admin, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: ns}})
	scheme := NewScheme()
	mgr, err := manager.New(cfg, manager.Options{
		Scheme:                 scheme,
		Cache:                  CacheOptions(scheme),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	l, err := NewLive(ctx, mgr.GetCache(), mgr.GetAPIReader(), LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	syncCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	if !l.WaitForCacheSync(syncCtx) {
		t.Fatal("cache did not sync")
	}
	if _, err := l.Service(ctx, ns, "keda-operator-metrics-apiserver"); err != nil {
		t.Errorf("Service: %v", err)
	}
	if _, err := l.Secret(ctx, ns, "s"); err != nil {
		t.Errorf("Secret: %v", err)
	}
}

func TestMissingAPI(t *testing.T) {
	gr := schema.GroupResource{Group: "cert-manager.io", Resource: "certificates"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "no kind match", err: &meta.NoKindMatchError{GroupKind: cmapi.SchemeGroupVersion.WithKind("Certificate").GroupKind()}, want: true},
		{name: "no resource match, wrapped", err: fmt.Errorf("x: %w", &meta.NoResourceMatchError{PartialResource: gr.WithVersion("v1")}), want: true},
		{name: "object not found", err: apierrors.NewNotFound(gr, "kedaorg-certs"), want: false},
		{name: "path not found", err: &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound}}, want: true},
		{name: "forbidden", err: apierrors.NewForbidden(gr, "x", errors.New("no")), want: false},
		{name: "nil", err: nil, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := missingAPI(tt.err); got != tt.want {
				t.Errorf("missingAPI(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestTransformPod(t *testing.T) {
	in := kedaPod("keda", map[string]string{"app": "keda"})
	in.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	in.Spec.HostNetwork = true
	in.Spec.InitContainers = []corev1.Container{{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Command: []string{"run"}, Ports: []corev1.ContainerPort{{ContainerPort: 9443}}}}
	in.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", HostIP: "192.168.0.10",
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, Message: "long text", LastTransitionTime: metav1.Now()},
		},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "server", Ready: true, RestartCount: 3, Image: "keda", ImageID: "sha256:..."}}}
	out, err := TransformPod(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Namespace: "keda", Labels: map[string]string{"app": "keda"}},
		Spec: corev1.PodSpec{
			NodeName: "node-a", HostNetwork: true, ServiceAccountName: "keda-metrics-server",
			InitContainers: []corev1.Container{{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				Ports: []corev1.ContainerPort{{ContainerPort: 9443}}}},
			Containers: []corev1.Container{{Name: "server", Ports: in.Spec.Containers[0].Ports}},
			Volumes: []corev1.Volume{
				in.Spec.Volumes[0],
				{Name: "projected", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: in.Spec.Volumes[2].Projected.Sources[:1],
				}}},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", HostIP: "192.168.0.10",
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "server", Ready: true, RestartCount: 3}}},
	}
	if diff := cmp.Diff(any(want), out); diff != "" {
		t.Errorf("TransformPod (-want +got):\n%s", diff)
	}
	again, _ := TransformPod(out)
	if diff := cmp.Diff(out, again); diff != "" {
		t.Errorf("TransformPod is not idempotent (-once +twice):\n%s", diff)
	}
	if other, _ := TransformPod("not a pod"); other != "not a pod" {
		t.Errorf("TransformPod changed a non-pod: %v", other)
	}
}

func TestTransformNode(t *testing.T) {
	in := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"cloud.google.com/gke-nodepool": "p"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Spec: corev1.NodeSpec{ProviderID: "gce://project/zone/n"},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.128.0.2"}},
			Images:    []corev1.ContainerImage{{Names: []string{"big"}}},
		},
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: in.Labels},
		Spec:       in.Spec,
		Status:     corev1.NodeStatus{Addresses: in.Status.Addresses},
	}
	out, err := TransformNode(in.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(any(want), out); diff != "" {
		t.Errorf("TransformNode (-want +got):\n%s", diff)
	}
}

func names[T client.Object](objs []T) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetNamespace()+"/"+o.GetName())
	}
	return out
}

func containsName[T client.Object](objs []T, name string) bool {
	for _, o := range objs {
		if o.GetName() == name {
			return true
		}
	}
	return false
}

func TestStartLiveUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	cfg := &rest.Config{Host: "https://" + addr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := StartLive(ctx, cfg, LiveOptions{SyncTimeout: 500 * time.Millisecond}); err == nil {
		t.Fatal("StartLive against a closed port succeeded")
	}
}
