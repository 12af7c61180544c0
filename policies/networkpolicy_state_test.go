package policies_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"apiservice-guard.io/apiservice-guard/policies"
)

// TestJudgeState: the offline check's and audit's question. Every policy in
// the view is in force and the set is compared with no policy at all; a
// blocked path is reported once, on the first policy isolating it.
func TestJudgeState(t *testing.T) {
	deny := netpolicy(kedaNS, "default-deny")
	wrong := allowAPIServer(kedaNS, "allow-443", 443)
	allow := allowAPIServer(kedaNS, "allow-control-plane", 6443)
	cp := objs(apiServerSlice(apiServerIP))
	enforce := []verdict{{blocksAPIService, policies.Enforce}}
	runNPCases(t, []npCase{
		{
			name:     "default-deny and a wrong allow: the first policy reports, naming both",
			state:    slices.Concat(kedaBackend(), cp, objs(deny, wrong)),
			review:   npState(deny),
			want:     enforce,
			mentions: []string{"isolated by default-deny, allow-443)", "port: 6443"},
		},
		{
			name:   "default-deny and a wrong allow: the second policy says nothing",
			state:  slices.Concat(kedaBackend(), cp, objs(deny, wrong)),
			review: npState(wrong),
		},
		{
			name:   "default-deny and a right allow",
			state:  slices.Concat(kedaBackend(), cp, objs(deny, allow)),
			review: npState(deny),
		},
		{
			name:   "a policy isolating other pods only",
			state:  slices.Concat(kedaBackend(), cp, objs(deny, netpolicy(kedaNS, "deny-operator", npSelect(map[string]string{"app": "keda-operator"})))),
			review: npState(netpolicy(kedaNS, "deny-operator", npSelect(map[string]string{"app": "keda-operator"}))),
		},
		{
			// The reviewed version is the one in force, whatever the view holds.
			name:     "the reviewed version replaces the view's",
			state:    slices.Concat(kedaBackend(), cp, objs(allow)),
			review:   npState(allowAPIServer(kedaNS, "allow-control-plane", 8080)),
			want:     enforce,
			mentions: []string{"isolated by allow-control-plane)"},
		},
		{
			name:     "webhook backend: default-deny and a wrong allow",
			state:    slices.Concat(guardWebhookBackend(), cp, objs(netpolicy(guardNS, "default-deny"), allowAPIServer(guardNS, "allow-443", 443))),
			review:   npState(netpolicy(guardNS, "default-deny")),
			want:     []verdict{{blocksWebhook, policies.Warn}},
			mentions: []string{"webhook " + guardHook, "isolated by default-deny, allow-443)"},
		},
		{
			name: "konnectivity egress: deny and a wrong egress allow",
			state: slices.Concat(kedaBackend(), objs(konnectivityAgent("konnectivity-agent-p", "10.244.0.5"),
				netpolicy("kube-system", "deny-egress", npEgress()),
				netpolicy("kube-system", "allow-egress-443", npEgress(), npAllowEgressTo(443)))),
			review:   npState(netpolicy("kube-system", "deny-egress", npEgress())),
			want:     []verdict{{blocksKonnectivity, policies.Warn}},
			mentions: []string{"isolated by kube-system/deny-egress and 1 more)"},
			detail:   []string{"kube-system/deny-egress, kube-system/allow-egress-443"},
		},
		// "cannot verify": once per namespace, only where a backend is isolated
		// and its ingress does not admit every address.
		{
			name:     "no source: the first isolating policy says it cannot verify",
			state:    slices.Concat(kedaBackend(), objs(deny, wrong)),
			review:   npState(deny),
			want:     []verdict{{blocksAPIService, policies.Warn}},
			mentions: []string{"cannot verify", "isolated by default-deny, allow-443)"},
			detail:   []string{"isolating policies: keda/default-deny, keda/allow-443"},
		},
		{
			name:   "no source: the second says nothing",
			state:  slices.Concat(kedaBackend(), objs(deny, wrong)),
			review: npState(wrong),
		},
		{
			name: "no source: ingress open to every address on the port",
			state: slices.Concat(kedaBackend(), objs(deny, netpolicy(kedaNS, "allow-all-6443", func(np *networkingv1.NetworkPolicy) {
				np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: npPorts([]any{6443})}}
			}))),
			review: npState(deny),
		},
		{
			name:   "no source: ingress open to 0.0.0.0/0 on every port",
			state:  slices.Concat(kedaBackend(), objs(deny, netpolicy(kedaNS, "allow-world", npAllow(ipBlock("0.0.0.0/0"))))),
			review: npState(deny),
		},
		{
			name:     "no source: 0.0.0.0/0 with an except is not open",
			state:    slices.Concat(kedaBackend(), objs(netpolicy(kedaNS, "allow-world", npAllow(ipBlock("0.0.0.0/0", "10.0.0.0/8"))))),
			review:   npState(netpolicy(kedaNS, "allow-world", npAllow(ipBlock("0.0.0.0/0", "10.0.0.0/8")))),
			want:     []verdict{{blocksAPIService, policies.Warn}},
			mentions: []string{"cannot verify"},
		},
		{
			name:   "no source: a policy selecting no backend pod",
			state:  slices.Concat(kedaBackend(), objs(netpolicy(kedaNS, "deny-operator", npSelect(map[string]string{"app": "keda-operator"})))),
			review: npState(netpolicy(kedaNS, "deny-operator", npSelect(map[string]string{"app": "keda-operator"}))),
		},
	})
}

// TestCannotVerifyInAdmission: without a source, an admission write is
// told it cannot be verified only when it has a part in isolating a backend.
func TestCannotVerifyInAdmission(t *testing.T) {
	deny := netpolicy(kedaNS, "default-deny")
	runNPCases(t, []npCase{
		{
			name:     "a default-deny",
			state:    kedaBackend(),
			review:   npCreate(deny),
			want:     []verdict{{blocksAPIService, policies.Warn}},
			mentions: []string{"cannot verify"},
		},
		{
			name:   "a policy selecting other pods next to a default-deny",
			state:  slices.Concat(kedaBackend(), objs(deny)),
			review: npCreate(netpolicy(kedaNS, "deny-operator", npSelect(map[string]string{"app": "keda-operator"}))),
		},
		{
			name:   "an egress-only policy",
			state:  kedaBackend(),
			review: npCreate(netpolicy(kedaNS, "deny-egress", npEgress())),
		},
		{
			name: "deleting the open allow next to a default-deny",
			state: slices.Concat(kedaBackend(), objs(deny, netpolicy(kedaNS, "allow-all", func(np *networkingv1.NetworkPolicy) {
				np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
			}))),
			review: npDelete(netpolicy(kedaNS, "allow-all", func(np *networkingv1.NetworkPolicy) {
				np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
			})),
			want:     []verdict{{blocksAPIService, policies.Warn}},
			mentions: []string{"cannot verify", "isolated by default-deny)"},
		},
	})
}

// TestWebhooksSharingAService: the webhooks of one configuration that call
// one Service port are one finding; another configuration is another.
func TestWebhooksSharingAService(t *testing.T) {
	hook := func(name string) admissionregv1.ValidatingWebhook {
		return admissionregv1.ValidatingWebhook{Name: name, ClientConfig: admissionregv1.WebhookClientConfig{
			Service: &admissionregv1.ServiceReference{Namespace: guardNS, Name: guardSvc}}}
	}
	config := func(name string, hooks ...string) runtime.Object {
		c := &admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, h := range hooks {
			c.Webhooks = append(c.Webhooks, hook(h))
		}
		return c
	}
	state := slices.Concat(serviceWorkload(guardNS, guardSvc, guardPod, 443, 9443, "10.244.3.4"), objs(apiServerSlice(apiServerIP)))
	runNPCases(t, []npCase{
		{
			name:     "three webhooks of one configuration",
			state:    append(state, config("guard", "a.guard.io", "b.guard.io", "c.guard.io")),
			review:   npCreate(netpolicy(guardNS, "default-deny")),
			want:     []verdict{{blocksWebhook, policies.Warn}},
			mentions: []string{"webhooks a.guard.io, b.guard.io and 1 more of guard:"},
		},
		{
			name:   "two configurations",
			state:  append(state, config("guard", "a.guard.io", "b.guard.io"), config("other", "x.other.io")),
			review: npCreate(netpolicy(guardNS, "default-deny")),
			want:   []verdict{{blocksWebhook, policies.Warn}, {blocksWebhook, policies.Warn}},
		},
	})
}

// TestAPIServiceUnreachableAgentsEgress: apiservice-unreachable sees the
// konnectivity agents' egress policies too, not only the backend's ingress.
func TestAPIServiceUnreachableAgentsEgress(t *testing.T) {
	agent := konnectivityAgent("konnectivity-agent-p", "10.244.0.5")
	denyEgress := netpolicy("kube-system", "deny-egress", npEgress())
	tests := []struct {
		name  string
		state []runtime.Object
		want  []verdict
	}{
		{"egress denied", objs(agent, denyEgress), []verdict{{"apiservice-unreachable", policies.Warn}}},
		{"egress allowed to the pod port", objs(agent, denyEgress, netpolicy("kube-system", "allow-6443", npEgress(), npAllowEgressTo(6443))), nil},
		{"hostNetwork agents are not policed", objs(konnectivityAgent("konnectivity-agent-h", "192.168.0.20", podHostNetwork()), denyEgress), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := apiService(kedaAPI, kedaNS, kedaSvc)
			v := newView(t, slices.Concat(kedaWorkload(), tc.state)...)
			got := ruleFindings(mustEngine(t, defaultConfig(t)).Evaluate(t.Context(), createReview(api, time.Time{}), v), "apiservice-unreachable")
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
			}
			for _, f := range got {
				for _, m := range []string{"konnectivity-agent pod kube-system/konnectivity-agent-p", "isolated by kube-system/deny-egress", "allow egress"} {
					if !strings.Contains(f.String(), m) {
						t.Errorf("finding %q does not mention %q", f.String(), m)
					}
				}
			}
		})
	}
}
