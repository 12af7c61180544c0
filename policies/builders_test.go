package policies_test

import (
	"context"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Names of the KEDA-like backend most tests use.
const (
	kedaNS      = "keda"
	kedaSvc     = "keda-operator-metrics-apiserver"
	kedaAPI     = "v1beta1.external.metrics.k8s.io"
	kedaSA      = "keda-operator"
	kedaPod     = "keda-operator-metrics-apiserver-5d9f7"
	kedaSecret  = "kedaorg-certs"
	kedaDNSName = kedaSvc + "." + kedaNS + ".svc"
	kedaPodIP   = "10.244.1.7"
)

var kedaLabels = map[string]string{"app": kedaSvc}

// ---- APIService ----

type apiServiceOpt func(*apiregv1.APIService)

// apiService builds an APIService served by Service namespace/name on the
// default port (spec.service.port unset).
func apiService(name, namespace, service string, opts ...apiServiceOpt) *apiregv1.APIService {
	group, version := "", ""
	if v, g, ok := strings.Cut(name, "."); ok {
		version, group = v, g
	}
	a := &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: apiregv1.APIServiceSpec{
			Service:              &apiregv1.ServiceReference{Namespace: namespace, Name: service},
			Group:                group,
			Version:              version,
			GroupPriorityMinimum: 100,
			VersionPriority:      100,
		},
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

func asPort(port int32) apiServiceOpt {
	return func(a *apiregv1.APIService) { a.Spec.Service.Port = &port }
}

func asCABundle(pem []byte) apiServiceOpt {
	return func(a *apiregv1.APIService) { a.Spec.CABundle = pem }
}

func asInsecureSkipTLS() apiServiceOpt {
	return func(a *apiregv1.APIService) { a.Spec.InsecureSkipTLSVerify = true }
}

func asAnnotation(key, value string) apiServiceOpt {
	return func(a *apiregv1.APIService) { metav1.SetMetaDataAnnotation(&a.ObjectMeta, key, value) }
}

func asLabel(key, value string) apiServiceOpt {
	return func(a *apiregv1.APIService) { metav1.SetMetaDataLabel(&a.ObjectMeta, key, value) }
}

// asAvailable sets the Available condition.
func asAvailable(status apiregv1.ConditionStatus) apiServiceOpt {
	return func(a *apiregv1.APIService) {
		a.Status.Conditions = append(a.Status.Conditions, apiregv1.APIServiceCondition{
			Type: apiregv1.Available, Status: status, Reason: "Test",
		})
	}
}

// asLocal removes spec.service: the APIService is served by kube-apiserver.
func asLocal() apiServiceOpt {
	return func(a *apiregv1.APIService) { a.Spec.Service = nil }
}

// ---- Service ----

type serviceOpt func(*corev1.Service)

// service builds a ClusterIP Service with the given selector and no ports.
func service(namespace, name string, selector map[string]string, opts ...serviceOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// svcPort adds a TCP port; target may be the zero IntOrString (unset).
func svcPort(name string, port int32, target intstr.IntOrString) serviceOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: name, Port: port, TargetPort: target, Protocol: corev1.ProtocolTCP})
	}
}

func svcExternalName(host string) serviceOpt {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = host
		s.Spec.Selector = nil
	}
}

// ---- Pod ----

type podOpt func(*corev1.Pod)

// pod builds a pod with one container "main" and no ports.
func pod(namespace, name string, labels map[string]string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "example.invalid/adapter"}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func podPort(name string, port int32) podOpt {
	return func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP})
	}
}

func podServiceAccount(name string) podOpt {
	return func(p *corev1.Pod) { p.Spec.ServiceAccountName = name }
}

// podSecretVolume mounts a Secret as a plain secret volume.
func podSecretVolume(secret string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{
			Name:         secret,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}},
		})
	}
}

// podProjectedSecret mounts a Secret through a projected volume.
func podProjectedSecret(secret string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{
			Name: "projected-" + secret,
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
				Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: secret}},
			}}}},
		})
	}
}

// ---- EndpointSlice ----

// endpointSlice builds the slice of a Service with one port and one endpoint
// per address; ready nil leaves the condition unset (which counts as ready).
func endpointSlice(namespace, service, portName string, port int32, ready *bool, addrs ...string) *discoveryv1.EndpointSlice {
	proto := corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: service + "-abcde",
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ready}})
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// ---- Node ----

func node(name string, labels map[string]string, providerID string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
	}
}

// ---- Secret ----

func secret(namespace, name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

// tlsSecret builds a kubernetes.io/tls Secret; ca may be nil.
func tlsSecret(namespace, name string, crt, key, ca []byte) *corev1.Secret {
	s := secret(namespace, name, map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key})
	s.Type = corev1.SecretTypeTLS
	if ca != nil {
		s.Data["ca.crt"] = ca
	}
	return s
}

// ---- RBAC ----

func saSubject(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func clusterRoleBinding(name, clusterRole string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   subjects,
	}
}

func roleBinding(namespace, name, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects:   subjects,
	}
}

// ---- cert-manager ----

func certificate(namespace, name, secretName string, dnsNames ...string) *cmapi.Certificate {
	return &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: cmapi.CertificateSpec{
			SecretName: secretName,
			DNSNames:   dnsNames,
			IssuerRef:  cmmeta.IssuerReference{Name: "keda-ca", Kind: "Issuer"},
		},
	}
}

// ---- views ----

// newView builds a static view holding objs, as if read from manifests.
func newView(t *testing.T, objs ...runtime.Object) *cluster.Static {
	t.Helper()
	v, err := cluster.NewStatic(objs...)
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	return v
}

// probeView is a static view whose TLS probe answers with a fixed chain: a
// test double for the live view's probe, recording what was asked.
type probeView struct {
	*cluster.Static
	chain  []*x509.Certificate
	probes []string // "address serverName"
}

func (p *probeView) ServingCertificate(_ context.Context, address, serverName string) ([]*x509.Certificate, error) {
	p.probes = append(p.probes, address+" "+serverName)
	return p.chain, nil
}

var _ cluster.View = (*probeView)(nil)

// ---- certificates ----

// testPKI holds the certificates the tests share; minted once per run.
type testPKI struct {
	ca      *certs.KeyPair // valid for a year
	otherCA *certs.KeyPair // an unrelated CA
	staleCA *certs.KeyPair // another CA named keda-ca, as after a rotation
	shortCA *certs.KeyPair // valid for an hour
	// serving certificates for kedaDNSName
	serving      *certs.KeyPair // by ca
	otherServing *certs.KeyPair // by otherCA
	noSAN        *certs.KeyPair // by ca, only the .cluster.local name
	wildcard     *certs.KeyPair // by ca, *.keda.svc
}

const year = 365 * 24 * time.Hour

var sharedPKI = sync.OnceValues(func() (*testPKI, error) {
	var p testPKI
	var err error
	if p.ca, err = certs.NewCA("keda-ca", year); err != nil {
		return nil, err
	}
	if p.otherCA, err = certs.NewCA("other-ca", year); err != nil {
		return nil, err
	}
	if p.staleCA, err = certs.NewCA("keda-ca", year); err != nil {
		return nil, err
	}
	if p.shortCA, err = certs.NewCA("short-ca", time.Hour); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		out   **certs.KeyPair
		ca    *certs.KeyPair
		names []string
	}{
		{&p.serving, p.ca, []string{kedaSvc, kedaDNSName, kedaDNSName + ".cluster.local"}},
		{&p.otherServing, p.otherCA, []string{kedaDNSName}},
		{&p.noSAN, p.ca, []string{kedaDNSName + ".cluster.local"}},
		{&p.wildcard, p.ca, []string{"*." + kedaNS + ".svc"}},
	} {
		if *c.out, err = c.ca.IssueServing(c.names, []net.IP{net.ParseIP(kedaPodIP)}, year/2); err != nil {
			return nil, err
		}
	}
	return &p, nil
})

func mustPKI(t *testing.T) *testPKI {
	t.Helper()
	p, err := sharedPKI()
	if err != nil {
		t.Fatalf("minting test certificates: %v", err)
	}
	return p
}

// ---- findings ----

// verdict is what tests assert about a finding: which rule, which action.
type verdict struct {
	Rule   string
	Action policies.Action
}

// ruleFindings keeps the findings of one rule.
func ruleFindings(findings []policies.Finding, rule string) []policies.Finding {
	var out []policies.Finding
	for _, f := range findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

func verdicts(findings []policies.Finding) []verdict {
	var out []verdict
	for _, f := range findings {
		out = append(out, verdict{Rule: f.Rule, Action: f.Action})
	}
	return out
}

// mustEngine builds an engine over the default catalogue.
func mustEngine(t *testing.T, cfg policies.Config) *policies.Engine {
	t.Helper()
	e, err := policies.NewEngine(cfg, policies.DefaultRules())
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

// defaultConfig is what an empty config file gives.
func defaultConfig(t *testing.T) policies.Config {
	t.Helper()
	cfg, err := policies.ParseConfig(nil, policies.DefaultRules())
	if err != nil {
		t.Fatalf("ParseConfig(nil): %v", err)
	}
	return cfg
}

// createReview reviews the creation of an APIService.
func createReview(api *apiregv1.APIService, now time.Time) *policies.Review {
	return &policies.Review{Operation: policies.Create, Kind: policies.APIServiceKind, Object: api, Name: api.Name, Now: now}
}

// updateReview reviews an update of an APIService from old to api.
func updateReview(old, api *apiregv1.APIService, now time.Time) *policies.Review {
	r := createReview(api, now)
	r.Operation, r.OldObject = policies.Update, old
	return r
}
