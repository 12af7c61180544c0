package audit

// Steps 7 to 10 of a diagnosis: what the aggregator's error and the
// cluster say of the way between the API server and the backend (TLS,
// konnectivity, an HTTP proxy), and what the outage blocks.

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/k0s"
	"apiservice-guard.io/apiservice-guard/policies"
)

// tls is step 7: the aggregator's TLS error. It reached the backend (a TLS
// handshake happened), so the network path works; what is left is trust
// (caBundle), names (SANs) or time (expiry).
func (d *diagnosis) tls(api *apiregv1.APIService, message string, probes []probeResult) {
	i := strings.Index(message, "x509: ")
	if i < 0 {
		i = strings.Index(message, "tls: ")
	}
	if i < 0 {
		return
	}
	tlsErr := message[i:]
	evidence := "the aggregator's TLS check fails: " + tlsErr
	for _, r := range probes {
		if r.reached {
			evidence += fmt.Sprintf("; the backend answers the API server's proxy (which does not verify certificates): %s", r.what)
			break
		}
	}
	d.add("tls", StepFailed, "%s", evidence)
	name := api.Spec.Service.Name + "." + api.Spec.Service.Namespace + ".svc"
	switch {
	case strings.Contains(tlsErr, "unknown authority"):
		d.cause(rankTLS, "cabundle-untrusted", "the APIService's caBundle does not trust the backend's serving certificate",
			"put the CA that issued the serving certificate into spec.caBundle: with cert-manager, annotate the APIService cert-manager.io/inject-ca-from=<namespace>/<certificate>; else "+
				`kubectl patch apiservice `+api.Name+` --type merge -p '{"spec":{"caBundle":"'"$(base64 -w0 ca.crt)"'"}}'`)
	case strings.Contains(tlsErr, "valid for") || strings.Contains(tlsErr, "not valid for any names") || strings.Contains(tlsErr, "IP SANs"):
		d.cause(rankTLS, "serving-cert-san", fmt.Sprintf("the backend's serving certificate does not name %s, the name the aggregator checks", name),
			fmt.Sprintf("reissue the serving certificate with the DNS name %s (cert-manager: spec.dnsNames)", name))
	case strings.Contains(tlsErr, "expired or is not yet valid"):
		d.cause(rankTLS, "serving-cert-expired", "the backend's serving certificate has expired (or is not yet valid)",
			"renew the serving certificate, and restart the adapter if it reads it only at start")
	default:
		d.cause(rankTLS, "tls", "the TLS handshake with the backend fails: "+tlsErr,
			"check the adapter's serving certificate and the APIService's caBundle")
	}
}

// noAgent is what konnectivity answers when no agent can carry a request.
const noAgent = "no agent available"

// konnectivity is step 8: where the API server reaches pods through
// konnectivity agents (or its error says it tried), are they running and
// ready, and does the k0s worker-config turn them on.
func (d *diagnosis) konnectivity(ctx context.Context, cp policies.ControlPlane, view cluster.View, reader client.Reader, message string) {
	said := strings.Contains(strings.ToLower(message), noAgent)
	sel := labels.SelectorFromSet(cp.AgentLabels())
	agents, err := view.Pods(ctx, cp.AgentNamespace(), sel)
	if err != nil {
		agents = nil
	}
	workers := workerKonnectivity(ctx, reader)
	if !said && len(agents) == 0 && len(workers) == 0 {
		return // no konnectivity in this cluster's path
	}
	ready := 0
	for _, p := range agents {
		if podReady(p) {
			ready++
		}
	}
	evidence := fmt.Sprintf("%d agents (%s in %s), %d ready", len(agents), sel, cp.AgentNamespace(), ready)
	disabled := ""
	for _, w := range workers {
		evidence += "; " + w.text
		if w.disabled && disabled == "" {
			disabled = w.name
		}
	}
	if said {
		evidence += `; the aggregator's error says "No agent available"`
	}
	failed := said || len(agents) > 0 && ready == 0
	if !failed {
		d.add("konnectivity", StepOK, "%s", evidence)
		return
	}
	d.add("konnectivity", StepFailed, "%s", evidence)
	agentsCmd := fmt.Sprintf("kubectl -n %s get pods -l %s -o wide", cp.AgentNamespace(), sel)
	switch {
	case len(agents) == 0 && disabled != "":
		d.cause(rankPath, "konnectivity", fmt.Sprintf("konnectivity carries the API server's requests to pods, and no agent runs: the k0s worker-config %s turns konnectivity off", disabled),
			"enable konnectivity in the worker profile (its worker-config's konnectivity value must say \"enabled\":true), then check: "+agentsCmd)
	case len(agents) == 0:
		d.cause(rankPath, "konnectivity", "konnectivity carries the API server's requests to pods, and no agent runs",
			"deploy the konnectivity agents (k0s: every worker runs them when its profile enables konnectivity), then check: "+agentsCmd)
	case ready == 0:
		d.cause(rankPath, "konnectivity", "no konnectivity agent is ready: the API server cannot reach any pod",
			fmt.Sprintf("kubectl -n %s logs -l %s   # the agents must reach the controllers on the agent port (k0s: 8132)", cp.AgentNamespace(), sel))
	default:
		d.cause(rankPath, "konnectivity", "the konnectivity agents run but none carries the API server's requests (\"No agent available\")",
			fmt.Sprintf("kubectl -n %s logs -l %s   # the agents must reach every controller on the agent port (k0s: 8132)", cp.AgentNamespace(), sel))
	}
}

// workerConfig is a k0s worker-config's konnectivity setting, as evidence.
type workerConfig struct {
	name, text string
	disabled   bool
}

// workerKonnectivity reads the konnectivity value of k0s's worker-configs.
func workerKonnectivity(ctx context.Context, reader client.Reader) []workerConfig {
	if reader == nil {
		return nil
	}
	var list corev1.ConfigMapList
	if err := reader.List(ctx, &list, client.InNamespace(k0s.Namespace)); err != nil {
		return nil
	}
	var out []workerConfig
	for i := range list.Items {
		cm := &list.Items[i]
		if !k0s.IsWorkerConfig(cm.Name, cm.Labels) {
			continue
		}
		value, ok := cm.Data[k0s.WorkerKonnectivityKey]
		w := workerConfig{name: cm.Name}
		switch k, err := k0s.ParseWorkerKonnectivity(value); {
		case !ok:
			w.text = cm.Name + ": no konnectivity entry"
		case err != nil:
			w.text, w.disabled = fmt.Sprintf("%s: %v", cm.Name, err), true
		case !k.Enabled:
			w.text, w.disabled = cm.Name+": konnectivity disabled", true
		default:
			w.text = fmt.Sprintf("%s: konnectivity enabled, agentPort %d", cm.Name, k.AgentPort)
		}
		out = append(out, w)
	}
	return out
}

// httpProxy is step 9: the API server sends its requests to backends
// through an HTTP proxy from its environment (HTTPS_PROXY), which cannot
// reach the cluster's addresses.
func (d *diagnosis) httpProxy(message string) {
	i := strings.Index(message, "proxyconnect ")
	if i < 0 {
		return
	}
	d.add("http-proxy", StepFailed, "the API server dials the backend through an HTTP proxy: %s", message[i:])
	d.cause(rankPath, "http-proxy", "kube-apiserver sends its requests to the backend through the HTTP proxy of its environment (HTTPS_PROXY), which does not reach the cluster's addresses",
		"add the Service and pod CIDRs and .svc to NO_PROXY in kube-apiserver's environment (e.g. NO_PROXY=.svc,.cluster.local,10.96.0.0/12,10.244.0.0/16), then restart it")
}

// maxTerminatingShown bounds the namespaces named.
const maxTerminatingShown = 5

// terminating is step 10: namespaces that cannot finish deleting because
// discovery of this group/version fails (NamespaceDeletionDiscoveryFailure).
func (d *diagnosis) terminating(ctx context.Context, reader client.Reader, api *apiregv1.APIService) {
	if reader == nil || d.Available {
		return
	}
	var list corev1.NamespaceList
	if err := reader.List(ctx, &list, client.MatchingFields{"status.phase": string(corev1.NamespaceTerminating)}); err != nil {
		d.add("namespaces", StepUnknown, "listing namespaces stuck Terminating: %v", err)
		return
	}
	gv := api.Spec.Group + "/" + api.Spec.Version
	var stuck []string
	for _, ns := range list.Items {
		for _, c := range ns.Status.Conditions {
			if c.Type == corev1.NamespaceDeletionDiscoveryFailure && c.Status == corev1.ConditionTrue && strings.Contains(c.Message, gv) {
				stuck = append(stuck, ns.Name)
			}
		}
	}
	if len(stuck) == 0 {
		return
	}
	shown := stuck[:min(len(stuck), maxTerminatingShown)]
	more := ""
	if len(stuck) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(stuck)-len(shown))
	}
	d.add("namespaces", StepFailed, "%d namespaces stuck Terminating because discovery of %s fails: %s%s (they finish once it is Available or the APIService is deleted)",
		len(stuck), gv, strings.Join(shown, ", "), more)
}
