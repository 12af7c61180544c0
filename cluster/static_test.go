package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func loadFixtures(t *testing.T) *Static {
	t.Helper()
	s, err := LoadStatic(filepath.Join("testdata", "static"))
	if err != nil {
		t.Fatalf("LoadStatic: %v", err)
	}
	return s
}

func TestLoadStaticObjects(t *testing.T) {
	s := loadFixtures(t)
	keda := filepath.Join("testdata", "static", "keda.yaml")
	list := filepath.Join("testdata", "static", "list.json")
	rbac := filepath.Join("testdata", "static", "nested", "deeper", "rbac.yml")
	// Directory order is lexical. A comment-only document is skipped but
	// counted; an empty one between two "---" is not a document at all (the
	// YAML reader drops it, as kubectl does).
	want := []string{
		"Namespace " + keda + "#2",
		"Service " + keda + "#4",
		"Deployment " + keda + "#5",
		"APIService " + keda + "#6",
		"ServiceMonitor " + keda + "#7",
		"NetworkPolicy " + list + "#1[0]",
		"ServiceAccount " + list + "#1[1]",
		"ClusterRoleBinding " + rbac + "#1",
		"RoleBinding " + rbac + "#2",
	}
	var got []string
	for _, l := range s.Objects() {
		got = append(got, l.GVK.Kind+" "+l.Source)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

func TestLoadStaticUnknownKindIsUnstructured(t *testing.T) {
	s := loadFixtures(t)
	for _, l := range s.Objects() {
		if l.GVK.Kind != "ServiceMonitor" {
			continue
		}
		u, ok := l.Object.(*unstructured.Unstructured)
		if !ok {
			t.Fatalf("ServiceMonitor decoded as %T, want *unstructured.Unstructured", l.Object)
		}
		want := schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}
		if diff := cmp.Diff(want, u.GroupVersionKind()); diff != "" {
			t.Errorf("GVK (-want +got):\n%s", diff)
		}
		if u.GetName() != "keda-metrics" || u.GetNamespace() != "keda" {
			t.Errorf("got %s/%s, want keda/keda-metrics", u.GetNamespace(), u.GetName())
		}
		return
	}
	t.Fatal("ServiceMonitor not loaded")
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
	if _, err := s.ServiceAccount(ctx, "keda", "keda-metrics-server"); err != nil {
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
	rbs, _ := s.RoleBindings(ctx, "kube-system")
	crbs, _ := s.ClusterRoleBindings(ctx)
	nodes, _ := s.Nodes(ctx)
	otherNPs, _ := s.NetworkPolicies(ctx, "default")
	got := map[string]int{
		"networkPolicies/keda": len(nps), "networkPolicies/default": len(otherNPs),
		"roleBindings/kube-system": len(rbs), "clusterRoleBindings": len(crbs), "nodes": len(nodes),
	}
	want := map[string]int{
		"networkPolicies/keda": 1, "networkPolicies/default": 0,
		"roleBindings/kube-system": 1, "clusterRoleBindings": 1, "nodes": 0,
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

func TestLoadStaticErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		want []string // substrings of the error
	}{
		{name: "invalid YAML names file and document", path: "bad-yaml.yaml", want: []string{"bad-yaml.yaml#2", "invalid YAML"}},
		{name: "missing kind", path: "no-kind.yaml", want: []string{"no-kind.yaml#1", "apiVersion and kind are required"}},
		{name: "missing apiVersion", path: "no-apiversion.yaml", want: []string{"no-apiversion.yaml#1", "apiVersion and kind are required"}},
		{name: "wrong field type", path: "bad-field.yaml", want: []string{"bad-field.yaml#1", "decoding Service"}},
		{name: "missing file", path: "does-not-exist.yaml", want: []string{"does-not-exist.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadStatic(filepath.Join("testdata", "invalid", tt.path))
			if err == nil {
				t.Fatal("LoadStatic succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadStaticEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	writeFile(t, path, "# nothing but comments\n---\n\n---\n")
	s, err := LoadStatic(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Objects()); n != 0 {
		t.Errorf("loaded %d objects, want 0", n)
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

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
