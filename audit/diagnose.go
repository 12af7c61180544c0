package audit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Outcome is what one step of a diagnosis found.
type Outcome string

// Outcomes of a step.
const (
	StepOK      Outcome = "ok"
	StepFailed  Outcome = "failed"
	StepUnknown Outcome = "unknown" // the evidence could not be read
	StepSkipped Outcome = "skipped" // an earlier step settles it
)

// Step is one link of the evidence chain.
type Step struct {
	Name     string  `json:"name"`
	Outcome  Outcome `json:"outcome"`
	Evidence string  `json:"evidence"`
}

// Diagnosis says why an APIService is (or is not) available.
type Diagnosis struct {
	APIService string `json:"apiservice"`
	Available  bool   `json:"available"`
	// Cause is the root cause, one line; "" when Available. When the
	// evidence does not settle it, Cause says so and RuledOut lists what
	// was checked and found fine.
	Cause string `json:"cause"`
	// CauseKey names the kind of cause, for metrics: "namespace-gone",
	// "service-missing", "no-endpoints", a rule's name,
	// "cabundle-untrusted", "serving-cert-san", "serving-cert-expired",
	// "tls", "konnectivity", "http-proxy", "pod-unreachable",
	// "connection-refused", "no-route", "timeout", "forbidden",
	// "not-served", or "unknown".
	CauseKey string   `json:"causeKey"`
	Fix      string   `json:"fix"`
	RuledOut []string `json:"ruledOut,omitempty"`
	Steps    []Step   `json:"steps"`
}

// ProxyProber asks the API server to reach a backend from where the
// aggregator dials it: GET path through the service proxy of a Service or
// the pod proxy of one of its pods. It returns the HTTP status that the
// backend (or the proxy) answered and the start of the body.
type ProxyProber interface {
	ProbeService(ctx context.Context, namespace, service string, port int32, path string) (status int, body string, err error)
	ProbePod(ctx context.Context, namespace, pod string, port int32, path string) (status int, body string, err error)
}

// Evidence is where a diagnosis reads what a cluster.View does not hold.
// A nil field means that evidence is not read.
type Evidence struct {
	// Proxy sends probes through the API server's proxies.
	Proxy ProxyProber
	// Reader lists, uncached, the Namespaces stuck Terminating and
	// kube-system's ConfigMaps (the k0s worker-configs).
	Reader client.Reader
}

// maxEvidence and maxCause bound the text of a step's evidence and of the
// cause and fix; text from objects is made printable (shorten.Printable).
const (
	maxEvidence = 600
	maxCause    = 1024
)

// Diagnose walks the chain an expert checks for api: the aggregator's
// condition, the spec, the Service, its ready endpoints and their pods,
// requests through the API server's service and pod proxies, the findings
// of the rules on the state now (NetworkPolicies, caBundle against the
// serving certificate, GKE's firewall, ...), the aggregator's TLS error,
// konnectivity, an HTTP proxy in the API server's way, and the namespaces
// whose deletion the outage blocks. The most specific failing link that
// explains the outage is the cause; when none does, it says so.
func Diagnose(ctx context.Context, engine *policies.Engine, view cluster.View, ev Evidence, api *apiregv1.APIService) Diagnosis {
	v, err := Review(ctx, engine, view, policies.APIServiceKind, api.DeepCopy())
	return diagnose(ctx, engine.Config().ControlPlane, view, ev, api, v, err)
}

// Ranks of causes: when several links fail, the most specific explains
// the outage (a missing Service explains a refused connection, not the
// other way round).
const (
	rankStructure = iota // the Service, its namespace, its endpoints
	rankRule             // a rule's finding on the state now
	rankTLS              // the aggregator's TLS check, the network path working
	rankPath             // konnectivity, an HTTP proxy
	rankProbe            // what the API server's proxies met
	rankMessage          // the aggregator's own error, read
)

// diagnosis is a Diagnosis being built.
type diagnosis struct {
	Diagnosis
	rank int
}

func (d *diagnosis) add(name string, o Outcome, format string, args ...any) {
	d.Steps = append(d.Steps, Step{Name: name, Outcome: o, Evidence: shorten.Printable(fmt.Sprintf(format, args...), maxEvidence)})
}

// cause proposes a cause; the lowest rank, then the first, is kept. An
// Available APIService has none.
func (d *diagnosis) cause(rank int, key, c, fix string) {
	if d.Available || (d.Cause != "" && d.rank <= rank) {
		return
	}
	d.rank, d.CauseKey, d.Cause, d.Fix = rank, key, shorten.Printable(c, maxCause), shorten.Printable(fix, maxCause)
}

// diagnose is Diagnose with the rules' verdict on api already made (the
// audit has just reviewed it).
func diagnose(ctx context.Context, cp policies.ControlPlane, view cluster.View, ev Evidence, api *apiregv1.APIService, v Verdict, reviewErr error) Diagnosis {
	d := &diagnosis{Diagnosis: Diagnosis{APIService: api.Name}}

	// 1. The aggregator's own verdict.
	cond := availableCondition(api)
	message := ""
	switch {
	case cond == nil:
		d.add("aggregator", StepUnknown, "no Available condition yet")
	case cond.Status == apiregv1.ConditionTrue:
		d.Available = true
		d.add("aggregator", StepOK, "Available=True since %s", cond.LastTransitionTime.Format(time.RFC3339))
	default:
		message = cond.Message
		d.add("aggregator", StepFailed, "Available=%s (%s) since %s: %s", cond.Status, cond.Reason, cond.LastTransitionTime.Format(time.RFC3339), cond.Message)
	}

	// 2. The spec.
	svcRef := api.Spec.Service
	if svcRef == nil {
		d.add("spec", StepOK, "local APIService: served by the API server itself")
		return d.Diagnosis
	}
	port := int32(443)
	if svcRef.Port != nil {
		port = *svcRef.Port
	}
	trust := fmt.Sprintf("caBundle of %d bytes", len(api.Spec.CABundle))
	if api.Spec.InsecureSkipTLSVerify {
		trust = "insecureSkipTLSVerify: true"
	}
	d.add("spec", StepOK, "Service %s/%s port %d, %s", svcRef.Namespace, svcRef.Name, port, trust)

	// 3. The Service, and who installed it.
	svc := d.service(ctx, view, api, port)
	var targets []podTarget
	if svc != nil {
		d.ownership(api, svc)
		// 4. Ready endpoints and their pods.
		targets = d.endpoints(ctx, view, svc, port)
	}

	// 5. The API server's own way to the backend.
	probes := d.probes(ctx, ev.Proxy, api, svc, port, targets)

	// 6. What the rules find in the state now.
	// The aggregator's message carries its own dial error, or the status
	// the backend answered: a symptom, as a probe's.
	said := classifyMessage(api, message)
	d.rules(v, reviewErr, symptoms(said, probes))

	// 7-9. TLS, konnectivity, an HTTP proxy: read from the aggregator's
	// error and the cluster.
	d.tls(api, message, probes)
	d.konnectivity(ctx, cp, view, ev.Reader, message)
	d.httpProxy(message)

	// 10. What the outage blocks.
	d.terminating(ctx, ev.Reader, api)

	// The aggregator's message carries its own dial error: a network cause
	// read there is evidence, not a guess.
	if !d.Available && cond != nil {
		if said.cause != "" {
			d.cause(rankMessage, said.key, said.cause+" (the aggregator's own error)", said.fix)
		}
	}

	if !d.Available && d.Cause == "" {
		d.CauseKey, d.Cause = "unknown", "the evidence does not settle it"
		if cond != nil {
			d.Fix = shorten.Printable("read the aggregator's message: "+cond.Message, maxCause)
		}
		for _, s := range d.Steps {
			if s.Outcome == StepOK {
				d.RuledOut = append(d.RuledOut, s.Name+": "+s.Evidence)
			}
		}
	}
	return d.Diagnosis
}

// service is step 3: the Service exists, or its namespace is gone.
func (d *diagnosis) service(ctx context.Context, view cluster.View, api *apiregv1.APIService, port int32) *corev1.Service {
	ref := api.Spec.Service
	svc, err := view.Service(ctx, ref.Namespace, ref.Name)
	switch {
	case apierrors.IsNotFound(err):
		if _, nsErr := view.Namespace(ctx, ref.Namespace); apierrors.IsNotFound(nsErr) {
			d.add("service", StepFailed, "namespace %s does not exist", ref.Namespace)
			d.cause(rankStructure, "namespace-gone", fmt.Sprintf("the backend's namespace %s is gone: the APIService is stale", ref.Namespace),
				"kubectl delete apiservice "+api.Name)
		} else {
			d.add("service", StepFailed, "Service %s/%s does not exist", ref.Namespace, ref.Name)
			d.cause(rankStructure, "service-missing", fmt.Sprintf("Service %s/%s does not exist", ref.Namespace, ref.Name),
				"reinstall the adapter that serves "+api.Spec.Group+", or delete the stale APIService: kubectl delete apiservice "+api.Name)
		}
		return nil
	case err != nil:
		d.add("service", StepUnknown, "reading Service %s/%s: %v", ref.Namespace, ref.Name, err)
		return nil
	}
	d.add("service", StepOK, "%s", describeService(svc, port))
	return svc
}

// ownership says when the APIService and its Service come from different
// installations: two Helm releases, or a release whose APIService points
// into another release's namespace.
func (d *diagnosis) ownership(api *apiregv1.APIService, svc *corev1.Service) {
	if other := otherRelease(api.Annotations, svc.Annotations, svc.Namespace); other != "" {
		d.add("ownership", StepFailed, "%s", other)
	}
}

// endpoints is step 4: the Service's ready endpoints and the pods behind
// them. It returns the pods to probe.
func (d *diagnosis) endpoints(ctx context.Context, view cluster.View, svc *corev1.Service, port int32) []podTarget {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		d.add("endpoints", StepOK, "ExternalName %s: no endpoints to check", svc.Spec.ExternalName)
		return nil
	}
	slices, err := view.EndpointSlices(ctx, svc.Namespace, svc.Name)
	if err != nil {
		d.add("endpoints", StepUnknown, "reading EndpointSlices: %v", err)
		return nil
	}
	targets, ready, total := endpointTargets(slices, svc, port)
	if ready == 0 {
		d.add("endpoints", StepFailed, "%d endpoints, none ready", total)
		d.cause(rankStructure, "no-endpoints", fmt.Sprintf("Service %s/%s has no ready endpoint", svc.Namespace, svc.Name),
			fmt.Sprintf("kubectl -n %s get pods -l %s   # start the adapter, or fix the Service's selector", svc.Namespace, selectorString(svc.Spec.Selector)))
		return nil
	}
	d.add("endpoints", StepOK, "%d of %d endpoints ready", ready, total)
	pods, err := view.Pods(ctx, svc.Namespace, labels.Everything())
	if err != nil {
		d.add("pods", StepUnknown, "reading pods: %v", err)
		return targets
	}
	byName := map[string]*corev1.Pod{}
	for _, p := range pods {
		byName[p.Name] = p
	}
	var lines []string
	for i := range targets {
		t := &targets[i]
		t.pod = byName[t.name]
		if len(lines) < maxPodsShown {
			lines = append(lines, t.describe())
		}
	}
	if more := len(targets) - len(lines); more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more", more))
	}
	d.add("pods", StepOK, "%s", strings.Join(lines, "; "))
	return targets
}

// maxPodsShown and maxPodProbes bound the pods a diagnosis lists and
// probes.
const (
	maxPodsShown = 5
	maxPodProbes = 5
)

// podTarget is a ready endpoint: the pod behind it and the port to dial.
type podTarget struct {
	name, addr, node string
	port             int32
	pod              *corev1.Pod // nil when not found
}

func (t podTarget) describe() string {
	where := net.JoinHostPort(t.addr, strconv.Itoa(int(t.port)))
	if t.pod == nil {
		if t.name == "" {
			return where + " (no pod)"
		}
		return fmt.Sprintf("%s %s (pod not found)", t.name, where)
	}
	p := t.pod
	ready := "not ready"
	if podReady(p) {
		ready = "ready"
	}
	var restarts int32
	for _, c := range p.Status.ContainerStatuses {
		restarts += c.RestartCount
	}
	s := fmt.Sprintf("%s %s %s %s, %d restarts", p.Name, where, p.Status.Phase, ready, restarts)
	if node := p.Spec.NodeName; node != "" {
		s += ", node " + node
	}
	if p.Spec.HostNetwork {
		s += ", hostNetwork"
	}
	return s
}

// podReady reports whether a pod's Ready condition is True.
func podReady(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}

// endpointTargets are the ready endpoints of a Service's port, with the
// port number the EndpointSlices give it.
func endpointTargets(slices []*discoveryv1.EndpointSlice, svc *corev1.Service, port int32) (targets []podTarget, ready, total int) {
	portName := ""
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			portName = p.Name
		}
	}
	for _, s := range slices {
		num := int32(0)
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name == nil && portName == "" || p.Name != nil && *p.Name == portName) {
				num = *p.Port
			}
		}
		for _, e := range s.Endpoints {
			total++
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			ready++
			t := podTarget{port: num}
			if len(e.Addresses) > 0 {
				t.addr = e.Addresses[0]
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				t.name = e.TargetRef.Name
			}
			if e.NodeName != nil {
				t.node = *e.NodeName
			}
			targets = append(targets, t)
		}
	}
	return targets, ready, total
}

// probeResult is what one request through the API server's proxy met.
type probeResult struct {
	who string // "service" or the pod's name
	probe
}

// probes is step 5: GET /apis/<group>/<version> through the Service's
// proxy and the proxy of each ready pod (at most maxPodProbes), all at
// once, each bounded by the prober's timeout.
func (d *diagnosis) probes(ctx context.Context, proxy ProxyProber, api *apiregv1.APIService, svc *corev1.Service, port int32, targets []podTarget) []probeResult {
	switch {
	case svc == nil || proxy == nil:
		return nil
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		d.add("proxy", StepSkipped, "the API server's service proxy does not dial ExternalName Services; the aggregator's message is the evidence")
		return nil
	}
	path := "/apis/" + api.Spec.Group + "/" + api.Spec.Version
	var pods []podTarget
	for _, t := range targets {
		if t.name != "" && t.port != 0 && len(pods) < maxPodProbes {
			pods = append(pods, t)
		}
	}
	results := make([]probeResult, 1+len(pods))
	var wg sync.WaitGroup
	wg.Go(func() {
		status, body, err := proxy.ProbeService(ctx, svc.Namespace, svc.Name, port, path)
		results[0] = probeResult{"service", classifyProbe(api, status, body, err)}
	})
	for i, t := range pods {
		wg.Go(func() {
			status, body, err := proxy.ProbePod(ctx, svc.Namespace, t.name, t.port, path)
			results[1+i] = probeResult{"pod " + t.name, classifyProbe(api, status, body, err)}
		})
	}
	wg.Wait()

	outcome := StepOK
	var lines []string
	var failed, answered []probeResult
	for _, r := range results {
		lines = append(lines, r.who+": "+r.what)
		if r.outcome != StepOK {
			outcome = r.outcome
		}
		if r.who == "service" {
			continue
		}
		if r.cause != "" {
			failed = append(failed, r)
		} else if r.outcome == StepOK {
			answered = append(answered, r)
		}
	}
	d.add("proxy", outcome, "GET %s through the API server: %s", path, strings.Join(lines, "; "))

	switch {
	case len(failed) > 0 && len(answered) > 0:
		var names []string
		for _, r := range failed {
			names = append(names, strings.TrimPrefix(r.who, "pod "))
		}
		d.cause(rankProbe, "pod-unreachable", fmt.Sprintf("%s: %s, while other pods answer: the aggregator fails whenever it is sent there",
			strings.Join(names, ", "), failed[0].what),
			fmt.Sprintf("kubectl -n %s logs %s   # then delete the pod, or fix what keeps it from answering", svc.Namespace, names[0]))
	case len(failed) > 0:
		d.cause(rankProbe, failed[0].key, failed[0].cause, failed[0].fix)
	case results[0].cause != "":
		d.cause(rankProbe, results[0].key, results[0].cause, results[0].fix)
	}
	return results
}

// rules is step 6: the rules' findings on the state now. A finding whose
// rule explains an outage is a cause; one that explains only a symptom
// (GKE's firewall a timeout, missing auth delegation a 401/403) only when
// that symptom was seen.
func (d *diagnosis) rules(v Verdict, reviewErr error, seen map[string]bool) {
	switch {
	case reviewErr != nil:
		d.add("rules", StepUnknown, "%v", reviewErr)
		return
	case len(v.Findings) == 0:
		d.add("rules", StepOK, "%d rules found nothing", len(v.Passed))
		return
	}
	var lines []string
	outcome := StepOK // findings that do not explain an outage (insecureSkipTLSVerify, an expiry ahead) are listed, not failed
	for _, f := range v.Findings {
		lines = append(lines, "["+f.Rule+"] "+f.Message)
		if slices.Contains(causeRules, f.Rule) && !f.Ahead {
			outcome = StepFailed
		}
	}
	d.add("rules", outcome, "%s", strings.Join(lines, "; "))
	for _, rule := range causeRules {
		if symptom, ok := ruleSymptom[rule]; ok && !seen[symptom] {
			continue
		}
		for _, f := range v.Findings {
			if f.Rule == rule && !f.Ahead {
				d.cause(rankRule, f.Rule, f.Message, f.Fix)
			}
		}
	}
}

// ruleSymptom is, for rules whose finding explains only one way of
// failing, the probe key of that way.
var ruleSymptom = map[string]string{
	"apiservice-firewall-port":   "timeout",   // GKE's firewall drops packets
	"apiservice-auth-delegation": "forbidden", // the adapter answers 401/403
}

// symptoms are the probe keys of what the aggregator's message (said)
// and the probes through the API server's proxies show.
func symptoms(said probe, probes []probeResult) map[string]bool {
	seen := map[string]bool{said.key: true}
	for _, r := range probes {
		seen[r.key] = true
	}
	delete(seen, "")
	return seen
}

// classifyMessage classifies the aggregator's message as a probe: its dial
// error, or the status a backend answered.
func classifyMessage(api *apiregv1.APIService, message string) probe {
	status := 0
	if m := badStatus.FindStringSubmatch(message); m != nil {
		status, _ = strconv.Atoi(m[1])
	}
	return classifyProbe(api, status, "", errors.New(message))
}

// badStatus finds the HTTP status in the aggregator's message about a
// backend that answered: "... bad status from https://...: 403".
var badStatus = regexp.MustCompile(`bad status from \S+: (\d{3})`)

// causeRules are the rules whose finding explains an outage, most specific
// first.
var causeRules = []string{
	"apiservice-backend-missing", "apiservice-port-mismatch", "apiservice-cabundle-mismatch",
	"apiservice-serving-cert-san", "apiservice-cabundle-invalid", "apiservice-unreachable",
	firewallRule, "apiservice-no-ready-endpoints", "apiservice-auth-delegation",
}

// firewallRule is the rule about GKE's control-plane firewall.
const firewallRule = "apiservice-firewall-port"

// probe is what a request through the API server's proxy met, classified.
type probe struct {
	outcome Outcome
	what    string // what happened, short
	// key, cause and fix name the cause it shows; "" when it shows none.
	key, cause, fix string
	// reached is set when the backend itself answered (any HTTP status
	// that is not the proxy's own error).
	reached bool
}

// classifyProbe tells network failures (refused, timeout, no route) from
// HTTP ones (401/403: auth delegation; 404: the group is not served) and
// from the proxy's own refusals.
func classifyProbe(api *apiregv1.APIService, status int, body string, err error) probe {
	msg := strings.ToLower(body)
	if err != nil {
		msg = strings.ToLower(err.Error() + " " + body)
	}
	switch {
	case strings.Contains(msg, "connection refused"):
		return probe{outcome: StepFailed, what: "connection refused", key: "connection-refused",
			cause: "connection refused: nothing listens on the backend's port, the adapter is down or listens elsewhere",
			fix:   "check the adapter's logs and that its container port matches the Service's targetPort"}
	case strings.Contains(msg, "no route to host") || strings.Contains(msg, "network is unreachable"):
		return probe{outcome: StepFailed, what: "no route to host", key: "no-route",
			cause: "no route from the API server to the backend: the control plane is not on the pod network (a managed or external control plane with an overlay CNI)",
			fix:   "run the adapter with hostNetwork: true (on a port free on every node), or give the control plane a way into the pod network (konnectivity)"}
	case strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline exceeded"):
		return probe{outcome: StepFailed, what: "timed out", key: "timeout",
			cause: "timed out: the API server cannot reach the backend in time, the adapter hangs or the network drops the traffic",
			fix:   "check the adapter, NetworkPolicies in front of it, and firewalls between the control plane and the pods"}
	case strings.Contains(msg, "no endpoints available"):
		return probe{outcome: StepFailed, what: "no endpoints available (the proxy's answer)"}
	case status == http.StatusBadRequest && strings.Contains(msg, "address not allowed"):
		return probe{outcome: StepUnknown, what: "the API server does not proxy to this address (loopback or link-local)"}
	case status == http.StatusServiceUnavailable && strings.Contains(msg, "error trying to reach"):
		return probe{outcome: StepFailed, what: "the proxy cannot reach it: " + shorten.String(body, 160)}
	case err != nil && status == 0:
		return probe{outcome: StepUnknown, what: shorten.String(err.Error(), 200)}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return probe{outcome: StepFailed, what: fmt.Sprintf("HTTP %d", status), key: "forbidden", reached: true,
			cause: "the adapter refuses the API server's requests: it cannot authenticate them (auth delegation)",
			fix:   "bind the adapter's ServiceAccount to system:auth-delegator and, in kube-system, extension-apiserver-authentication-reader"}
	case status == http.StatusNotFound:
		gv := ""
		if api != nil {
			gv = api.Spec.Group + "/" + api.Spec.Version
		}
		return probe{outcome: StepFailed, what: "HTTP 404", key: "not-served", reached: true,
			cause: fmt.Sprintf("the backend does not serve %s: another program answers on that Service", gv),
			fix:   "point the APIService at the adapter that serves the group"}
	case status >= 200 && status < 300:
		return probe{outcome: StepOK, what: fmt.Sprintf("HTTP %d", status), reached: true}
	}
	return probe{outcome: StepFailed, what: fmt.Sprintf("HTTP %d: %s", status, shorten.String(body, 120)), reached: status != 0}
}

// Available reports whether the aggregator's Available condition of api is
// True.
func Available(api *apiregv1.APIService) bool {
	c := availableCondition(api)
	return c != nil && c.Status == apiregv1.ConditionTrue
}

func availableCondition(api *apiregv1.APIService) *apiregv1.APIServiceCondition {
	for i := range api.Status.Conditions {
		if api.Status.Conditions[i].Type == apiregv1.Available {
			return &api.Status.Conditions[i]
		}
	}
	return nil
}

// Helm's release annotations, which say which installation an object
// belongs to.
const (
	helmReleaseName      = "meta.helm.sh/release-name"
	helmReleaseNamespace = "meta.helm.sh/release-namespace"
)

// otherRelease says when the APIService and its Service belong to
// different installations: two Helm releases (KEDA twice, or
// prometheus-adapter and metrics-server claiming one APIService name, the
// last one installed having taken it over), or an APIService of a release
// pointing at a Service in another namespace than the release's. "" when
// they agree or the APIService has no release.
func otherRelease(apiAnn, svcAnn map[string]string, svcNamespace string) string {
	release := func(a map[string]string) string {
		if a[helmReleaseName] == "" {
			return ""
		}
		return a[helmReleaseNamespace] + "/" + a[helmReleaseName]
	}
	ar, sr := release(apiAnn), release(svcAnn)
	switch {
	case ar == "" || ar == sr:
		return ""
	case sr != "":
		return fmt.Sprintf("the APIService belongs to Helm release %s, its Service to %s: two installations claim this APIService", ar, sr)
	case apiAnn[helmReleaseNamespace] != "" && apiAnn[helmReleaseNamespace] != svcNamespace:
		return fmt.Sprintf("the APIService belongs to Helm release %s, but its Service is in namespace %s: another installation's", ar, svcNamespace)
	}
	return ""
}

// describeService says how the Service maps the APIService's port.
func describeService(svc *corev1.Service, port int32) string {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return fmt.Sprintf("type ExternalName -> %s", svc.Spec.ExternalName)
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			return fmt.Sprintf("port %d -> targetPort %s, selector %s", port, p.TargetPort.String(), selectorString(svc.Spec.Selector))
		}
	}
	return fmt.Sprintf("no port %d (ports: %d)", port, len(svc.Spec.Ports))
}

// selectorString renders a Service selector as kubectl's -l takes it.
func selectorString(sel map[string]string) string {
	if len(sel) == 0 {
		return "(none)"
	}
	return labels.SelectorFromSet(sel).String()
}
