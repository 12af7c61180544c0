package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func loadFixtures(t *testing.T) *Static {
	t.Helper()
	s, err := LoadStatic(filepath.Join("testdata", "static"))
	if err != nil {
		t.Fatalf("LoadStatic: %v", err)
	}
	return s
}

func TestStaticGetters(t *testing.T) {
	ctx := t.Context()
	s := loadFixtures(t)
	if svc, err := s.Service(ctx, "keda", "keda-operator-metrics-apiserver"); err != nil || svc.Spec.Ports[0].TargetPort.IntVal != 6443 {
		t.Errorf("Service = %v, %v; want targetPort 6443", svc, err)
	}
	if _, err := s.Service(ctx, "keda", "nope"); !apierrors.IsNotFound(err) {
		t.Errorf("missing Service: err = %v, want NotFound", err)
	}
	if api, err := s.APIService(ctx, "v1beta1.external.metrics.k8s.io"); err != nil || api.Spec.Service.Name != "keda-operator-metrics-apiserver" {
		t.Errorf("APIService = %v, %v", api, err)
	}
	// No View method reads ServiceAccounts; the generic getter shows the
	// List's items were loaded.
	if _, err := get[*corev1.ServiceAccount](s, corev1.Resource("serviceaccounts"), "ServiceAccount", "keda", "keda-metrics-server"); err != nil {
		t.Errorf("ServiceAccount from List: %v", err)
	}
	if _, err := s.Secret(ctx, "keda", "kedaorg-certs"); !apierrors.IsNotFound(err) {
		t.Errorf("missing Secret: err = %v, want NotFound", err)
	}
	if _, err := s.Certificate(ctx, "keda", "kedaorg-certs"); !apierrors.IsNotFound(err) {
		t.Errorf("missing Certificate: err = %v, want NotFound", err)
	}
	if _, err := s.ServingCertificate(ctx, "10.0.0.1:6443", "x.keda.svc"); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("ServingCertificate: err = %v, want ErrNotAvailable", err)
	}
}

func TestStaticNamespace(t *testing.T) {
	ctx := t.Context()
	s := loadFixtures(t)
	tests := []struct {
		name string
		ns   string
		want bool
	}{
		{name: "declared", ns: "keda", want: true},
		{name: "implied by an object in it", ns: "kube-system", want: true},
		{name: "unknown", ns: "monitoring", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := s.Namespace(ctx, tt.ns)
			if got := err == nil; got != tt.want {
				t.Fatalf("Namespace(%q) err = %v, want found=%v", tt.ns, err, tt.want)
			}
			if err == nil && ns.Name != tt.ns {
				t.Errorf("name = %q, want %q", ns.Name, tt.ns)
			}
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("err = %v, want NotFound", err)
			}
		})
	}
}

func TestStaticLists(t *testing.T) {
	ctx := t.Context()
	s := loadFixtures(t)
	nps, _ := s.NetworkPolicies(ctx, "keda")
	rbs, _ := s.RoleBindings(ctx, "kube-system", "")
	crbs, _ := s.ClusterRoleBindings(ctx, "")
	nodes, _ := s.Nodes(ctx)
	otherNPs, _ := s.NetworkPolicies(ctx, "default")
	rbsByRole, _ := s.RoleBindings(ctx, "kube-system", rbs[0].RoleRef.Name)
	rbsOther, _ := s.RoleBindings(ctx, "kube-system", "no-such-role")
	crbsByRole, _ := s.ClusterRoleBindings(ctx, crbs[0].RoleRef.Name)
	crbsOther, _ := s.ClusterRoleBindings(ctx, "no-such-role")
	got := map[string]int{
		"networkPolicies/keda": len(nps), "networkPolicies/default": len(otherNPs),
		"roleBindings/kube-system": len(rbs), "clusterRoleBindings": len(crbs), "nodes": len(nodes),
		"roleBindings/byRole": len(rbsByRole), "roleBindings/otherRole": len(rbsOther),
		"clusterRoleBindings/byRole": len(crbsByRole), "clusterRoleBindings/otherRole": len(crbsOther),
	}
	want := map[string]int{
		"networkPolicies/keda": 1, "networkPolicies/default": 0,
		"roleBindings/kube-system": 1, "clusterRoleBindings": 1, "nodes": 0,
		"roleBindings/byRole": 1, "roleBindings/otherRole": 0,
		"clusterRoleBindings/byRole": 1, "clusterRoleBindings/otherRole": 0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list sizes (-want +got):\n%s", diff)
	}
}

func TestStaticPodsFromWorkloads(t *testing.T) {
	ctx := t.Context()
	s := loadFixtures(t)
	tests := []struct {
		name string
		ns   string
		sel  labels.Selector
		want []string
	}{
		{name: "deployment template by selector", ns: "keda", sel: labels.SelectorFromSet(labels.Set{"app": "keda-operator-metrics-apiserver"}), want: []string{"keda/keda-operator-metrics-apiserver"}},
		{name: "every namespace", ns: "", sel: labels.Everything(), want: []string{"keda/keda-operator-metrics-apiserver"}},
		{name: "other namespace", ns: "default", sel: labels.Everything()},
		{name: "selector does not match", ns: "keda", sel: labels.SelectorFromSet(labels.Set{"app": "other"})},
		{name: "nil selector matches every pod", ns: "keda", sel: nil, want: []string{"keda/keda-operator-metrics-apiserver"}},
		{name: "nil selector in every namespace", ns: "", sel: nil, want: []string{"keda/keda-operator-metrics-apiserver"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods, err := s.Pods(ctx, tt.ns, tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pods {
				got = append(got, p.Namespace+"/"+p.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("pods (-want +got):\n%s", diff)
			}
		})
	}
	pods, _ := s.Pods(ctx, "keda", labels.Everything())
	if len(pods) != 1 || pods[0].Spec.Containers[0].Ports[0].ContainerPort != 6443 || pods[0].Spec.ServiceAccountName != "keda-metrics-server" {
		t.Errorf("derived pod spec not kept from the template: %+v", pods)
	}
}

func TestStaticPodsFromTemplates(t *testing.T) {
	s, err := LoadStatic(filepath.Join("testdata", "workloads"))
	if err != nil {
		t.Fatalf("LoadStatic: %v", err)
	}
	tests := []struct {
		workload string
		want     string // namespace/name serviceAccount
	}{
		{workload: "deployment", want: "work/deploy deployment-sa"},
		{workload: "statefulset", want: "work/sts statefulset-sa"},
		{workload: "daemonset", want: "work/ds daemonset-sa"},
		{workload: "replicaset", want: "work/rs replicaset-sa"},
		{workload: "job", want: "work/job job-sa"},
		{workload: "cronjob", want: "work/cron cronjob-sa"},
		{workload: "pod", want: "work/pod pod-sa"},
	}
	for _, tt := range tests {
		t.Run(tt.workload, func(t *testing.T) {
			pods, err := s.Pods(t.Context(), "work", labels.SelectorFromSet(labels.Set{"workload": tt.workload}))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pods {
				got = append(got, p.Namespace+"/"+p.Name+" "+p.Spec.ServiceAccountName)
			}
			if diff := cmp.Diff([]string{tt.want}, got); diff != "" {
				t.Errorf("pods (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStaticGroupKinds loads kinds named like built-in ones in other groups
// (Knative Service, Calico NetworkPolicy, ...): the view answers only with
// the built-in ones.
func TestStaticGroupKinds(t *testing.T) {
	s, err := LoadStatic(filepath.Join("testdata", "groups"))
	if err != nil {
		t.Fatalf("LoadStatic: %v", err)
	}
	tests := []struct {
		name string
		ask  func(ctx context.Context) (string, error)
		want string
	}{{
		name: "core Service beside a Knative Service",
		ask: func(ctx context.Context) (string, error) {
			svc, err := s.Service(ctx, "shop", "web")
			if err != nil {
				return "", err
			}
			return fmt.Sprint(svc.Spec.Ports[0].TargetPort.IntValue()), nil
		},
		want: "8080",
	}, {
		name: "only networking.k8s.io NetworkPolicies",
		ask: func(ctx context.Context) (string, error) {
			nps, err := s.NetworkPolicies(ctx, "shop")
			return joinNames(nps), err
		},
		want: "default-deny",
	}, {
		name: "a CRD Namespace declares no namespace",
		ask: func(ctx context.Context) (string, error) {
			ns, err := s.Namespace(ctx, "tenant-a")
			if apierrors.IsNotFound(err) {
				return "not found", nil
			}
			return ns.Name, err
		},
		want: "not found",
	}, {
		name: "an EndpointSlice of another group says nothing about readiness",
		ask: func(ctx context.Context) (string, error) {
			es, err := s.EndpointSlices(ctx, "shop", "web")
			if errors.Is(err, ErrNotAvailable) {
				return "not available", nil
			}
			return joinNames(es), err
		},
		want: "not available",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ask(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	var kinds []string
	for _, l := range s.Objects() {
		kinds = append(kinds, l.GVK.GroupKind().String())
	}
	want := []string{"Service", "Service.serving.knative.dev", "NetworkPolicy.networking.k8s.io",
		"NetworkPolicy.crd.projectcalico.org", "Namespace.tenancy.example.com", "EndpointSlice.mesh.example.com"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("every object is still loaded (-want +got):\n%s", diff)
	}
}

// joinNames joins the names of objs with commas.
func joinNames[T metav1.Object](objs []T) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	return strings.Join(out, ",")
}

func TestStaticEndpointSlices(t *testing.T) {
	ctx := t.Context()
	s := loadFixtures(t)
	if _, err := s.EndpointSlices(ctx, "keda", "keda-operator-metrics-apiserver"); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("without EndpointSlices in the files: err = %v, want ErrNotAvailable", err)
	}
	for _, svc := range []string{"keda-operator-metrics-apiserver", "other"} {
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{
			Name: svc + "-abcde", Namespace: "keda", Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		}}
		s.Add(Loaded{Object: es, GVK: discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"), Source: "test"})
	}
	got, err := s.EndpointSlices(ctx, "keda", "keda-operator-metrics-apiserver")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "keda-operator-metrics-apiserver-abcde" {
		t.Errorf("EndpointSlices = %v, want only the Service's slice", got)
	}
}

func TestStaticAddPod(t *testing.T) {
	s, err := LoadStatic()
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"a": "b"}}}
	s.Add(Loaded{Object: pod, GVK: corev1.SchemeGroupVersion.WithKind("Pod"), Source: "test"})
	pods, _ := s.Pods(t.Context(), "ns", labels.SelectorFromSet(labels.Set{"a": "b"}))
	if len(pods) != 1 || pods[0] != pod {
		t.Errorf("Pods = %v, want the added pod itself", pods)
	}
	if _, err := s.Namespace(t.Context(), "ns"); err != nil {
		t.Errorf("namespace of an added object: %v", err)
	}
}

func TestStaticAddReplaces(t *testing.T) {
	s, err := LoadStatic()
	if err != nil {
		t.Fatal(err)
	}
	svc := func(port int32) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: port}}},
		}
	}
	gvk := corev1.SchemeGroupVersion.WithKind("Service")
	s.Add(Loaded{Object: svc(80), GVK: gvk, Source: "first"})
	s.Add(Loaded{Object: svc(81), GVK: gvk, Source: "second"})
	var got []string
	for _, l := range s.Objects() {
		got = append(got, l.Source)
	}
	if diff := cmp.Diff([]string{"second"}, got); diff != "" {
		t.Errorf("Objects (-want +got):\n%s", diff)
	}
	if svc, err := s.Service(t.Context(), "shop", "web"); err != nil || svc.Spec.Ports[0].Port != 81 {
		t.Errorf("Service = %v, %v; want port 81", svc, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
