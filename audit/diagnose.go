package audit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

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
	// CauseKey names the kind of cause, for metrics: "service-missing",
	// "no-endpoints", a rule's name, "connection-refused", "timeout",
	// "forbidden", "not-served", or "unknown".
	CauseKey string   `json:"causeKey"`
	Fix      string   `json:"fix"`
	RuledOut []string `json:"ruledOut,omitempty"`
	Steps    []Step   `json:"steps"`
}

// ProxyProber asks the API server to reach a Service from where the
// aggregator dials it: GET path through the service proxy. It returns the
// HTTP status the backend (or the proxy) answered and the start of the body.
type ProxyProber interface {
	ProbeService(ctx context.Context, namespace, service string, port int32, path string) (status int, body string, err error)
}

// maxEvidence and maxCause bound the text of a step's evidence and of the
// cause and fix; text from objects is made printable (shorten.Printable).
const (
	maxEvidence = 400
	maxCause    = 1024
)

// Diagnose walks the chain an expert checks for api: the aggregator's
// condition, the spec, the Service, its ready endpoints, the findings of the
// rules on the state now (caBundle against the serving certificate,
// NetworkPolicies, konnectivity, ...), and a request through the API
// server's service proxy. The first failing link that explains the outage
// is the cause; it never guesses.
func Diagnose(ctx context.Context, engine *policies.Engine, view cluster.View, proxy ProxyProber, api *apiregv1.APIService) Diagnosis {
	v, err := Review(ctx, engine, view, policies.APIServiceKind, api.DeepCopy())
	return diagnose(ctx, view, proxy, api, v, err)
}

// diagnose is Diagnose with the rules' verdict on api already made (the
// audit has just reviewed it).
func diagnose(ctx context.Context, view cluster.View, proxy ProxyProber, api *apiregv1.APIService, v Verdict, reviewErr error) Diagnosis {
	d := Diagnosis{APIService: api.Name}
	add := func(name string, o Outcome, format string, args ...any) {
		d.Steps = append(d.Steps, Step{Name: name, Outcome: o, Evidence: shorten.Printable(fmt.Sprintf(format, args...), maxEvidence)})
	}
	cause := func(key, c, fix string) {
		if d.Cause == "" {
			d.CauseKey, d.Cause, d.Fix = key, shorten.Printable(c, maxCause), shorten.Printable(fix, maxCause)
		}
	}

	// 1. The aggregator's own verdict.
	cond := availableCondition(api)
	switch {
	case cond == nil:
		add("aggregator", StepUnknown, "no Available condition yet")
	case cond.Status == apiregv1.ConditionTrue:
		d.Available = true
		add("aggregator", StepOK, "Available=True since %s", cond.LastTransitionTime.Format(time.RFC3339))
	default:
		add("aggregator", StepFailed, "Available=%s (%s) since %s: %s", cond.Status, cond.Reason, cond.LastTransitionTime.Format(time.RFC3339), cond.Message)
	}

	// 2. The spec.
	svcRef := api.Spec.Service
	if svcRef == nil {
		add("spec", StepOK, "local APIService: served by the API server itself")
		return d
	}
	port := int32(443)
	if svcRef.Port != nil {
		port = *svcRef.Port
	}
	trust := fmt.Sprintf("caBundle of %d bytes", len(api.Spec.CABundle))
	if api.Spec.InsecureSkipTLSVerify {
		trust = "insecureSkipTLSVerify: true"
	}
	add("spec", StepOK, "Service %s/%s port %d, %s", svcRef.Namespace, svcRef.Name, port, trust)

	// 3. The Service.
	svc, err := view.Service(ctx, svcRef.Namespace, svcRef.Name)
	switch {
	case apierrors.IsNotFound(err):
		if _, nsErr := view.Namespace(ctx, svcRef.Namespace); apierrors.IsNotFound(nsErr) {
			add("service", StepFailed, "namespace %s does not exist", svcRef.Namespace)
			cause("namespace-gone", fmt.Sprintf("the backend's namespace %s is gone: the APIService is stale", svcRef.Namespace),
				"kubectl delete apiservice "+api.Name)
		} else {
			add("service", StepFailed, "Service %s/%s does not exist", svcRef.Namespace, svcRef.Name)
			cause("service-missing", fmt.Sprintf("Service %s/%s does not exist", svcRef.Namespace, svcRef.Name),
				"reinstall the adapter that serves "+api.Spec.Group+", or delete the stale APIService: kubectl delete apiservice "+api.Name)
		}
	case err != nil:
		add("service", StepUnknown, "reading Service %s/%s: %v", svcRef.Namespace, svcRef.Name, err)
	default:
		add("service", StepOK, "%s", describeService(svc, port))
		if other := otherRelease(api.Annotations, svc.Annotations); other != "" {
			add("ownership", StepFailed, "%s", other)
		}
		// 4. Ready endpoints.
		if ready, total, err := readyEndpoints(ctx, view, svcRef.Namespace, svcRef.Name); err != nil {
			add("endpoints", StepUnknown, "reading EndpointSlices: %v", err)
		} else if svc.Spec.ExternalName != "" {
			add("endpoints", StepOK, "ExternalName %s: no endpoints to check", svc.Spec.ExternalName)
		} else if ready == 0 {
			add("endpoints", StepFailed, "%d endpoints, none ready", total)
			cause("no-endpoints", fmt.Sprintf("Service %s/%s has no ready endpoint", svcRef.Namespace, svcRef.Name),
				fmt.Sprintf("kubectl -n %s get pods -l %s   # start the adapter, or fix the Service's selector", svcRef.Namespace, selectorString(svc.Spec.Selector)))
		} else {
			add("endpoints", StepOK, "%d of %d endpoints ready", ready, total)
		}
	}

	// 5. What the rules find in the state now.
	if reviewErr != nil {
		add("rules", StepUnknown, "%v", reviewErr)
	} else if len(v.Findings) == 0 {
		add("rules", StepOK, "%d rules found nothing", len(v.Passed))
	} else {
		var lines []string
		outcome := StepOK // findings that do not explain an outage (insecureSkipTLSVerify) are listed, not failed
		for _, f := range v.Findings {
			lines = append(lines, "["+f.Rule+"] "+f.Message)
			if slices.Contains(causeRules, f.Rule) {
				outcome = StepFailed
			}
		}
		add("rules", outcome, "%s", strings.Join(lines, "; "))
		for _, rule := range causeRules {
			for _, f := range v.Findings {
				if f.Rule == rule && !d.Available {
					cause(f.Rule, f.Message, f.Fix)
				}
			}
		}
	}

	// 6. The API server's own way to the backend.
	switch {
	case svc != nil && svc.Spec.Type == corev1.ServiceTypeExternalName:
		add("proxy", StepSkipped, "the API server's service proxy does not dial ExternalName Services; the aggregator's message is the evidence")
	case svc != nil && proxy != nil:
		path := "/apis/" + api.Spec.Group + "/" + api.Spec.Version
		status, body, err := proxy.ProbeService(ctx, svcRef.Namespace, svcRef.Name, port, path)
		o, what, c, fix := classifyProbe(api, status, body, err)
		add("proxy", o, "GET %s through the service proxy: %s", path, what)
		if c != "" && !d.Available {
			cause(probeKey(c), c, fix)
		}
	}

	// The aggregator's message carries its own dial error: a network cause
	// read there is evidence, not a guess.
	if !d.Available && d.Cause == "" && cond != nil {
		status := 0
		if m := badStatus.FindStringSubmatch(cond.Message); m != nil {
			status, _ = strconv.Atoi(m[1])
		}
		if _, _, c, fix := classifyProbe(api, status, "", errors.New(cond.Message)); c != "" {
			cause(probeKey(c), c+" (the aggregator's own error)", fix)
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
	return d
}

// badStatus finds the HTTP status in the aggregator's message about a
// backend that answered: "... bad status from https://...: 403".
var badStatus = regexp.MustCompile(`bad status from \S+: (\d{3})`)

// causeRules are the rules whose finding explains an outage, most specific
// first.
var causeRules = []string{
	"apiservice-backend-missing", "apiservice-port-mismatch", "apiservice-cabundle-mismatch",
	"apiservice-serving-cert-san", "apiservice-cabundle-invalid", "apiservice-unreachable",
	"apiservice-firewall-port", "apiservice-no-ready-endpoints", "apiservice-auth-delegation",
}

// probeKey is the CauseKey of a cause classifyProbe gave.
func probeKey(cause string) string {
	switch {
	case strings.HasPrefix(cause, "connection refused"):
		return "connection-refused"
	case strings.HasPrefix(cause, "timed out"):
		return "timeout"
	case strings.Contains(cause, "auth delegation"):
		return "forbidden"
	case strings.Contains(cause, "does not serve"):
		return "not-served"
	}
	return "unknown"
}

// classifyProbe tells network failures (refused, timeout) from HTTP ones
// (401/403: auth delegation; 404: the group is not served).
func classifyProbe(api *apiregv1.APIService, status int, body string, err error) (o Outcome, what, cause, fix string) {
	msg := strings.ToLower(body)
	if err != nil {
		msg = strings.ToLower(err.Error() + " " + body)
	}
	switch {
	case strings.Contains(msg, "connection refused"):
		return StepFailed, "connection refused", "connection refused: nothing listens on the backend's port, the adapter is down or listens elsewhere",
			"check the adapter's logs and that its container port matches the Service's targetPort"
	case strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline exceeded"):
		return StepFailed, "timed out", "timed out: the API server cannot reach the backend in time, the adapter hangs or the network drops the traffic",
			"check the adapter, NetworkPolicies in front of it, and firewalls between the control plane and the pods"
	case status == 401 || status == 403:
		return StepFailed, fmt.Sprintf("HTTP %d", status), "the adapter refuses the API server's requests: it cannot authenticate them (auth delegation)",
			"bind the adapter's ServiceAccount to system:auth-delegator and, in kube-system, extension-apiserver-authentication-reader"
	case status == 404:
		return StepFailed, "HTTP 404", fmt.Sprintf("the backend does not serve %s/%s: another program answers on that Service", api.Spec.Group, api.Spec.Version),
			"point the APIService at the adapter that serves the group"
	case err != nil:
		return StepUnknown, shorten.String(err.Error(), 200), "", ""
	case status >= 200 && status < 300:
		return StepOK, fmt.Sprintf("HTTP %d", status), "", ""
	}
	return StepFailed, fmt.Sprintf("HTTP %d: %s", status, shorten.String(body, 120)), "", ""
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
// different Helm releases: two installations (KEDA twice, or
// prometheus-adapter and metrics-server) claiming one APIService name, the
// last one installed having taken it over. "" when they agree or either
// has no release.
func otherRelease(apiAnn, svcAnn map[string]string) string {
	release := func(a map[string]string) string {
		if a[helmReleaseName] == "" {
			return ""
		}
		return a[helmReleaseNamespace] + "/" + a[helmReleaseName]
	}
	ar, sr := release(apiAnn), release(svcAnn)
	if ar == "" || sr == "" || ar == sr {
		return ""
	}
	return fmt.Sprintf("the APIService belongs to Helm release %s, its Service to %s: two installations claim this APIService", ar, sr)
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

// readyEndpoints counts the ready endpoints of a Service's EndpointSlices.
func readyEndpoints(ctx context.Context, view cluster.View, ns, name string) (ready, total int, err error) {
	slices, err := view.EndpointSlices(ctx, ns, name)
	if err != nil {
		return 0, 0, err
	}
	for _, s := range slices {
		for _, e := range s.Endpoints {
			total++
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready++
			}
		}
	}
	return ready, total, nil
}

// selectorString renders a Service selector as kubectl's -l takes it.
func selectorString(sel map[string]string) string {
	if len(sel) == 0 {
		return "(none)"
	}
	return labels.SelectorFromSet(sel).String()
}
