package cluster

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

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
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// Loaded is one object read from a file.
type Loaded struct {
	// Object is the typed object, or *unstructured.Unstructured for kinds
	// the guard has no Go type for.
	Object runtime.Object
	// GVK is the object's group/version/kind as written.
	GVK schema.GroupVersionKind
	// Source is "file#document", for messages: documents are numbered from 1,
	// counting empty ones (see LoadStatic); an item of a List adds "[index]".
	Source string
}

// Static is a View built from manifests. It answers only from what the files
// hold: runtime state the files cannot know (EndpointSlices when none are
// given, TLS probes) is ErrNotAvailable rather than "not found". Objects are
// told apart by group and kind, so a CRD kind named like a built-in one (a
// Knative serving.knative.dev Service) is not taken for it.
type Static struct {
	// objects are in load order; pods[i] is the pod derived from objects[i],
	// or nil.
	objects []Loaded
	pods    []*corev1.Pod
	// documents are every object read by LoadStatic, superseded ones too;
	// notes say which objects were defined more than once.
	documents []Loaded
	notes     []string
	// defaultNamespace is given to namespaced objects that name none.
	defaultNamespace string
	index            map[objectKey]int          // position in objects
	byKind           map[schema.GroupKind][]int // positions in objects
	// namespaces are those declared or holding an object.
	namespaces map[string]bool
}

var _ View = (*Static)(nil)

// objectKey identifies one object of the view.
type objectKey struct {
	schema.GroupKind
	namespace, name string
}

// String is "Kind[.group] [namespace/]name", for messages.
func (k objectKey) String() string {
	if k.namespace == "" {
		return k.GroupKind.String() + " " + k.name
	}
	return k.GroupKind.String() + " " + k.namespace + "/" + k.name
}

// namespaceKind is the core Namespace; a CRD kind of that name declares none.
var namespaceKind = schema.GroupKind{Group: corev1.GroupName, Kind: "Namespace"}

func newStatic() *Static {
	return &Static{index: map[objectKey]int{}, byKind: map[schema.GroupKind][]int{}, namespaces: map[string]bool{}}
}

// Add puts one object into the view, deriving pods from workload templates.
// It is for views built in code: an object with the same group, kind,
// namespace and name as one already added replaces it in place, in Objects
// and in every answer. LoadStatic does the same with an object defined twice
// in the files (the later one is what kubectl apply -f would leave), and notes it.
func (s *Static) Add(l Loaded) {
	if k, ok := keyOf(l); ok {
		if i, dup := s.index[k]; dup {
			s.objects[i], s.pods[i] = l, podFrom(l.Object)
			return
		}
	}
	s.insert(l)
}

// addLoaded records a document read from a file and adds it to the view;
// an object defined before is replaced and noted.
func (s *Static) addLoaded(l Loaded) {
	s.documents = append(s.documents, l)
	if k, ok := keyOf(l); ok {
		if i, dup := s.index[k]; dup {
			s.notes = append(s.notes, fmt.Sprintf("%s is defined twice, in %s and %s; the cluster view holds the later one",
				k, s.objects[i].Source, l.Source))
		}
	}
	s.Add(l)
}

// insert appends l, which the view does not hold yet.
func (s *Static) insert(l Loaded) {
	i := len(s.objects)
	s.objects = append(s.objects, l)
	s.pods = append(s.pods, podFrom(l.Object))
	k, ok := keyOf(l)
	if !ok {
		return
	}
	s.index[k] = i
	s.byKind[k.GroupKind] = append(s.byKind[k.GroupKind], i)
	if k.namespace != "" {
		s.namespaces[k.namespace] = true
	}
	if k.GroupKind == namespaceKind {
		s.namespaces[k.name] = true
	}
}

// keyOf returns the key of l, or false for an object without metadata.
func keyOf(l Loaded) (objectKey, bool) {
	m, err := metaOf(l.Object)
	if err != nil {
		return objectKey{}, false
	}
	return objectKey{GroupKind: l.GVK.GroupKind(), namespace: m.GetNamespace(), name: m.GetName()}, true
}

// Objects returns everything loaded, in file order (an object Add replaced
// keeps its place).
func (s *Static) Objects() []Loaded { return s.objects }

// Documents returns every object LoadStatic read, in file order, including
// ones a later definition of the same object superseded in the view: each is
// something a person may apply, so each is worth reviewing.
func (s *Static) Documents() []Loaded { return s.documents }

// Notes returns what LoadStatic noticed but did not fail on, such as an object
// defined twice.
func (s *Static) Notes() []string { return s.notes }

// podFrom returns the pod an object runs: the Pod itself, or a pod made from a
// workload's template (named after the workload, in its namespace). A
// workload scaled to zero (replicas: 0) runs none.
func podFrom(obj runtime.Object) *corev1.Pod {
	var meta metav1.ObjectMeta
	var tmpl corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *corev1.Pod:
		return o
	case *appsv1.Deployment:
		if scaledToZero(o.Spec.Replicas) {
			return nil
		}
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *appsv1.StatefulSet:
		if scaledToZero(o.Spec.Replicas) {
			return nil
		}
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *appsv1.DaemonSet:
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *appsv1.ReplicaSet:
		if scaledToZero(o.Spec.Replicas) {
			return nil
		}
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *batchv1.Job:
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case *batchv1.CronJob:
		meta, tmpl = o.ObjectMeta, o.Spec.JobTemplate.Spec.Template
	default:
		return nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec:       tmpl.Spec,
	}
}

// scaledToZero reports whether a workload's replicas is set to 0; unset
// means 1.
func scaledToZero(replicas *int32) bool { return replicas != nil && *replicas == 0 }

// get returns the object of kind in gr's group, or NotFound for gr.
func get[T runtime.Object](s *Static, gr schema.GroupResource, kind, ns, name string) (T, error) {
	var zero T
	k := objectKey{GroupKind: schema.GroupKind{Group: gr.Group, Kind: kind}, namespace: ns, name: name}
	if i, ok := s.index[k]; ok {
		if obj, ok := s.objects[i].Object.(T); ok {
			return obj, nil
		}
	}
	return zero, apierrors.NewNotFound(gr, name)
}

// list returns the objects of group and kind in ns, or in every namespace
// when ns is empty.
func list[T runtime.Object](s *Static, group, kind, ns string) []T {
	var out []T
	for _, i := range s.byKind[schema.GroupKind{Group: group, Kind: kind}] {
		t, ok := s.objects[i].Object.(T)
		if !ok {
			continue
		}
		if m, err := metaOf(t); err == nil && (ns == "" || m.GetNamespace() == ns) {
			out = append(out, t)
		}
	}
	return out
}

// Namespace implements View: a namespace exists when a file declares it or
// holds an object in it.
func (s *Static) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	if ns, err := get[*corev1.Namespace](s, corev1.Resource("namespaces"), namespaceKind.Kind, "", name); err == nil {
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

// EndpointSlices implements View. Without any discovery.k8s.io EndpointSlice
// in the files the answer is ErrNotAvailable: readiness is runtime state.
func (s *Static) EndpointSlices(_ context.Context, ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
	const kind = "EndpointSlice"
	if len(s.byKind[schema.GroupKind{Group: discoveryv1.GroupName, Kind: kind}]) == 0 {
		return nil, fmt.Errorf("endpoint slices: %w", ErrNotAvailable)
	}
	return slices.DeleteFunc(list[*discoveryv1.EndpointSlice](s, discoveryv1.GroupName, kind, ns), func(e *discoveryv1.EndpointSlice) bool {
		return e.Labels[discoveryv1.LabelServiceName] != svc
	}), nil
}

// Pods implements View, including pods derived from workload templates. A nil
// selector matches every pod, as labels.Everything does.
func (s *Static) Pods(_ context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	if sel == nil {
		sel = labels.Everything()
	}
	var out []*corev1.Pod
	for _, p := range s.pods {
		if p != nil && (ns == "" || p.Namespace == ns) && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Nodes implements View.
func (s *Static) Nodes(context.Context) ([]*corev1.Node, error) {
	return list[*corev1.Node](s, corev1.GroupName, "Node", ""), nil
}

// NetworkPolicies implements View.
func (s *Static) NetworkPolicies(_ context.Context, ns string) ([]*networkingv1.NetworkPolicy, error) {
	return list[*networkingv1.NetworkPolicy](s, networkingv1.GroupName, "NetworkPolicy", ns), nil
}

// APIService implements View.
func (s *Static) APIService(_ context.Context, name string) (*apiregv1.APIService, error) {
	return get[*apiregv1.APIService](s, apiregv1.Resource("apiservices"), "APIService", "", name)
}

// RoleBindings implements View.
func (s *Static) RoleBindings(_ context.Context, ns, roleName string) ([]*rbacv1.RoleBinding, error) {
	return slices.DeleteFunc(list[*rbacv1.RoleBinding](s, rbacv1.GroupName, "RoleBinding", ns), func(b *rbacv1.RoleBinding) bool {
		return roleName != "" && b.RoleRef.Name != roleName
	}), nil
}

// ClusterRoleBindings implements View.
func (s *Static) ClusterRoleBindings(_ context.Context, roleName string) ([]*rbacv1.ClusterRoleBinding, error) {
	return slices.DeleteFunc(list[*rbacv1.ClusterRoleBinding](s, rbacv1.GroupName, "ClusterRoleBinding", ""), func(b *rbacv1.ClusterRoleBinding) bool {
		return roleName != "" && b.RoleRef.Name != roleName
	}), nil
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

// ServiceReferences implements View.
func (s *Static) ServiceReferences(_ context.Context, ns string) ([]ServiceReference, error) {
	var out []ServiceReference
	for _, gk := range []schema.GroupKind{
		{Group: apiregv1.GroupName, Kind: KindAPIService},
		{Group: admissionregv1.GroupName, Kind: KindValidatingWebhookConfiguration},
		{Group: admissionregv1.GroupName, Kind: KindMutatingWebhookConfiguration},
		{Group: apiextensionsv1.GroupName, Kind: KindCustomResourceDefinition},
	} {
		for _, i := range s.byKind[gk] {
			out = appendServiceReferences(out, s.objects[i].Object, ns)
		}
	}
	return out, nil
}

// NewStatic builds a view from typed objects, each of a kind in NewScheme(),
// as tests and callers that already hold objects need.
func NewStatic(objs ...runtime.Object) (*Static, error) {
	s := newStatic()
	scheme := NewScheme()
	for _, o := range objs {
		gvks, _, err := scheme.ObjectKinds(o)
		if err != nil {
			return nil, fmt.Errorf("%T: %w", o, err)
		}
		s.Add(Loaded{Object: o, GVK: gvks[0], Source: "code"})
	}
	return s, nil
}
