package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// maxDocumentBytes bounds one YAML document, like the API server's request
// size limit (3 MiB per object).
const maxDocumentBytes = 3 << 20

// Loaded is one object read from a file.
type Loaded struct {
	// Object is the typed object, or *unstructured.Unstructured for kinds
	// the guard has no Go type for.
	Object runtime.Object
	// GVK is the object's group/version/kind as written.
	GVK schema.GroupVersionKind
	// Source is "file#document" (1-based), for messages.
	Source string
}

// Static is a View built from manifests. It answers only from what the files
// hold: runtime state the files cannot know (EndpointSlices when none are
// given, TLS probes) is ErrNotAvailable rather than "not found".
type Static struct {
	objects    []Loaded
	byKey      map[string]runtime.Object // kind|namespace|name
	namespaces map[string]bool
	pods       []*corev1.Pod
	byKind     map[string][]runtime.Object
}

var _ View = (*Static)(nil)

// LoadStatic reads YAML or JSON manifests from files and directories
// (recursively, *.yaml, *.yml, *.json), multi-document, with v1 List kinds
// expanded. Any unreadable file or undecodable document is an error naming it.
func LoadStatic(paths ...string) (*Static, error) {
	s := newStatic()
	dec := serializer.NewCodecFactory(NewScheme()).UniversalDeserializer()
	for _, p := range paths {
		files, err := manifestFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if err := s.loadFile(dec, f); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

func newStatic() *Static {
	return &Static{byKey: map[string]runtime.Object{}, namespaces: map[string]bool{}, byKind: map[string][]runtime.Object{}}
}

// manifestFiles expands a path into the manifest files under it, sorted.
func manifestFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	return files, err
}

// loadFile decodes every document of one file.
func (s *Static) loadFile(dec runtime.Decoder, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReaderSize(f, 64<<10))
	for doc := 1; ; doc++ {
		data, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		src := fmt.Sprintf("%s#%d", path, doc)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if len(data) > maxDocumentBytes {
			return fmt.Errorf("%s: document is %d bytes, over the %d byte limit", src, len(data), maxDocumentBytes)
		}
		if err := s.addDocument(dec, data, src); err != nil {
			return err
		}
	}
}

// addDocument decodes one document; empty documents and comments are skipped.
func (s *Static) addDocument(dec runtime.Decoder, data []byte, src string) error {
	if isBlank(data) {
		return nil
	}
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return fmt.Errorf("%s: invalid YAML: %w", src, err)
	}
	var tm metav1.TypeMeta
	if err := utilyaml.Unmarshal(js, &tm); err != nil || tm.Kind == "" || tm.APIVersion == "" {
		return fmt.Errorf("%s: not a Kubernetes object: apiVersion and kind are required", src)
	}
	gvk := tm.GroupVersionKind()
	obj, _, err := dec.Decode(js, nil, nil)
	if runtime.IsNotRegisteredError(err) {
		u, uerr := decodeUnstructured(js)
		if uerr != nil {
			return fmt.Errorf("%s: %w", src, uerr)
		}
		obj, err = u, nil
	}
	if err != nil {
		return fmt.Errorf("%s: decoding %s: %w", src, gvk.Kind, err)
	}
	if list, ok := obj.(*corev1.List); ok {
		for i, item := range list.Items {
			if err := s.addDocument(dec, item.Raw, fmt.Sprintf("%s[%d]", src, i)); err != nil {
				return err
			}
		}
		return nil
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	s.Add(Loaded{Object: obj, GVK: gvk, Source: src})
	return nil
}

func isBlank(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// Add puts one object into the view, deriving pods from workload templates.
func (s *Static) Add(l Loaded) {
	s.objects = append(s.objects, l)
	m, err := metaOf(l.Object)
	if err != nil {
		return
	}
	if m.GetNamespace() != "" {
		s.namespaces[m.GetNamespace()] = true
	}
	if l.GVK.Kind == "Namespace" {
		s.namespaces[m.GetName()] = true
	}
	s.byKey[key(l.GVK.Kind, m.GetNamespace(), m.GetName())] = l.Object
	s.byKind[l.GVK.Kind] = append(s.byKind[l.GVK.Kind], l.Object)
	if pod := podFrom(l.Object); pod != nil {
		s.pods = append(s.pods, pod)
	}
}

// Objects returns everything loaded, in file order.
func (s *Static) Objects() []Loaded { return s.objects }

func key(kind, ns, name string) string { return kind + "|" + ns + "|" + name }

// podFrom returns the pod an object runs: the Pod itself, or a pod made from a
// workload's template (named after the workload, in its namespace).
func podFrom(obj runtime.Object) *corev1.Pod {
	var meta metav1.ObjectMeta
	var tmpl corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *corev1.Pod:
		return o
	case *appsv1.Deployment:
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *appsv1.StatefulSet:
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *appsv1.DaemonSet:
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *appsv1.ReplicaSet:
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *batchv1.Job:
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	default:
		return nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec:       tmpl.Spec,
	}
}

func get[T runtime.Object](s *Static, gr schema.GroupResource, kind, ns, name string) (T, error) {
	var zero T
	if obj, ok := s.byKey[key(kind, ns, name)].(T); ok {
		return obj, nil
	}
	return zero, apierrors.NewNotFound(gr, name)
}

func list[T runtime.Object](s *Static, kind, ns string) []T {
	var out []T
	for _, obj := range s.byKind[kind] {
		t, ok := obj.(T)
		if !ok {
			continue
		}
		if m, err := metaOf(obj); err == nil && (ns == "" || m.GetNamespace() == ns) {
			out = append(out, t)
		}
	}
	return out
}

// Namespace implements View: a namespace exists when a file declares it or
// holds an object in it.
func (s *Static) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	if ns, ok := s.byKey[key("Namespace", "", name)].(*corev1.Namespace); ok {
		return ns, nil
	}
	if s.namespaces[name] {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("namespaces"), name)
}

// Service implements View.
func (s *Static) Service(_ context.Context, ns, name string) (*corev1.Service, error) {
	return get[*corev1.Service](s, corev1.Resource("services"), "Service", ns, name)
}

// EndpointSlices implements View. Without any EndpointSlice in the files the
// answer is ErrNotAvailable: readiness is runtime state.
func (s *Static) EndpointSlices(_ context.Context, ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
	if len(s.byKind["EndpointSlice"]) == 0 {
		return nil, fmt.Errorf("endpoint slices: %w", ErrNotAvailable)
	}
	return slices.DeleteFunc(list[*discoveryv1.EndpointSlice](s, "EndpointSlice", ns), func(e *discoveryv1.EndpointSlice) bool {
		return e.Labels[discoveryv1.LabelServiceName] != svc
	}), nil
}

// Pods implements View, including pods derived from workload templates.
func (s *Static) Pods(_ context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, p := range s.pods {
		if (ns == "" || p.Namespace == ns) && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Nodes implements View.
func (s *Static) Nodes(context.Context) ([]*corev1.Node, error) {
	return list[*corev1.Node](s, "Node", ""), nil
}

// NetworkPolicies implements View.
func (s *Static) NetworkPolicies(_ context.Context, ns string) ([]*networkingv1.NetworkPolicy, error) {
	return list[*networkingv1.NetworkPolicy](s, "NetworkPolicy", ns), nil
}

// APIService implements View.
func (s *Static) APIService(_ context.Context, name string) (*apiregv1.APIService, error) {
	return get[*apiregv1.APIService](s, apiregv1.Resource("apiservices"), "APIService", "", name)
}

// ServiceAccount implements View.
func (s *Static) ServiceAccount(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	return get[*corev1.ServiceAccount](s, corev1.Resource("serviceaccounts"), "ServiceAccount", ns, name)
}

// RoleBindings implements View.
func (s *Static) RoleBindings(_ context.Context, ns string) ([]*rbacv1.RoleBinding, error) {
	return list[*rbacv1.RoleBinding](s, "RoleBinding", ns), nil
}

// ClusterRoleBindings implements View.
func (s *Static) ClusterRoleBindings(context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	return list[*rbacv1.ClusterRoleBinding](s, "ClusterRoleBinding", ""), nil
}

// Secret implements View.
func (s *Static) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	return get[*corev1.Secret](s, corev1.Resource("secrets"), "Secret", ns, name)
}

// Certificate implements View.
func (s *Static) Certificate(_ context.Context, ns, name string) (*cmapi.Certificate, error) {
	return get[*cmapi.Certificate](s, cmapi.SchemeGroupVersion.WithResource("certificates").GroupResource(), "Certificate", ns, name)
}

// ServingCertificate implements View: files cannot be probed.
func (s *Static) ServingCertificate(context.Context, string, string) ([]*x509.Certificate, error) {
	return nil, fmt.Errorf("TLS probe: %w", ErrNotAvailable)
}
