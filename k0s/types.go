package k0s

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of k0s's configuration kinds.
const GroupName = "k0s.k0sproject.io"

// SchemeGroupVersion is the only version of ClusterConfig k0s serves.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1beta1"}

// Namespace is where k0s keeps the configuration it reads from the cluster:
// the ClusterConfig "k0s" and the worker-config ConfigMaps.
const Namespace = "kube-system"

// ClusterConfigKind is the group/kind of ClusterConfig.
var ClusterConfigKind = schema.GroupKind{Group: GroupName, Kind: "ClusterConfig"}

// ClusterConfig is a k0s ClusterConfig object as stored or written: its
// metadata, and its spec kept as raw JSON for ParseSpec. Keeping the spec
// raw lets an object whose spec has wrong types still be decoded, so that
// what is wrong with it becomes a finding naming the field rather than an
// undecodable request.
type ClusterConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Spec is the raw spec; empty when the object has none.
	Spec runtime.RawExtension `json:"spec,omitempty"`
	// Strict is what k0s's strict reading refuses in the text the object was
	// read from (see CheckStrict), set by whoever read the text: a k0s.yaml
	// or a k0sctl.yaml's spec.k0s.config. Nil for an object as the API
	// server sends it, which has no text of its own and is read tolerantly:
	// the API server prunes unknown fields. Not serialized.
	Strict error `json:"-"`
}

// ClusterConfigList is a list of ClusterConfigs.
type ClusterConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterConfig `json:"items"`
}

var (
	_ runtime.Object = (*ClusterConfig)(nil)
	_ runtime.Object = (*ClusterConfigList)(nil)
)

// AddToScheme registers ClusterConfig and ClusterConfigList.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &ClusterConfig{}, &ClusterConfigList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}

// DeepCopyInto copies c into out.
func (c *ClusterConfig) DeepCopyInto(out *ClusterConfig) {
	*out = *c
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	c.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopy returns a copy of c.
func (c *ClusterConfig) DeepCopy() *ClusterConfig {
	if c == nil {
		return nil
	}
	out := new(ClusterConfig)
	c.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (c *ClusterConfig) DeepCopyObject() runtime.Object { return c.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *ClusterConfigList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &ClusterConfigList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]ClusterConfig, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
	return out
}
