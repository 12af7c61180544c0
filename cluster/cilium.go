package cluster

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// CiliumGroupVersion is the API of Cilium's policies the guard reads.
var CiliumGroupVersion = schema.GroupVersion{Group: "cilium.io", Version: "v2"}

// CiliumNetworkPolicy is a cilium.io/v2 CiliumNetworkPolicy as the guard
// reads it: the fields of netpol.CiliumPolicy, the rest ignored.
type CiliumNetworkPolicy struct {
	netpol.CiliumPolicy `json:",inline"`
}

// CiliumClusterwideNetworkPolicy is a cilium.io/v2
// CiliumClusterwideNetworkPolicy as the guard reads it.
type CiliumClusterwideNetworkPolicy struct {
	netpol.CiliumPolicy `json:",inline"`
}

// CiliumNetworkPolicyList is a list of CiliumNetworkPolicies.
type CiliumNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumNetworkPolicy `json:"items"`
}

// CiliumClusterwideNetworkPolicyList is a list of
// CiliumClusterwideNetworkPolicies.
type CiliumClusterwideNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumClusterwideNetworkPolicy `json:"items"`
}

// addCilium registers the Cilium kinds.
func addCilium(s *runtime.Scheme) error {
	s.AddKnownTypes(CiliumGroupVersion, &CiliumNetworkPolicy{}, &CiliumNetworkPolicyList{},
		&CiliumClusterwideNetworkPolicy{}, &CiliumClusterwideNetworkPolicyList{})
	metav1.AddToGroupVersion(s, CiliumGroupVersion)
	return nil
}

// jsonCopy deep-copies in through JSON: every field of these types is
// JSON, and the guard copies them rarely (informers hand out the cache's
// own objects; Live reads those).
func jsonCopy[T any](in *T) *T {
	if in == nil {
		return nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		panic("cilium types are JSON: " + err.Error())
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic("cilium types are JSON: " + err.Error())
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (p *CiliumNetworkPolicy) DeepCopyObject() runtime.Object {
	if c := jsonCopy(p); c != nil {
		return c
	}
	return nil
}

// DeepCopyObject implements runtime.Object.
func (p *CiliumClusterwideNetworkPolicy) DeepCopyObject() runtime.Object {
	if c := jsonCopy(p); c != nil {
		return c
	}
	return nil
}

// DeepCopyObject implements runtime.Object.
func (l *CiliumNetworkPolicyList) DeepCopyObject() runtime.Object {
	if c := jsonCopy(l); c != nil {
		return c
	}
	return nil
}

// DeepCopyObject implements runtime.Object.
func (l *CiliumClusterwideNetworkPolicyList) DeepCopyObject() runtime.Object {
	if c := jsonCopy(l); c != nil {
		return c
	}
	return nil
}

// ciliumPolicies are the policies of both kinds, namespaced ones first.
func ciliumPolicies(cnps []*CiliumNetworkPolicy, ccnps []*CiliumClusterwideNetworkPolicy) []*netpol.CiliumPolicy {
	if len(cnps)+len(ccnps) == 0 {
		return nil
	}
	out := make([]*netpol.CiliumPolicy, 0, len(cnps)+len(ccnps))
	for _, p := range cnps {
		out = append(out, &p.CiliumPolicy)
	}
	for _, p := range ccnps {
		c := p.CiliumPolicy
		c.Namespace = "" // clusterwide, whatever the object says
		out = append(out, &c)
	}
	return out
}
