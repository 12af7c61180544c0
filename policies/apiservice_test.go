package policies_test

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// fixture is a KEDA-like backend that passes every rule: the APIService, its
// Service (443 -> 6443), one ready pod mounting its serving Secret, a ready
// EndpointSlice and the two auth bindings. Cases break one part of it.
type fixture struct {
	pki          *testPKI
	api          *apiregv1.APIService
	old          *apiregv1.APIService // set: the review is an UPDATE from old
	stored       *apiregv1.APIService // the APIService as the cluster has it
	svc          *corev1.Service
	pods         []*corev1.Pod
	slices       []*discoveryv1.EndpointSlice
	secrets      []*corev1.Secret
	certificates []*cmapi.Certificate
	crbs         []*rbacv1.ClusterRoleBinding
	rbs          []*rbacv1.RoleBinding
	nodes        []*corev1.Node
	// probe, when set, is the chain the view's TLS probe finds.
	probe []*x509.Certificate
}

func newFixture(t *testing.T) *fixture {
	p := mustPKI(t)
	return &fixture{
		pki: p,
		api: apiService(kedaAPI, kedaNS, kedaSvc, asCABundle(p.ca.CertPEM())),
		svc: service(kedaNS, kedaSvc, kedaLabels, svcPort("https", 443, intstr.FromInt32(6443))),
		pods: []*corev1.Pod{pod(kedaNS, kedaPod, kedaLabels,
			podPort("metrics", 6443), podServiceAccount(kedaSA), podSecretVolume(kedaSecret))},
		slices:  []*discoveryv1.EndpointSlice{endpointSlice(kedaNS, kedaSvc, "https", 6443, ptr(true), kedaPodIP)},
		secrets: []*corev1.Secret{tlsSecret(kedaNS, kedaSecret, p.serving.CertPEM(), p.serving.KeyPEM(), p.ca.CertPEM())},
		crbs:    []*rbacv1.ClusterRoleBinding{clusterRoleBinding("keda-auth-delegator", "system:auth-delegator", saSubject(kedaNS, kedaSA))},
		rbs: []*rbacv1.RoleBinding{roleBinding("kube-system", "keda-auth-reader",
			"extension-apiserver-authentication-reader", saSubject(kedaNS, kedaSA))},
		nodes: []*corev1.Node{node("node-1", map[string]string{"kubernetes.io/os": "linux"}, "kind://docker/kind/node-1")},
	}
}

// servingSecret replaces the serving Secret the pod mounts.
func (f *fixture) servingSecret(kp *certs.KeyPair) {
	f.secrets = []*corev1.Secret{tlsSecret(kedaNS, kedaSecret, kp.CertPEM(), kp.KeyPEM(), nil)}
}

// useCertificate annotates the APIService with inject-ca-from naming a
// cert-manager Certificate whose Secret holds kp.
func (f *fixture) useCertificate(kp *certs.KeyPair) {
	asAnnotation(policies.AnnotationInjectCAFrom, kedaNS+"/keda-serving")(f.api)
	f.certificates = append(f.certificates, certificate(kedaNS, "keda-serving", "keda-serving-tls", kedaDNSName))
	f.secrets = append(f.secrets, tlsSecret(kedaNS, "keda-serving-tls", kp.CertPEM(), kp.KeyPEM(), f.pki.ca.CertPEM()))
}

// useProbe removes the Secret sources: the certificate can only come from the
// TLS probe, which presents kp.
func (f *fixture) useProbe(kp *certs.KeyPair) {
	f.secrets = nil
	f.probe = []*x509.Certificate{kp.Cert}
}

// update turns the review into an UPDATE from the stored APIService (same
// backend), whose Available condition is status.
func (f *fixture) update(status apiregv1.ConditionStatus) {
	f.stored = f.api.DeepCopy()
	asAvailable(status)(f.stored)
	f.old = f.stored
}

// onGKE replaces the nodes with one GKE node.
func (f *fixture) onGKE() {
	f.nodes = []*corev1.Node{node("gke-pool-1-abcd", map[string]string{"cloud.google.com/gke-nodepool": "pool-1"}, "")}
}

func (f *fixture) objects() []runtime.Object {
	var objs []runtime.Object
	add := func(o runtime.Object) { objs = append(objs, o) }
	if f.stored != nil {
		add(f.stored)
	}
	if f.svc != nil {
		add(f.svc)
	}
	for _, o := range f.pods {
		add(o)
	}
	for _, o := range f.slices {
		add(o)
	}
	for _, o := range f.secrets {
		add(o)
	}
	for _, o := range f.certificates {
		add(o)
	}
	for _, o := range f.crbs {
		add(o)
	}
	for _, o := range f.rbs {
		add(o)
	}
	for _, o := range f.nodes {
		add(o)
	}
	return objs
}

// evaluate runs the default catalogue with the default config.
func (f *fixture) evaluate(t *testing.T, now time.Time) []policies.Finding {
	t.Helper()
	var v cluster.View = newView(t, f.objects()...)
	if f.probe != nil {
		v = &probeView{Static: v.(*cluster.Static), chain: f.probe}
	}
	r := createReview(f.api, now)
	if f.old != nil {
		r = updateReview(f.old, f.api, now)
	}
	return mustEngine(t, defaultConfig(t)).Evaluate(t.Context(), r, v)
}

// ruleCase is one case of a rule's table: break the fixture, expect the
// rule's action ("" for no finding) and words in its message or fix.
type ruleCase struct {
	name     string
	mutate   func(*fixture)
	now      time.Time
	want     policies.Action
	mentions []string
}

func runRuleCases(t *testing.T, rule string, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.mutate != nil {
				tc.mutate(f)
			}
			all := f.evaluate(t, tc.now)
			got := ruleFindings(all, rule)
			var want []verdict
			if tc.want != "" {
				want = []verdict{{Rule: rule, Action: tc.want}}
			}
			if diff := cmp.Diff(want, verdicts(got)); diff != "" {
				t.Errorf("findings of %s (-want +got):\n%s\nall findings: %v", rule, diff, all)
			}
			for _, fd := range got {
				if fd.Object.Kind != "APIService" || fd.Object.Name != kedaAPI {
					t.Errorf("finding is about %+v, want APIService %s", fd.Object, kedaAPI)
				}
				for _, m := range tc.mentions {
					if !strings.Contains(fd.String(), m) {
						t.Errorf("finding %q does not mention %q", fd.String(), m)
					}
				}
			}
		})
	}
}

func TestHealthyBackend(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*fixture)
		want   []verdict
	}{
		{name: "KEDA-like backend passes every rule"},
		{
			name:   "same backend on GKE: only the firewall port",
			mutate: (*fixture).onGKE,
			want:   []verdict{{Rule: "apiservice-firewall-port", Action: policies.Warn}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.mutate != nil {
				tc.mutate(f)
			}
			got := f.evaluate(t, time.Time{})
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
			}
		})
	}
}

func TestFindingNamesTheAPIService(t *testing.T) {
	f := newFixture(t)
	f.svc = nil
	got := ruleFindings(f.evaluate(t, time.Time{}), "apiservice-backend-missing")
	want := []policies.Finding{{
		Rule:   "apiservice-backend-missing",
		Action: policies.Warn,
		Object: policies.ObjectRef{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: kedaAPI},
	}}
	// Message and fix wording is checked per rule; here only the envelope.
	for i := range got {
		if got[i].Message == "" || got[i].Fix == "" {
			t.Errorf("finding %d has an empty message or fix: %+v", i, got[i])
		}
		got[i].Message, got[i].Fix = "", ""
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestLocalAPIServiceAndDeleteAreNotReviewed(t *testing.T) {
	f := newFixture(t)
	local := apiService("v1.apps", "", "", asLocal())
	e := mustEngine(t, defaultConfig(t))
	v := newView(t, f.objects()...)
	if got := e.Evaluate(t.Context(), createReview(local, time.Time{}), v); len(got) != 0 {
		t.Errorf("local APIService: got findings %v, want none", got)
	}
	// A broken APIService being deleted is not reviewed by the integrity rules.
	broken := apiService(kedaAPI, "missing", "missing")
	del := &policies.Review{Operation: policies.Delete, Kind: policies.APIServiceKind, OldObject: broken, Name: kedaAPI}
	if got := e.Evaluate(t.Context(), del, v); len(got) != 0 {
		t.Errorf("DELETE: got findings %v, want none", got)
	}
}

func TestBackendMissing(t *testing.T) {
	runRuleCases(t, "apiservice-backend-missing", []ruleCase{
		{name: "service exists"},
		{
			name:     "service missing",
			mutate:   func(f *fixture) { f.svc = nil },
			want:     policies.Warn,
			mentions: []string{"Service keda/" + kedaSvc, "does not exist", "ServiceNotFound", "create the Service"},
		},
		{
			name: "namespace missing",
			mutate: func(f *fixture) {
				f.api = apiService(kedaAPI, "keda-system", kedaSvc, asCABundle(f.pki.ca.CertPEM()))
			},
			want:     policies.Warn,
			mentions: []string{`namespace "keda-system"`, "does not exist", "spec.service.namespace"},
		},
	})
}

func TestPortMismatch(t *testing.T) {
	named := func(name string) func(*fixture) {
		return func(f *fixture) {
			f.svc = service(kedaNS, kedaSvc, kedaLabels, svcPort("https", 443, intstr.FromString(name)))
		}
	}
	runRuleCases(t, "apiservice-port-mismatch", []ruleCase{
		{name: "default port 443 with numeric targetPort declared by the pod"},
		{name: "explicit port 443", mutate: func(f *fixture) { asPort(443)(f.api) }},
		{
			name:     "APIService port is not a Service port",
			mutate:   func(f *fixture) { asPort(8443)(f.api) },
			want:     policies.Enforce,
			mentions: []string{"port 8443", "port 443 (https)", "ServicePortError"},
		},
		{
			name: "Service without ports",
			mutate: func(f *fixture) {
				f.svc = service(kedaNS, kedaSvc, kedaLabels)
			},
			want:     policies.Enforce,
			mentions: []string{"no ports"},
		},
		{name: "named targetPort declared by the pod", mutate: named("metrics")},
		{
			name:     "named targetPort declared by no container",
			mutate:   named("https-api"),
			want:     policies.Enforce,
			mentions: []string{`named port "https-api"`, kedaPod, "6443 (metrics)", "MissingEndpoints"},
		},
		{
			name: "numeric targetPort declared by no container is advisory",
			mutate: func(f *fixture) {
				f.svc = service(kedaNS, kedaSvc, kedaLabels, svcPort("https", 443, intstr.FromInt32(7443)))
			},
			want:     policies.Warn,
			mentions: []string{"port 7443", kedaPod},
		},
		{
			name: "unset targetPort defaults to the Service port",
			mutate: func(f *fixture) {
				f.svc = service(kedaNS, kedaSvc, kedaLabels, svcPort("https", 443, intstr.IntOrString{}))
			},
			want:     policies.Warn,
			mentions: []string{"targets port 443"},
		},
		{
			name: "one of two pods declares the named port",
			mutate: func(f *fixture) {
				named("metrics")(f)
				f.pods = append([]*corev1.Pod{pod(kedaNS, "old-pod", kedaLabels, podPort("http", 8080))}, f.pods...)
			},
		},
		{
			name: "named targetPort declared by a sidecar (restartable init container)",
			mutate: func(f *fixture) {
				named("proxy")(f)
				f.pods[0].Spec.InitContainers = []corev1.Container{{Name: "tls-proxy", RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
					Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 8443, Protocol: corev1.ProtocolTCP}}}}
			},
		},
		{
			name: "named targetPort declared only by an init container that exits",
			mutate: func(f *fixture) {
				named("proxy")(f)
				f.pods[0].Spec.InitContainers = []corev1.Container{{Name: "setup",
					Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 8443, Protocol: corev1.ProtocolTCP}}}}
			},
			want:     policies.Enforce,
			mentions: []string{`named port "proxy"`, kedaPod},
		},
		{
			name: "container port without protocol is TCP",
			mutate: func(f *fixture) {
				f.pods[0].Spec.Containers[0].Ports[0].Protocol = ""
			},
		},
		{
			name: "container port of another protocol does not count",
			mutate: func(f *fixture) {
				f.pods[0].Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolUDP
			},
			want:     policies.Warn,
			mentions: []string{"port 6443"},
		},
		{
			name: "ExternalName Service is skipped",
			mutate: func(f *fixture) {
				f.svc = service(kedaNS, kedaSvc, nil, svcExternalName("adapter.example.com"))
				asPort(8443)(f.api)
			},
		},
		{
			name: "no pods selected: targetPort cannot be checked",
			mutate: func(f *fixture) {
				named("https-api")(f)
				f.pods = nil
			},
		},
	})
}

func TestNoReadyEndpoints(t *testing.T) {
	slice := func(portName string, ready *bool) func(*fixture) {
		return func(f *fixture) {
			f.slices = []*discoveryv1.EndpointSlice{endpointSlice(kedaNS, kedaSvc, portName, 6443, ready, kedaPodIP)}
		}
	}
	runRuleCases(t, "apiservice-no-ready-endpoints", []ruleCase{
		{name: "ready endpoint"},
		{name: "ready condition unset counts as ready", mutate: slice("https", nil)},
		{
			name:     "endpoint not ready",
			mutate:   slice("https", ptr(false)),
			want:     policies.Warn,
			mentions: []string{"Service keda/" + kedaSvc, "port 443", "MissingEndpoints"},
		},
		{
			name:     "ready endpoint only on another port name",
			mutate:   slice("metrics", ptr(true)),
			want:     policies.Warn,
			mentions: []string{"Service keda/" + kedaSvc},
		},
		{
			name: "only another Service has slices",
			mutate: func(f *fixture) {
				f.slices = []*discoveryv1.EndpointSlice{endpointSlice(kedaNS, "keda-operator", "https", 6443, ptr(true), kedaPodIP)}
			},
			want: policies.Warn,
		},
		{
			// A static view without any EndpointSlice cannot know readiness.
			name:   "view without EndpointSlices cannot tell",
			mutate: func(f *fixture) { f.slices = nil },
		},
		{
			name: "ExternalName Service is skipped",
			mutate: func(f *fixture) {
				f.svc = service(kedaNS, kedaSvc, nil, svcExternalName("adapter.example.com"), svcPort("https", 443, intstr.IntOrString{}))
				slice("https", ptr(false))(f)
			},
		},
		{
			name: "APIService port not on the Service is left to port-mismatch",
			mutate: func(f *fixture) {
				asPort(8443)(f.api)
				slice("https", ptr(false))(f)
			},
		},
	})
}

func TestCABundleInvalid(t *testing.T) {
	p := mustPKI(t)
	bundle := func(pem []byte) func(*fixture) {
		return func(f *fixture) { f.api.Spec.CABundle = pem }
	}
	empty := func(opts ...apiServiceOpt) func(*fixture) {
		return func(f *fixture) {
			f.api.Spec.CABundle = nil
			for _, o := range opts {
				o(f.api)
			}
		}
	}
	keyPEM := append(append([]byte{}, p.ca.CertPEM()...), p.ca.KeyPEM()...)
	brokenPEM := []byte("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")
	runRuleCases(t, "apiservice-cabundle-invalid", []ruleCase{
		{name: "valid CA"},
		{
			name:     "empty without injector",
			mutate:   empty(),
			want:     policies.Enforce,
			mentions: []string{"caBundle is empty", "discovery of keda/" + kedaSvc + " will fail", policies.AnnotationInjectCAFrom},
		},
		{
			name:     "empty with inject-ca-from",
			mutate:   empty(asAnnotation(policies.AnnotationInjectCAFrom, "keda/keda-serving")),
			want:     policies.Warn,
			mentions: []string{"until cert-manager (from Certificate keda/keda-serving) injects the CA"},
		},
		{
			name:     "empty with inject-ca-from-secret",
			mutate:   empty(asAnnotation(policies.AnnotationInjectCAFromSecret, "keda/keda-ca")),
			want:     policies.Warn,
			mentions: []string{"from Secret keda/keda-ca"},
		},
		{
			name:     "empty with ca-injected-by",
			mutate:   empty(asAnnotation(policies.AnnotationCAInjectedBy, "vault-injector")),
			want:     policies.Warn,
			mentions: []string{"until vault-injector injects"},
		},
		{
			name:     "empty on KEDA's own APIService",
			mutate:   empty(asLabel("app.kubernetes.io/part-of", "keda-operator")),
			want:     policies.Warn,
			mentions: []string{"KEDA's certificate rotation"},
		},
		{name: "empty with insecureSkipTLSVerify", mutate: empty(asInsecureSkipTLS())},
		{name: "garbage with insecureSkipTLSVerify", mutate: func(f *fixture) { bundle([]byte("garbage"))(f); asInsecureSkipTLS()(f.api) }},
		{
			name:     "garbage",
			mutate:   bundle([]byte("not a certificate")),
			want:     policies.Enforce,
			mentions: []string{"caBundle is invalid", "not PEM"},
		},
		{
			name:     "broken certificate block",
			mutate:   bundle(brokenPEM),
			want:     policies.Enforce,
			mentions: []string{"caBundle is invalid", "block 1"},
		},
		{
			name:     "private key in the bundle",
			mutate:   bundle(keyPEM),
			want:     policies.Enforce,
			mentions: []string{"block 2 is a PRIVATE KEY"},
		},
		{
			name:     "only certificate expired",
			now:      time.Now().Add(2 * year),
			want:     policies.Enforce,
			mentions: []string{"no valid certificate", "certificate " + certs.Describe(p.ca.Cert) + " expired on"},
		},
		{
			name:   "expired certificate next to a valid one",
			mutate: bundle(certs.EncodePEM(p.shortCA.Cert, p.ca.Cert)),
			now:    time.Now().Add(2 * time.Hour),
		},
		{
			name:     "not yet valid",
			now:      p.ca.Cert.NotBefore.Add(-time.Hour),
			want:     policies.Enforce,
			mentions: []string{"not valid before"},
		},
		{
			name:     "expires within 30 days",
			now:      p.ca.Cert.NotAfter.Add(-10*24*time.Hour - time.Hour),
			want:     policies.Warn,
			mentions: []string{"expires in 10 days: its longest-lived certificate is " + certs.Describe(p.ca.Cert)},
		},
		{
			name: "expires in 31 days",
			now:  p.ca.Cert.NotAfter.Add(-31 * 24 * time.Hour),
		},
		{
			name:   "short-lived certificate next to a long-lived one",
			mutate: bundle(certs.EncodePEM(p.ca.Cert, p.shortCA.Cert)),
		},
		{
			name:     "longest-lived certificate counts",
			mutate:   bundle(certs.EncodePEM(p.shortCA.Cert, p.ca.Cert)),
			now:      p.ca.Cert.NotAfter.Add(-5 * 24 * time.Hour),
			want:     policies.Warn,
			mentions: []string{"expires in 5 days: its longest-lived certificate is " + certs.Describe(p.ca.Cert)},
		},
	})
}

func TestInsecureSkipTLS(t *testing.T) {
	runRuleCases(t, "apiservice-insecure-skip-tls", []ruleCase{
		{name: "caBundle set"},
		{
			name:     "insecureSkipTLSVerify",
			mutate:   func(f *fixture) { f.api.Spec.CABundle = nil; asInsecureSkipTLS()(f.api) },
			want:     policies.Warn,
			mentions: []string{"keda/" + kedaSvc, "does not verify"},
		},
	})
}

func TestCABundleMismatch(t *testing.T) {
	p := mustPKI(t)
	otherCA := func(f *fixture) { f.api.Spec.CABundle = p.otherCA.CertPEM() }
	runRuleCases(t, "apiservice-cabundle-mismatch", []ruleCase{
		{name: "mounted Secret issued by the caBundle CA"},
		{
			name:   "mounted Secret from another CA on create",
			mutate: otherCA,
			want:   policies.Warn,
			mentions: []string{
				"issued by " + certs.Describe(p.ca.Cert) + ": the caBundle holds " + certs.Describe(p.otherCA.Cert),
				"Secret keda/" + kedaSecret + " mounted by pod " + kedaPod, "unknown authority",
				"Fix: set caBundle to " + certs.Describe(p.ca.Cert) + " (ca.crt of Secret keda/" + kedaSecret + ")",
			},
		},
		{
			// A stale and a fresh CA with one common name: the fingerprints
			// tell them apart.
			name:   "stale CA with the same name",
			mutate: func(f *fixture) { f.api.Spec.CABundle = p.staleCA.CertPEM() },
			want:   policies.Warn,
			mentions: []string{
				"issued by " + certs.Describe(p.ca.Cert) + ": the caBundle holds " + certs.Describe(p.staleCA.Cert) + " (",
				"Fix: set caBundle to " + certs.Describe(p.ca.Cert),
			},
		},
		{
			name:     "several CAs in the bundle are counted",
			mutate:   func(f *fixture) { f.api.Spec.CABundle = certs.EncodePEM(p.staleCA.Cert, p.otherCA.Cert) },
			want:     policies.Warn,
			mentions: []string{"the caBundle holds " + certs.Describe(p.staleCA.Cert) + " and 1 more ("},
		},
		{
			name:     "another CA on an Available APIService",
			mutate:   func(f *fixture) { f.update(apiregv1.ConditionTrue); otherCA(f) },
			want:     policies.Enforce,
			mentions: []string{"does not verify the serving certificate"},
		},
		{
			// The right CA, but the adapter serves an expired certificate: the
			// fix is renewing it, not touching the caBundle.
			name:     "expired serving certificate",
			now:      time.Now().Add(year * 3 / 4),
			want:     policies.Warn,
			mentions: []string{"is not valid now", "renew the adapter's serving certificate"},
		},
		{
			name:   "another CA on an unavailable APIService",
			mutate: func(f *fixture) { f.update(apiregv1.ConditionFalse); otherCA(f) },
			want:   policies.Warn,
		},
		{
			name: "another CA, Available only in the old object",
			mutate: func(f *fixture) {
				f.update(apiregv1.ConditionTrue)
				f.stored = nil
				otherCA(f)
			},
			want: policies.Enforce,
		},
		{
			name: "create over an Available APIService the view knows",
			mutate: func(f *fixture) {
				f.stored = f.api.DeepCopy()
				asAvailable(apiregv1.ConditionTrue)(f.stored)
				otherCA(f)
			},
			want: policies.Enforce,
		},
		{
			name: "bundle with the old and the right CA",
			mutate: func(f *fixture) {
				f.update(apiregv1.ConditionTrue)
				f.api.Spec.CABundle = certs.EncodePEM(p.otherCA.Cert, p.ca.Cert)
			},
		},
		{
			name:   "Certificate Secret wins over the mounted Secret",
			mutate: func(f *fixture) { f.useCertificate(p.otherServing) },
			want:   policies.Warn,
			// The Secret's ca.crt holds keda-ca, not the issuer: no hint.
			mentions: []string{"Secret keda/keda-serving-tls of Certificate keda/keda-serving", `issued by "CN=other-ca" (key id `, `Fix: set caBundle to "CN=other-ca" (key id `},
		},
		{
			name: "Certificate Secret issued by the caBundle CA",
			mutate: func(f *fixture) {
				f.servingSecret(p.otherServing)
				f.useCertificate(p.serving)
			},
		},
		{
			name: "Certificate missing: falls back to the mounted Secret",
			mutate: func(f *fixture) {
				asAnnotation(policies.AnnotationInjectCAFrom, "keda/missing")(f.api)
				otherCA(f)
			},
			want:     policies.Warn,
			mentions: []string{"mounted by pod " + kedaPod},
		},
		{
			name: "projected Secret volume",
			mutate: func(f *fixture) {
				f.pods = []*corev1.Pod{pod(kedaNS, kedaPod, kedaLabels, podPort("metrics", 6443), podProjectedSecret(kedaSecret))}
				otherCA(f)
			},
			want:     policies.Warn,
			mentions: []string{"mounted by pod " + kedaPod},
		},
		{
			name: "TLS probe presents a certificate from another CA",
			mutate: func(f *fixture) {
				f.useProbe(p.otherServing)
			},
			want:     policies.Warn,
			mentions: []string{"presented at " + kedaPodIP + ":6443", `issued by "CN=other-ca" (key id `},
		},
		{name: "TLS probe presents the right certificate", mutate: func(f *fixture) { f.useProbe(p.serving) }},
		{
			name:   "no source: a static view cannot probe",
			mutate: func(f *fixture) { f.secrets = nil; otherCA(f) },
		},
		{
			name: "mounted Secret without a parsable tls.crt is no source",
			mutate: func(f *fixture) {
				f.secrets = []*corev1.Secret{tlsSecret(kedaNS, kedaSecret, []byte("garbage"), nil, nil)}
				otherCA(f)
			},
		},
		{
			name:   "invalid caBundle is left to cabundle-invalid",
			mutate: func(f *fixture) { f.api.Spec.CABundle = []byte("garbage") },
		},
		{
			name:   "insecureSkipTLSVerify",
			mutate: func(f *fixture) { otherCA(f); asInsecureSkipTLS()(f.api) },
		},
		{
			// The SAN is apiservice-serving-cert-san's business.
			name:   "right CA, missing SAN",
			mutate: func(f *fixture) { f.servingSecret(p.noSAN) },
		},
	})
}

func TestServingCertSAN(t *testing.T) {
	p := mustPKI(t)
	runRuleCases(t, "apiservice-serving-cert-san", []ruleCase{
		{name: "SAN present"},
		{name: "wildcard SAN", mutate: func(f *fixture) { f.servingSecret(p.wildcard) }},
		{
			name:     "SAN absent in the mounted Secret",
			mutate:   func(f *fixture) { f.servingSecret(p.noSAN) },
			want:     policies.Warn,
			mentions: []string{"keda/" + kedaSvc, "lacks DNS name " + kedaDNSName, kedaDNSName + ".cluster.local", "mounted by pod"},
		},
		{
			name:     "SAN absent in the Certificate Secret",
			mutate:   func(f *fixture) { f.useCertificate(p.noSAN) },
			want:     policies.Warn,
			mentions: []string{"of Certificate keda/keda-serving"},
		},
		{
			name:     "SAN absent in the probed certificate",
			mutate:   func(f *fixture) { f.useProbe(p.noSAN) },
			want:     policies.Warn,
			mentions: []string{"presented at " + kedaPodIP + ":6443"},
		},
		{
			name:   "insecureSkipTLSVerify",
			mutate: func(f *fixture) { f.servingSecret(p.noSAN); asInsecureSkipTLS()(f.api) },
		},
		{
			name:   "no source",
			mutate: func(f *fixture) { f.secrets = nil },
		},
	})
}

func TestBackendReplaced(t *testing.T) {
	moveTo := func(status apiregv1.ConditionStatus) func(*fixture) {
		return func(f *fixture) {
			f.stored = apiService(kedaAPI, "keda-old", "keda-metrics-apiserver", asCABundle(f.pki.ca.CertPEM()), asAvailable(status))
			f.old = f.stored
		}
	}
	runRuleCases(t, "apiservice-backend-replaced", []ruleCase{
		{name: "create"},
		{name: "update keeping the backend", mutate: func(f *fixture) { f.update(apiregv1.ConditionTrue) }},
		{
			name:     "Available APIService moved to another Service",
			mutate:   moveTo(apiregv1.ConditionTrue),
			want:     policies.Warn,
			mentions: []string{"from Service keda-old/keda-metrics-apiserver to keda/" + kedaSvc},
		},
		{name: "unavailable APIService moved", mutate: moveTo(apiregv1.ConditionFalse)},
		{
			name: "same Service name in another namespace",
			mutate: func(f *fixture) {
				f.stored = apiService(kedaAPI, "keda-old", kedaSvc, asAvailable(apiregv1.ConditionTrue))
				f.old = f.stored
			},
			want: policies.Warn,
		},
		{
			// The request's old object is fresher than the view's cache.
			name: "the old object wins over the view's copy",
			mutate: func(f *fixture) {
				moveTo(apiregv1.ConditionTrue)(f)
				f.stored = f.old.DeepCopy()
				f.stored.Status.Conditions[0].Status = apiregv1.ConditionFalse
			},
			want: policies.Warn,
		},
		{
			name: "unavailable in the old object, Available in the view's copy",
			mutate: func(f *fixture) {
				moveTo(apiregv1.ConditionFalse)(f)
				f.stored = f.old.DeepCopy()
				f.stored.Status.Conditions[0].Status = apiregv1.ConditionTrue
			},
		},
		{
			name: "old object was served locally",
			mutate: func(f *fixture) {
				f.stored = apiService(kedaAPI, "", "", asLocal(), asAvailable(apiregv1.ConditionTrue))
				f.old = f.stored
			},
		},
	})
}

func TestAuthDelegation(t *testing.T) {
	const delegator, reader = "system:auth-delegator", "extension-apiserver-authentication-reader"
	bindTo := func(subjects ...rbacv1.Subject) func(*fixture) {
		return func(f *fixture) {
			f.crbs = []*rbacv1.ClusterRoleBinding{clusterRoleBinding("b", delegator, subjects...)}
			f.rbs = []*rbacv1.RoleBinding{roleBinding("kube-system", "b", reader, subjects...)}
		}
	}
	runRuleCases(t, "apiservice-auth-delegation", []ruleCase{
		{name: "both bindings"},
		{
			name:     "no ClusterRoleBinding",
			mutate:   func(f *fixture) { f.crbs = nil },
			want:     policies.Warn,
			mentions: []string{"ServiceAccount keda/" + kedaSA, "not bound to " + delegator + ":", "kubectl create clusterrolebinding"},
		},
		{
			name:     "no RoleBinding",
			mutate:   func(f *fixture) { f.rbs = nil },
			want:     policies.Warn,
			mentions: []string{"not bound to " + reader + " (in kube-system)", "kubectl -n kube-system create rolebinding"},
		},
		{
			name:     "neither",
			mutate:   func(f *fixture) { f.crbs, f.rbs = nil, nil },
			want:     policies.Warn,
			mentions: []string{delegator + " and " + reader, "clusterrolebinding", "create rolebinding"},
		},
		{
			name:   "reader bound in another namespace",
			mutate: func(f *fixture) { f.rbs[0].Namespace = kedaNS },
			want:   policies.Warn,
		},
		{
			name: "ClusterRoleBinding to another ClusterRole",
			mutate: func(f *fixture) {
				f.crbs = []*rbacv1.ClusterRoleBinding{clusterRoleBinding("b", "view", saSubject(kedaNS, kedaSA))}
			},
			want: policies.Warn,
		},
		{name: "bindings for another ServiceAccount", mutate: bindTo(saSubject(kedaNS, "other")), want: policies.Warn},
		{name: "bindings for the same name in another namespace", mutate: bindTo(saSubject("default", kedaSA)), want: policies.Warn},
		{name: "bound through the namespace's ServiceAccount group", mutate: bindTo(groupSubject("system:serviceaccounts:keda"))},
		{name: "bound through all ServiceAccounts", mutate: bindTo(groupSubject("system:serviceaccounts"))},
		{name: "bound through the ServiceAccount's user name", mutate: bindTo(userSubject("system:serviceaccount:keda:" + kedaSA))},
		{name: "another user name", mutate: bindTo(userSubject("system:serviceaccount:keda:other")), want: policies.Warn},
		{
			name: "pod without serviceAccountName runs as default",
			mutate: func(f *fixture) {
				f.pods = []*corev1.Pod{pod(kedaNS, kedaPod, kedaLabels, podPort("metrics", 6443))}
			},
			want:     policies.Warn,
			mentions: []string{"ServiceAccount keda/default"},
		},
		{name: "no backend pods", mutate: func(f *fixture) { f.pods = nil }},
	})
}

func TestFirewallPort(t *testing.T) {
	gkeWith := func(target intstr.IntOrString, ports ...int32) func(*fixture) {
		return func(f *fixture) {
			f.onGKE()
			f.svc = service(kedaNS, kedaSvc, kedaLabels, svcPort("https", 443, target))
			var opts []podOpt
			for _, p := range ports {
				opts = append(opts, podPort("https", p))
			}
			f.pods = []*corev1.Pod{pod(kedaNS, kedaPod, kedaLabels, opts...)}
		}
	}
	runRuleCases(t, "apiservice-firewall-port", []ruleCase{
		{name: "not GKE"},
		{
			name:     "GKE by node pool label, pod port 6443",
			mutate:   (*fixture).onGKE,
			want:     policies.Warn,
			mentions: []string{"listens on 6443", "gcloud compute firewall-rules create", "--allow tcp:6443", "<MASTER_IPV4_CIDR>"},
		},
		{
			name: "GKE by providerID",
			mutate: func(f *fixture) {
				f.nodes = append(f.nodes, node("n2", nil, "gce://my-project/europe-west1-b/gke-n2"))
			},
			want: policies.Warn,
		},
		{
			name: "other cloud providerID",
			mutate: func(f *fixture) {
				f.nodes = []*corev1.Node{node("n2", nil, "aws:///eu-west-1a/i-0abc")}
			},
		},
		{name: "GKE, numeric targetPort 10250", mutate: gkeWith(intstr.FromInt32(10250))},
		{name: "GKE, named targetPort resolving to 10250", mutate: gkeWith(intstr.FromString("https"), 10250)},
		{name: "GKE, numeric targetPort 443", mutate: gkeWith(intstr.FromInt32(443))},
		{
			name:     "GKE, named targetPort resolving to 4443",
			mutate:   gkeWith(intstr.FromString("https"), 4443),
			want:     policies.Warn,
			mentions: []string{"listens on 4443"},
		},
		{name: "GKE, named targetPort declared by no pod", mutate: gkeWith(intstr.FromString("metrics"), 4443)},
		{
			name: "GKE, no pods, numeric targetPort",
			mutate: func(f *fixture) {
				f.onGKE()
				f.pods = nil
			},
			want:     policies.Warn,
			mentions: []string{"listens on 6443"},
		},
		{
			name: "GKE, ExternalName Service",
			mutate: func(f *fixture) {
				f.onGKE()
				f.svc = service(kedaNS, kedaSvc, nil, svcExternalName("adapter.example.com"), svcPort("https", 6443, intstr.IntOrString{}))
				asPort(6443)(f.api)
			},
		},
	})
}

// TestProbeAddress checks where the TLS probe connects: a ready endpoint on
// the endpoint port, with the name the aggregator verifies.
func TestProbeAddress(t *testing.T) {
	p := mustPKI(t)
	tests := []struct {
		name   string
		mutate func(*fixture)
		want   []string
	}{
		{name: "ready endpoint", want: []string{kedaPodIP + ":6443 " + kedaDNSName}},
		{
			name: "first ready endpoint",
			mutate: func(f *fixture) {
				s := endpointSlice(kedaNS, kedaSvc, "https", 6443, ptr(false), "10.244.9.9")
				s.Endpoints = append(s.Endpoints, endpointSlice(kedaNS, kedaSvc, "https", 6443, ptr(true), kedaPodIP).Endpoints...)
				f.slices = []*discoveryv1.EndpointSlice{s}
			},
			want: []string{kedaPodIP + ":6443 " + kedaDNSName},
		},
		{
			name: "ExternalName on the APIService port",
			mutate: func(f *fixture) {
				f.svc = service(kedaNS, kedaSvc, nil, svcExternalName("adapter.example.com"))
				asPort(8443)(f.api)
			},
			want: []string{"adapter.example.com:8443 " + kedaDNSName},
		},
		{
			name:   "no ready endpoint: no probe",
			mutate: func(f *fixture) { f.slices[0].Endpoints[0].Conditions.Ready = ptr(false) },
		},
		{
			name: "a Secret source: no probe",
			mutate: func(f *fixture) {
				f.secrets = []*corev1.Secret{tlsSecret(kedaNS, kedaSecret, p.serving.CertPEM(), nil, nil)}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.secrets = nil
			if tc.mutate != nil {
				tc.mutate(f)
			}
			v := &probeView{Static: newView(t, f.objects()...), chain: []*x509.Certificate{p.serving.Cert}}
			mustEngine(t, defaultConfig(t)).Evaluate(t.Context(), createReview(f.api, time.Time{}), v)
			if diff := cmp.Diff(tc.want, v.probes); diff != "" {
				t.Errorf("probes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitNamespacedName(t *testing.T) {
	type split struct {
		NS, Name string
		OK       bool
	}
	tests := []struct {
		in   string
		want split
	}{
		{in: "keda/keda-serving", want: split{"keda", "keda-serving", true}},
		{in: "keda-serving"},
		{in: "/keda-serving"},
		{in: "keda/"},
		{in: "a/b/c"},
		{in: ""},
	}
	for _, tc := range tests {
		ns, name, ok := policies.SplitNamespacedName(tc.in)
		if diff := cmp.Diff(tc.want, split{ns, name, ok}); diff != "" {
			t.Errorf("SplitNamespacedName(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
