package audit

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/k0s"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Subject is an existing object the audit reviews.
type Subject struct {
	Kind   schema.GroupKind
	Object client.Object // with its apiVersion and kind set
}

// Sources are where the audit finds its subjects.
type Sources struct {
	// Cache lists APIServices and NetworkPolicies: the Live view's
	// informers, so a full scan reads no more from the API server.
	Cache client.Reader
	// Reader lists, uncached, kube-system's ConfigMaps (for k0s
	// worker-configs) and k0s ClusterConfigs; the guard keeps no informer
	// for them. nil skips them.
	Reader client.Reader
}

// Subjects lists what a full scan reviews, in a stable order:
//   - every APIService with a backend Service (a local APIService has no
//     backend for a rule to judge);
//   - every NetworkPolicy in a namespace that hosts a Service the API server
//     calls (APIService, webhook, CRD conversion), and in the konnectivity
//     agents' namespace;
//   - the k0s worker-config ConfigMaps and the ClusterConfigs of
//     kube-system, when the engine reviews those kinds. A missing
//     ClusterConfig CRD is not an error.
func (s Sources) Subjects(ctx context.Context, engine *policies.Engine, view cluster.View) ([]Subject, error) {
	var out []Subject
	if engine.Handles(policies.APIServiceKind) {
		var list apiregv1.APIServiceList
		if err := s.Cache.List(ctx, &list); err != nil {
			return nil, fmt.Errorf("listing APIServices: %w", err)
		}
		for i := range list.Items {
			if list.Items[i].Spec.Service != nil {
				out = append(out, subject(policies.APIServiceKind, apiregv1.SchemeGroupVersion, &list.Items[i]))
			}
		}
	}
	if engine.Handles(policies.NetworkPolicyKind) {
		namespaces, err := backendNamespaces(ctx, view, engine.Config().ControlPlane.AgentNamespace())
		if err != nil {
			return nil, err
		}
		for _, ns := range namespaces {
			policiesIn, err := view.NetworkPolicies(ctx, ns)
			if err != nil {
				return nil, fmt.Errorf("listing NetworkPolicies in %s: %w", ns, err)
			}
			for _, np := range policiesIn {
				out = append(out, subject(policies.NetworkPolicyKind, networkingv1.SchemeGroupVersion, np.DeepCopy()))
			}
		}
	}
	if s.Reader == nil {
		return out, nil
	}
	if engine.Handles(policies.ConfigMapKind) {
		var list corev1.ConfigMapList
		if err := s.Reader.List(ctx, &list, client.InNamespace(k0s.Namespace)); err != nil {
			return nil, fmt.Errorf("listing ConfigMaps in %s: %w", k0s.Namespace, err)
		}
		for i := range list.Items {
			if cm := &list.Items[i]; k0s.IsWorkerConfig(cm.Name, cm.Labels) {
				out = append(out, subject(policies.ConfigMapKind, corev1.SchemeGroupVersion, cm))
			}
		}
	}
	if engine.Handles(k0s.ClusterConfigKind) {
		var list k0s.ClusterConfigList
		err := s.Reader.List(ctx, &list, client.InNamespace(k0s.Namespace))
		switch {
		case meta.IsNoMatchError(err) || runtime.IsNotRegisteredError(err):
			// k0s's CRD is not installed: nothing to audit.
		case err != nil:
			return nil, fmt.Errorf("listing k0s ClusterConfigs: %w", err)
		default:
			for i := range list.Items {
				out = append(out, subject(k0s.ClusterConfigKind, k0s.SchemeGroupVersion, &list.Items[i]))
			}
		}
	}
	return out, nil
}

// subject sets obj's apiVersion and kind, which objects listed from a typed
// client or cache lack.
func subject(kind schema.GroupKind, gv schema.GroupVersion, obj client.Object) Subject {
	obj.GetObjectKind().SetGroupVersionKind(gv.WithKind(kind.Kind))
	return Subject{Kind: kind, Object: obj}
}

// backendNamespaces are the namespaces of the Services the API server calls,
// and agentNamespace, sorted.
func backendNamespaces(ctx context.Context, view cluster.View, agentNamespace string) ([]string, error) {
	refs, err := view.ServiceReferences(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("listing the Services the API server calls: %w", err)
	}
	out := []string{agentNamespace}
	for _, r := range refs {
		out = append(out, r.Namespace)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
