package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// drain returns the events recorded so far.
func drain(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func matching(evs []string, sub string) int {
	n := 0
	for _, e := range evs {
		if strings.Contains(e, sub) {
			n++
		}
	}
	return n
}

// TestAuditorEvents: without the report CRD the audit still sends Events;
// a finding gets a Warning Event when it first appears,
// not on every rescan nor after a restart (the reports say it was
// reported), and a Normal Event when it clears; an exempt namespace gets no
// report and no Event.
func TestAuditorEvents(t *testing.T) {
	cp := startControlPlane(t)
	ctx := t.Context()
	const ns = "adapter-ns"
	backend(t, cp, ns)
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-deny"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	if err := cp.Client.Create(ctx, deny); err != nil {
		t.Fatal(err)
	}
	live, err := cluster.StartLive(ctx, cp.Env.Config, cluster.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newAuditorWith := func(cfg policies.Config, mapper meta.RESTMapper) (*Auditor, *events.FakeRecorder) {
		t.Helper()
		engine, err := policies.NewEngine(cfg, policies.DefaultRules())
		if err != nil {
			t.Fatal(err)
		}
		rec := &events.FakeRecorder{Events: make(chan string, 100)}
		a, err := New(Options{Engine: engine, View: live, Sources: Sources{Cache: live.Reader()}, Recorder: rec, Interval: time.Hour,
			Reports: ReportOptions{Client: cp.Client, Mapper: mapper, API: APIOpenReports}})
		if err != nil {
			t.Fatal(err)
		}
		a.Prepare(ctx)
		return a, rec
	}
	newAuditor := func(cfg policies.Config) (*Auditor, *events.FakeRecorder) {
		return newAuditorWith(cfg, cp.Client.RESTMapper())
	}
	const finding = "AuditFinding [networkpolicy-blocks-apiservice]"
	enforce := policies.Config{Mode: policies.ModeEnforce}

	// The report API asked for is not served (its CRD missing): the audit
	// goes on with Events only, without an error.
	a, rec := newAuditorWith(enforce, meta.NewDefaultRESTMapper(nil))
	if stats, err := a.Scan(ctx); err != nil || stats.Written != 0 || stats.Reviewed == 0 {
		t.Fatalf("without the report CRD: Scan() = %+v, %v; want reviews, no writes, no error", stats, err)
	}
	if n := matching(drain(rec), "Warning "+finding); n != 1 {
		t.Errorf("without the report CRD: %d %q events, want 1", n, finding)
	}

	// An exempt namespace: nothing.
	exempt := enforce
	exempt.ExemptNamespaces = []string{ns}
	a, rec = newAuditor(exempt)
	stats, err := a.Scan(ctx)
	if err != nil || stats.Written != 0 {
		t.Fatalf("exempt: Scan() = %+v, %v; want nothing written", stats, err)
	}
	if evs := drain(rec); len(evs) != 0 {
		t.Errorf("exempt: events %q", evs)
	}

	a, rec = newAuditor(enforce)
	if _, err := a.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if n := matching(drain(rec), "Warning "+finding); n != 1 {
		t.Fatalf("first scan: %d %q events, want 1", n, finding)
	}
	if _, err := a.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if evs := drain(rec); len(evs) != 0 {
		t.Errorf("a rescan with nothing changed sent events %q", evs)
	}

	// A restart: the reports say what was reported.
	a, rec = newAuditor(enforce)
	if _, err := a.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if evs := drain(rec); len(evs) != 0 {
		t.Errorf("after a restart, events %q", evs)
	}

	// The repair clears it.
	port := intstr.FromInt32(6443)
	allow := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "allow-api-server"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}}}}
	if err := cp.Client.Create(ctx, allow); err != nil {
		t.Fatal(err)
	}
	var evs []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := a.Refresh(ctx, allow); err != nil {
			return false, err
		}
		evs = append(evs, drain(rec)...)
		return matching(evs, "Normal AuditFindingCleared [networkpolicy-blocks-apiservice] passes now") == 1, nil
	})
	if err != nil {
		t.Fatalf("no cleared event after the repair: %v; events %q", err, evs)
	}
}

// backend creates namespace ns with an adapter: a Service 443 -> 6443, its
// pod (with an IP, set as a kubelet would) and an APIService.
func backend(t *testing.T, cp *harness.ControlPlane, ns string) {
	t.Helper()
	ctx := t.Context()
	labels := map[string]string{"app": "adapter"}
	port := int32(443)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "adapter-0", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "adapter", Image: "adapter", Ports: []corev1.ContainerPort{{ContainerPort: 6443}}}}}}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "adapter"}, Spec: corev1.ServiceSpec{
			Selector: labels, Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(6443)}}}},
		pod,
		&apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1beta1.audit.example.com"}, Spec: apiregv1.APIServiceSpec{
			Group: "audit.example.com", Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100, InsecureSkipTLSVerify: true,
			Service: &apiregv1.ServiceReference{Namespace: ns, Name: "adapter", Port: &port}}},
	} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.9", PodIPs: []corev1.PodIP{{IP: "10.244.0.9"}}}
	if err := cp.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}
