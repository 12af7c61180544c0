package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// TestDiagnoseStatic: causes a test API server cannot produce for real,
// on a static view: a default-deny in front of metrics-server names the
// NetworkPolicy; with the fix in force nothing explains an outage, and
// diagnose says so, listing what it ruled out.
func TestDiagnoseStatic(t *testing.T) {
	const dir = "../examples/networkpolicy-default-deny/"
	diag := func(files ...string) Diagnosis {
		t.Helper()
		view, engine := loadExample(t, files...)
		api, err := view.APIService(t.Context(), "v1beta1.metrics.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		api = api.DeepCopy()
		api.Status.Conditions = []apiregv1.APIServiceCondition{{Type: apiregv1.Available, Status: apiregv1.ConditionFalse,
			Reason: "FailedDiscoveryCheck", Message: "failing or missing response from https://10.244.0.15:10250/apis/metrics.k8s.io/v1beta1: context deadline exceeded"}}
		return Diagnose(t.Context(), engine, view, Evidence{}, api)
	}
	d := diag(dir+"backend.yaml", dir+"broken.yaml")
	if d.Available || !strings.Contains(d.Cause, "cannot reach pod kube-system/metrics-server-demo on 10250/TCP") || !strings.Contains(d.Fix, "ipBlock") {
		t.Errorf("default-deny: cause %q, fix %q", d.Cause, d.Fix)
	}
	d = diag(dir+"backend.yaml", dir+"fixed.yaml")
	// The aggregator's timeout is all that is left: it is reported as its
	// own error, not as a policy.
	if !strings.HasPrefix(d.Cause, "timed out") || !strings.Contains(d.Cause, "the aggregator's own error") {
		t.Errorf("with the fix: cause %q", d.Cause)
	}
	for _, s := range d.Steps {
		if s.Name == "rules" && s.Outcome != StepOK {
			t.Errorf("with the fix, the rules step is %s: %s", s.Outcome, s.Evidence)
		}
	}
}

func TestClassifyProbe(t *testing.T) {
	api := &apiregv1.APIService{Spec: apiregv1.APIServiceSpec{Group: "metrics.k8s.io", Version: "v1beta1"}}
	tests := []struct {
		name    string
		status  int
		body    string
		err     error
		outcome Outcome
		key     string
		reached bool
	}{
		{"ok", 200, `{"kind":"APIResourceList"}`, nil, StepOK, "", true},
		{"refused", 503, `error trying to reach service: dial tcp 10.0.0.1:443: connect: connection refused`, nil, StepFailed, "connection-refused", false},
		{"timeout", 503, `error trying to reach service: dial tcp 10.0.0.1:443: i/o timeout`, nil, StepFailed, "timeout", false},
		{"no route", 503, `error trying to reach service: dial tcp 10.244.1.7:6443: connect: no route to host`, nil, StepFailed, "no-route", false},
		{"client deadline", 0, "", errors.New("context deadline exceeded"), StepFailed, "timeout", false},
		{"forbidden", 403, `forbidden`, nil, StepFailed, "forbidden", true},
		{"unauthorized", 401, ``, nil, StepFailed, "forbidden", true},
		{"wrong group", 404, `404 page not found`, nil, StepFailed, "not-served", true},
		{"the proxy has no endpoint", 503, `no endpoints available for service "metrics-server"`, nil, StepFailed, "", false},
		{"the proxy refuses the address", 400, `address not allowed`, nil, StepUnknown, "", false},
		{"the backend fails", 500, `boom`, nil, StepFailed, "", true},
		{"no answer", 0, "", errors.New("EOF"), StepUnknown, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := classifyProbe(api, tt.status, tt.body, tt.err)
			if p.outcome != tt.outcome || p.key != tt.key || p.reached != tt.reached || (p.key != "") != (p.cause != "") || (p.cause != "") != (p.fix != "") {
				t.Errorf("classifyProbe() = %+v; want %s, key %q, reached %v", p, tt.outcome, tt.key, tt.reached)
			}
		})
	}
}

func TestOtherRelease(t *testing.T) {
	rel := func(ns, name string) map[string]string {
		return map[string]string{helmReleaseName: name, helmReleaseNamespace: ns}
	}
	tests := []struct {
		name     string
		api, svc map[string]string
		svcNS    string
		want     string
	}{
		{"same release", rel("keda", "keda"), rel("keda", "keda"), "keda", ""},
		{"no release on the Service, same namespace", rel("keda", "keda"), nil, "keda", ""},
		{"no release on the APIService", nil, rel("keda", "keda"), "keda", ""},
		{"two installations", rel("keda", "keda"), rel("autoscaling", "keda"), "autoscaling", "APIService belongs to Helm release keda/keda, its Service to autoscaling/keda"},
		{"a Service in another release's namespace", rel("keda", "keda"), nil, "autoscaling", "its Service is in namespace autoscaling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := otherRelease(tt.api, tt.svc, tt.svcNS)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("otherRelease() = %q, want %q", got, tt.want)
			}
		})
	}
}

// kedaBackend is KEDA's metrics API server as its chart installs it, with
// its EndpointSlice: two ready pods on 6443.
const kedaBackend = `apiVersion: v1
kind: Namespace
metadata: {name: keda}
---
apiVersion: v1
kind: Service
metadata: {name: keda-operator-metrics-apiserver, namespace: keda}
spec:
  selector: {app: keda-operator-metrics-apiserver}
  ports: [{name: https, port: 443, targetPort: 6443}]
---
apiVersion: v1
kind: Pod
metadata: {name: keda-metrics-a, namespace: keda, labels: {app: keda-operator-metrics-apiserver}}
spec:
  nodeName: n1
  containers: [{name: server, image: keda, ports: [{containerPort: 6443}]}]
status:
  phase: Running
  podIP: 10.244.1.7
  conditions: [{type: Ready, status: "True"}]
  containerStatuses: [{name: server, restartCount: 4, ready: true, image: keda, imageID: keda}]
---
apiVersion: v1
kind: Pod
metadata: {name: keda-metrics-b, namespace: keda, labels: {app: keda-operator-metrics-apiserver}}
spec:
  nodeName: n2
  containers: [{name: server, image: keda, ports: [{containerPort: 6443}]}]
status:
  phase: Running
  podIP: 10.244.2.7
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: keda-operator-metrics-apiserver-x, namespace: keda, labels: {kubernetes.io/service-name: keda-operator-metrics-apiserver}}
addressType: IPv4
ports: [{name: https, port: 6443, protocol: TCP}]
endpoints:
- addresses: [10.244.1.7]
  conditions: {ready: true}
  nodeName: n1
  targetRef: {kind: Pod, namespace: keda, name: keda-metrics-a}
- addresses: [10.244.2.7]
  conditions: {ready: true}
  nodeName: n2
  targetRef: {kind: Pod, namespace: keda, name: keda-metrics-b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: keda-operator, namespace: keda}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{kind: ServiceAccount, name: keda-operator, namespace: keda}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: keda-auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: keda-operator, namespace: keda}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: keda-operator-metrics-apiserver, namespace: keda, port: 443}
`

// answers is a ProxyProber that answers from a table, by Service or pod
// name: the chain's logic on what the API server's proxies would say
// (test/e2e drives the real proxies).
type answers map[string]answer

type answer struct {
	status int
	body   string
	err    error
}

func (a answers) ProbeService(_ context.Context, _, name string, _ int32, _ string) (int, string, error) {
	return a.answer(name)
}

func (a answers) ProbePod(_ context.Context, _, name string, _ int32, _ string) (int, string, error) {
	return a.answer(name)
}

func (a answers) answer(name string) (int, string, error) {
	r := a[name]
	return r.status, r.body, r.err
}

// diagnoseStatic diagnoses KEDA's APIService in the static view of
// kedaBackend plus extra documents, with the aggregator's message.
func diagnoseStatic(t *testing.T, extra, message string, proxy ProxyProber) Diagnosis {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(file, []byte(kedaBackend+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	view, err := cluster.LoadStatic(file)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	api, err := view.APIService(t.Context(), "v1beta1.external.metrics.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	api = api.DeepCopy()
	api.Status.Conditions = []apiregv1.APIServiceCondition{{Type: apiregv1.Available, Status: apiregv1.ConditionFalse,
		Reason: "FailedDiscoveryCheck", Message: message}}
	return Diagnose(t.Context(), engine, view, Evidence{Proxy: proxy}, api)
}

// chain renders the steps, for failure messages and the test log.
func chain(d Diagnosis) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cause [%s] %s\nfix %s\n", d.CauseKey, d.Cause, d.Fix)
	for _, s := range d.Steps {
		fmt.Fprintf(&b, "  %-8s %-12s %s\n", s.Outcome, s.Name, s.Evidence)
	}
	return b.String()
}

func step(d Diagnosis, name string) (Step, bool) {
	for _, s := range d.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// TestDiagnoseCausesOnAStaticView: causes a test API server cannot produce
// for real, each named first with its fix, and the chain that shows it.
func TestDiagnoseCausesOnAStaticView(t *testing.T) {
	const failing = `failing or missing response from https://10.244.1.7:6443/apis/external.metrics.k8s.io/v1beta1: Get "https://10.244.1.7:6443/apis/external.metrics.k8s.io/v1beta1": `
	const gke = `
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {cloud.google.com/gke-nodepool: default-pool}}
`
	agents := func(ready string) string {
		return `
---
apiVersion: v1
kind: Pod
metadata: {name: konnectivity-agent-x, namespace: kube-system, labels: {k8s-app: konnectivity-agent}}
spec: {nodeName: n1, containers: [{name: agent, image: konnectivity-agent}]}
status:
  phase: Running
  conditions: [{type: Ready, status: "` + ready + `"}]
`
	}
	ok := answer{status: 200, body: `{"kind":"APIResourceList"}`}
	tests := []struct {
		name, extra, message string
		proxy                ProxyProber
		key                  string
		mentions             []string // in the cause or the fix
		failedStep           string
	}{
		{
			name: "GKE firewall drops the pod port", extra: gke, message: failing + "context deadline exceeded",
			key:        "apiservice-firewall-port",
			mentions:   []string{"gcloud compute firewall-rules create", "--allow tcp:6443"},
			failedStep: "rules",
		},
		{
			// On GKE, but the adapter refuses: the firewall is not the
			// cause, whatever the rule says.
			name: "GKE, the adapter down", extra: gke, message: failing + "dial tcp 10.244.1.7:6443: connect: connection refused",
			key: "connection-refused",
		},
		{
			name: "konnectivity agents not ready", extra: agents("False"), message: failing + "No agent available",
			key:        "konnectivity",
			mentions:   []string{"no konnectivity agent is ready", "kubectl -n kube-system logs -l k8s-app=konnectivity-agent"},
			failedStep: "konnectivity",
		},
		{
			name: "konnectivity agents ready, none connected", extra: agents("True"), message: failing + "No agent available",
			key:        "konnectivity",
			mentions:   []string{"none carries", "8132"},
			failedStep: "konnectivity",
		},
		{
			name: "No agent available and no agent", message: failing + "No agent available",
			key:        "konnectivity",
			mentions:   []string{"no agent runs"},
			failedStep: "konnectivity",
		},
		{
			// The fixture's pods run as keda/default, bound to neither role:
			// the rule finds it in every case above, and only here, where
			// the adapter answers 403, is it the cause.
			name: "auth delegation missing", message: "failing or missing response from https://10.244.1.7:6443/apis/external.metrics.k8s.io/v1beta1: bad status from https://10.244.1.7:6443/apis/external.metrics.k8s.io/v1beta1: 403",
			key:        "apiservice-auth-delegation",
			mentions:   []string{"system:auth-delegator", "extension-apiserver-authentication-reader"},
			failedStep: "rules",
		},
		{
			name:       "HTTP proxy in the API server's environment",
			message:    failing + "proxyconnect tcp: dial tcp 10.0.0.1:3128: connect: connection refused",
			key:        "http-proxy",
			mentions:   []string{"NO_PROXY"},
			failedStep: "http-proxy",
		},
		{
			name: "caBundle does not trust the serving certificate", message: failing + "tls: failed to verify certificate: x509: certificate signed by unknown authority",
			proxy:      answers{"keda-operator-metrics-apiserver": ok, "keda-metrics-a": ok, "keda-metrics-b": ok},
			key:        "cabundle-untrusted",
			mentions:   []string{"caBundle", "inject-ca-from", "kubectl patch apiservice v1beta1.external.metrics.k8s.io"},
			failedStep: "tls",
		},
		{
			name: "serving certificate without the Service's name", message: failing + "tls: failed to verify certificate: x509: certificate is valid for localhost, not keda-operator-metrics-apiserver.keda.svc",
			key:        "serving-cert-san",
			mentions:   []string{"keda-operator-metrics-apiserver.keda.svc"},
			failedStep: "tls",
		},
		{
			name: "one pod refuses, the other answers", message: failing + "dial tcp 10.244.2.7:6443: connect: connection refused",
			proxy: answers{"keda-operator-metrics-apiserver": ok, "keda-metrics-a": ok,
				"keda-metrics-b": {status: 503, body: "error trying to reach service: dial tcp 10.244.2.7:6443: connect: connection refused"}},
			key:        "pod-unreachable",
			mentions:   []string{"keda-metrics-b", "connection refused", "kubectl -n keda logs keda-metrics-b"},
			failedStep: "proxy",
		},
		{
			name: "no route to the pods (managed control plane, overlay CNI)", message: failing + "dial tcp 10.244.1.7:6443: connect: no route to host",
			proxy: answers{
				"keda-operator-metrics-apiserver": {status: 503, body: "error trying to reach service: dial tcp 10.244.1.7:6443: connect: no route to host"},
				"keda-metrics-a":                  {status: 503, body: "error trying to reach service: dial tcp 10.244.1.7:6443: connect: no route to host"},
				"keda-metrics-b":                  {status: 503, body: "error trying to reach service: dial tcp 10.244.2.7:6443: connect: no route to host"}},
			key:        "no-route",
			mentions:   []string{"hostNetwork: true"},
			failedStep: "proxy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := diagnoseStatic(t, tt.extra, tt.message, tt.proxy)
			t.Logf("chain:\n%s", chain(d))
			if d.Available || d.CauseKey != tt.key {
				t.Fatalf("cause %q, want %q\n%s", d.CauseKey, tt.key, chain(d))
			}
			for _, m := range tt.mentions {
				if !strings.Contains(d.Cause+" "+d.Fix, m) {
					t.Errorf("cause and fix do not mention %q\n%s", m, chain(d))
				}
			}
			if tt.failedStep != "" {
				if s, ok := step(d, tt.failedStep); !ok || s.Outcome != StepFailed {
					t.Errorf("step %s is %+v, want failed\n%s", tt.failedStep, s, chain(d))
				}
			}
			// The chain always shows the pods behind the endpoints.
			if s, ok := step(d, "pods"); !ok || !strings.Contains(s.Evidence, "keda-metrics-a 10.244.1.7:6443 Running ready, 4 restarts, node n1") {
				t.Errorf("pods step: %+v", s)
			}
		})
	}
}
