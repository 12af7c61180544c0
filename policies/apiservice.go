package policies

import (
	"context"
	"fmt"
	"iter"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// APIServiceKind is the group/kind of aggregated API registrations.
var APIServiceKind = schema.GroupKind{Group: apiregv1.GroupName, Kind: "APIService"}

// apiServiceRules is the APIService integrity family.
func apiServiceRules() []Rule {
	return []Rule{
		backendMissingRule(),
		portMismatchRule(),
		noReadyEndpointsRule(),
		caBundleInvalidRule(),
		insecureSkipTLSRule(),
		caBundleMismatchRule(),
		servingCertSANRule(),
		backendReplacedRule(),
		authDelegationRule(),
		firewallPortRule(),
		unreachableRule(),
		caBundleChurnRule(),
	}
}

// apiServiceRule fills in what every APIService integrity rule shares: the
// kind, CREATE/UPDATE only, and skipping APIServices served locally (no
// spec.service).
func apiServiceRule(name string, def Action, summary string, check func(ctx context.Context, f *backendFacts) []Result) Rule {
	return Rule{
		Name: name, Default: def, Summary: summary,
		Kinds:      []schema.GroupKind{APIServiceKind},
		Operations: []Operation{Create, Update},
		Check: func(ctx context.Context, r *Review, v cluster.View) []Result {
			f := factsFor(ctx, r, v)
			if f == nil {
				return nil
			}
			return check(ctx, f)
		},
	}
}

// backendFacts is what the APIService rules know about the backend of the
// APIService under review, looked up once per review.
type backendFacts struct {
	review *Review
	view   cluster.View
	api    *apiregv1.APIService
	old    *apiregv1.APIService
	ref    apiregv1.ServiceReference
	port   int32
	// dnsName is "<service>.<namespace>.svc", the name the aggregator verifies.
	dnsName string

	nsErr   error
	svc     *corev1.Service
	svcErr  error
	svcPort *corev1.ServicePort // the Service port named by spec.service.port
	pods    []*corev1.Pod       // pods selected by the Service
	slices  []*discoveryv1.EndpointSlice
	// slicesErr is set when the view could not list the EndpointSlices (for
	// example ErrNotAvailable from a static view without any): readiness is
	// then unknown, not "none ready".
	slicesErr error
	// stored is the APIService as the cluster has it now (nil if new).
	stored *apiregv1.APIService
}

type factsKey struct{}

// factsFor returns the backend facts of the reviewed APIService, or nil when it
// is not service-backed.
func factsFor(ctx context.Context, r *Review, v cluster.View) *backendFacts {
	return memoize(r, factsKey{}, func() *backendFacts {
		obj, old := r.Objects()
		api, ok := obj.(*apiregv1.APIService)
		if !ok || api == nil || api.Spec.Service == nil {
			return nil
		}
		f := &backendFacts{review: r, view: v, api: api, ref: *api.Spec.Service, port: 443}
		f.old, _ = old.(*apiregv1.APIService)
		if f.ref.Port != nil {
			f.port = *f.ref.Port
		}
		f.dnsName = f.ref.Name + "." + f.ref.Namespace + ".svc"
		f.load(ctx)
		return f
	})
}

// load reads the backend from the view. Errors other than not-found are kept
// and make the rules that need the missing part stay silent.
func (f *backendFacts) load(ctx context.Context) {
	v := f.view
	// On UPDATE the request's old object is the stored one, fresher than any
	// cache; on CREATE the view may still know an object of that name.
	if f.old != nil {
		f.stored = f.old
	} else if stored, err := v.APIService(ctx, f.api.Name); err == nil {
		f.stored = stored
	}
	if _, f.nsErr = v.Namespace(ctx, f.ref.Namespace); f.nsErr != nil {
		return
	}
	if f.svc, f.svcErr = v.Service(ctx, f.ref.Namespace, f.ref.Name); f.svcErr != nil {
		f.svc = nil
		return
	}
	for i := range f.svc.Spec.Ports {
		if f.svc.Spec.Ports[i].Port == f.port {
			f.svcPort = &f.svc.Spec.Ports[i]
			break
		}
	}
	if f.externalName() {
		return
	}
	if len(f.svc.Spec.Selector) > 0 {
		f.pods, _ = v.Pods(ctx, f.ref.Namespace, labels.SelectorFromSet(f.svc.Spec.Selector))
	}
	f.slices, f.slicesErr = v.EndpointSlices(ctx, f.ref.Namespace, f.ref.Name)
}

// externalName reports whether the backend Service is of type ExternalName:
// the aggregator then dials the external name on the APIService port directly.
func (f *backendFacts) externalName() bool {
	return f.svc != nil && f.svc.Spec.Type == corev1.ServiceTypeExternalName
}

// available reports whether the APIService is Available=True in the cluster now.
func (f *backendFacts) available() bool {
	if f.stored == nil {
		return false
	}
	for _, c := range f.stored.Status.Conditions {
		if c.Type == apiregv1.Available {
			return c.Status == apiregv1.ConditionTrue
		}
	}
	return false
}

// svcName is "namespace/name" of the backend Service, for messages.
func (f *backendFacts) svcName() string { return f.ref.Namespace + "/" + f.ref.Name }

// targetPort is the Service port's targetPort, defaulted to the port number.
func (f *backendFacts) targetPort() intstr.IntOrString { return targetPortOf(f.svcPort, f.port) }

// podPort resolves the target port on a pod: the number, and whether a
// container declares it (a named port must be declared to resolve at all).
func (f *backendFacts) podPort(pod *corev1.Pod) (port int32, declared bool) {
	return resolvePodPort(f.svcPort, f.port, pod)
}

// targetPortOf is a Service port's targetPort, defaulted to its port number;
// with no Service port, the port itself.
func targetPortOf(sp *corev1.ServicePort, port int32) intstr.IntOrString {
	if sp == nil {
		return intstr.FromInt32(port)
	}
	tp := sp.TargetPort
	if tp.Type == intstr.Int && tp.IntVal == 0 || tp.Type == intstr.String && tp.StrVal == "" {
		return intstr.FromInt32(sp.Port)
	}
	return tp
}

// resolvePodPort resolves a Service port's target on a pod, as the endpoints
// controller does: a named targetPort must be a declared container port of
// the Service port's protocol; a numeric one is used as is (declared reports
// whether a container lists it).
func resolvePodPort(sp *corev1.ServicePort, port int32, pod *corev1.Pod) (int32, bool) {
	tp := targetPortOf(sp, port)
	proto := corev1.ProtocolTCP
	if sp != nil && sp.Protocol != "" {
		proto = sp.Protocol
	}
	for c := range servingContainers(pod) {
		for _, cp := range c.Ports {
			if protocolOf(cp.Protocol) != proto {
				continue
			}
			if tp.Type == intstr.String && cp.Name == tp.StrVal || tp.Type == intstr.Int && cp.ContainerPort == tp.IntVal {
				return cp.ContainerPort, true
			}
		}
	}
	if tp.Type == intstr.Int {
		return tp.IntVal, false
	}
	return 0, false
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// backendPort is the pod port traffic lands on, from the first backend pod
// that resolves it, or the numeric targetPort when no pod is known. ok is false
// when the port cannot be known.
func (f *backendFacts) backendPort() (int32, bool) {
	for _, pod := range f.pods {
		if p, declared := f.podPort(pod); declared {
			return p, true
		}
	}
	if tp := f.targetPort(); tp.Type == intstr.Int {
		return tp.IntVal, true
	}
	return 0, false
}

// notFound reports whether err is the view's not-found.
func notFound(err error) bool { return apierrors.IsNotFound(err) }

// apiServiceName is the name used in messages.
func (f *backendFacts) apiServiceName() string { return fmt.Sprintf("APIService %s", f.api.Name) }

// servingContainers yields the containers that can serve a port: the
// regular ones and restartable init containers (sidecars). It yields the
// pod's own (a cached object: read only), copying none.
func servingContainers(pod *corev1.Pod) iter.Seq[*corev1.Container] {
	return func(yield func(*corev1.Container) bool) {
		for i := range pod.Spec.Containers {
			if !yield(&pod.Spec.Containers[i]) {
				return
			}
		}
		for i := range pod.Spec.InitContainers {
			c := &pod.Spec.InitContainers[i]
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && !yield(c) {
				return
			}
		}
	}
}
