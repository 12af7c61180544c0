package policies

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/cluster"
)

func backendMissingRule() Rule {
	return apiServiceRule("apiservice-backend-missing", Warn,
		"the APIService's namespace or Service does not exist",
		func(_ context.Context, f *backendFacts) []Result {
			switch {
			case notFound(f.nsErr):
				return []Result{{
					Message: fmt.Sprintf("namespace %q of backend Service %s does not exist: the APIService will be ServiceNotFound",
						f.ref.Namespace, f.svcName()),
					Fix: "install the adapter first, or fix spec.service.namespace",
				}}
			case notFound(f.svcErr):
				return []Result{{
					Message: fmt.Sprintf("backend Service %s does not exist: the APIService will be ServiceNotFound", f.svcName()),
					Fix:     "create the Service, or fix spec.service.name",
				}}
			}
			return nil
		})
}

func portMismatchRule() Rule {
	return apiServiceRule("apiservice-port-mismatch", Enforce,
		"spec.service.port is not a port of the Service, or its targetPort matches no container port",
		func(_ context.Context, f *backendFacts) []Result {
			if f.svc == nil || f.externalName() {
				return nil
			}
			if f.svcPort == nil {
				return []Result{{
					Message: fmt.Sprintf("Service %s has no port %d (%s): the APIService will be ServicePortError",
						f.svcName(), f.port, servicePorts(f.svc)),
					Fix: fmt.Sprintf("set spec.service.port to one of %s", servicePorts(f.svc)),
				}}
			}
			return targetPortResults(f)
		})
}

// targetPortResults checks the Service port's targetPort against the backend
// pods. A named targetPort that no pod declares gives the Service no endpoints
// at all, so it is a violation; a numeric one that no container declares may
// still be listened on, so it is only advisory.
func targetPortResults(f *backendFacts) []Result {
	if len(f.pods) == 0 {
		return nil
	}
	for _, pod := range f.pods {
		if _, declared := f.podPort(pod); declared {
			return nil
		}
	}
	tp := f.targetPort()
	pod := f.pods[0]
	msg := fmt.Sprintf("Service %s port %d targets %s; pod %s declares %s",
		f.svcName(), f.port, targetPortString(tp), pod.Name, containerPorts(pod))
	if tp.Type == intstr.String {
		return []Result{{
			Message: msg + ": no endpoints, MissingEndpoints",
			Fix:     fmt.Sprintf("name a container port %q, or set targetPort to the adapter's port", tp.StrVal),
		}}
	}
	return []Result{{
		Message:  msg,
		Fix:      "check the adapter listens on it, or set targetPort to the adapter's port",
		Advisory: true,
	}}
}

func noReadyEndpointsRule() Rule {
	return apiServiceRule("apiservice-no-ready-endpoints", Warn,
		"the backend Service has no ready endpoints on the APIService port",
		func(_ context.Context, f *backendFacts) []Result {
			if f.svc == nil || f.externalName() || f.svcPort == nil {
				return nil
			}
			if f.slicesErr != nil {
				return selectsNoPod(f)
			}
			if _, _, ready := readyEndpoint(f); ready {
				return nil
			}
			return []Result{{
				Message: fmt.Sprintf("Service %s has no ready endpoint for port %d: MissingEndpoints until its pods are ready",
					f.svcName(), f.port),
				Fix: fmt.Sprintf("kubectl -n %s get pods,endpointslices -l kubernetes.io/service-name=%s", f.ref.Namespace, f.ref.Name),
			}}
		})
}

// selectsNoPod speaks when readiness is unknown (the offline check's files
// hold no EndpointSlice) and the Service selects no pod at all: a selector
// that matches no pod template (a label typo), or workloads scaled to zero.
// The Service will have no endpoints, and no NetworkPolicy rule has a pod
// to judge.
func selectsNoPod(f *backendFacts) []Result {
	if len(f.svc.Spec.Selector) == 0 || len(f.pods) > 0 || !errors.Is(f.slicesErr, cluster.ErrNotAvailable) {
		return nil
	}
	return []Result{{
		Message: fmt.Sprintf("Service %s selects no pod (selector %s): no workload here has those labels, or it has replicas: 0",
			f.svcName(), labels.SelectorFromSet(f.svc.Spec.Selector)),
		Fix: "make the Service selector match the adapter's pod template labels, and run at least one replica",
	}}
}

// readyEndpoint mirrors the aggregator's check: an EndpointSlice with a
// ready endpoint and a port named like the Service port. It returns that
// endpoint's first address ("" if it lists none) and the port.
func readyEndpoint(f *backendFacts) (address string, port int32, ok bool) {
	for _, s := range f.slices {
		var named bool
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == f.svcPort.Name && p.Port != nil {
				port, named = *p.Port, true
			}
		}
		if !named {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				if len(e.Addresses) > 0 {
					return e.Addresses[0], port, true
				}
				ok = true
			}
		}
	}
	return "", 0, ok
}

func backendReplacedRule() Rule {
	return apiServiceRule("apiservice-backend-replaced", Warn,
		"an update points an Available APIService at a different Service",
		func(_ context.Context, f *backendFacts) []Result {
			if f.review.Operation != Update || f.old == nil || f.old.Spec.Service == nil || !f.available() {
				return nil
			}
			o := f.old.Spec.Service
			if o.Namespace == f.ref.Namespace && o.Name == f.ref.Name {
				return nil
			}
			return []Result{{
				Message: fmt.Sprintf("moves this Available APIService from Service %s/%s to %s; two adapters may be fighting over it",
					o.Namespace, o.Name, f.svcName()),
				Fix: "make sure one adapter (e.g. one KEDA install) owns it before moving it",
			}}
		})
}

func firewallPortRule() Rule {
	return apiServiceRule("apiservice-firewall-port", Warn,
		"on GKE, the backend's pod port is not one the control-plane firewall allows by default (443, 10250)",
		func(ctx context.Context, f *backendFacts) []Result {
			if f.svc == nil || f.externalName() || !onGKE(ctx, f) {
				return nil
			}
			port, ok := f.backendPort()
			if !ok || port == 443 || port == 10250 {
				return nil
			}
			return []Result{{
				Message: fmt.Sprintf("on GKE the control plane reaches pods on 443 and 10250 only; the backend listens on %d", port),
				Fix:     gkeFirewallFix(f.review.controlPlane.CIDRs, port),
			}}
		})
}

// gkeFirewallFix is the gcloud command that opens port on the nodes to the
// control plane: from the configured control-plane CIDRs (GKE's
// master-ipv4-cidr), else a placeholder that says where to find it.
func gkeFirewallFix(cidrs []netip.Prefix, port int32) string {
	src := "<MASTER_IPV4_CIDR>"
	if len(cidrs) > 0 {
		parts := make([]string, len(cidrs))
		for i, p := range cidrs {
			parts[i] = p.String()
		}
		src = strings.Join(parts, ",")
	}
	cmd := fmt.Sprintf("gcloud compute firewall-rules create allow-control-plane-tcp-%d --direction INGRESS --network <NETWORK> --source-ranges %s --target-tags <NODE_TAG> --allow tcp:%d",
		port, src, port)
	if len(cidrs) == 0 {
		cmd += "   # MASTER_IPV4_CIDR: gcloud container clusters describe CLUSTER --format 'value(privateClusterConfig.masterIpv4CidrBlock)'"
	}
	return cmd + "   # NODE_TAG: the nodes' network tag (gke-CLUSTER-...-node)"
}

// onGKE reports whether any node carries GKE's node-pool label or a gce://
// providerID.
func onGKE(ctx context.Context, f *backendFacts) bool {
	return memoize(f.review, gkeKey{}, func() bool {
		nodes, err := f.view.Nodes(ctx)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if _, ok := n.Labels["cloud.google.com/gke-nodepool"]; ok || strings.HasPrefix(n.Spec.ProviderID, "gce://") {
				return true
			}
		}
		return false
	})
}

type gkeKey struct{}

func servicePorts(svc *corev1.Service) string {
	if len(svc.Spec.Ports) == 0 {
		return "no ports"
	}
	parts := make([]string, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		parts[i] = fmt.Sprint(p.Port)
		if p.Name != "" {
			parts[i] += " (" + p.Name + ")"
		}
	}
	return "port " + strings.Join(parts, ", ")
}

func containerPorts(pod *corev1.Pod) string {
	var parts []string
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			s := fmt.Sprint(p.ContainerPort)
			if p.Name != "" {
				s += " (" + p.Name + ")"
			}
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "no container ports"
	}
	return "container ports " + strings.Join(parts, ", ")
}

func targetPortString(tp intstr.IntOrString) string {
	if tp.Type == intstr.String {
		return fmt.Sprintf("named port %q", tp.StrVal)
	}
	return fmt.Sprintf("port %d", tp.IntVal)
}
