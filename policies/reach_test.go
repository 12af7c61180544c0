package policies_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/policies"
)

// Names of the webhook backend: this guard's own, 443 -> 9443.
const (
	guardNS   = "guard"
	guardSvc  = "guard-webhook"
	guardPod  = "apiservice-guard-6c9b8"
	guardHook = "validate.apiservice-guard.io"
)

// serviceWorkload is a Service (port -> targetPort) and one running pod
// declaring targetPort, in a labelled namespace.
func serviceWorkload(ns, svc, podName string, port, target int32, podAddr string) []runtime.Object {
	l := map[string]string{"app.kubernetes.io/name": svc}
	return []runtime.Object{
		namespace(ns),
		service(ns, svc, l, svcPort("https", port, intstr.FromInt32(target))),
		pod(ns, podName, l, podPort("https", target), podIP(podAddr), podNode("node-1")),
	}
}

// guardWebhookBackend is the guard's Service and pod and a
// ValidatingWebhookConfiguration calling it (port unset: 443).
func guardWebhookBackend() []runtime.Object {
	return append(serviceWorkload(guardNS, guardSvc, guardPod, 443, 9443, "10.244.3.4"),
		&admissionregv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "apiservice-guard"},
			Webhooks: []admissionregv1.ValidatingWebhook{{
				Name: guardHook,
				ClientConfig: admissionregv1.WebhookClientConfig{
					Service: &admissionregv1.ServiceReference{Namespace: guardNS, Name: guardSvc},
				},
			}},
		})
}

// mutatingBackend is a MutatingWebhookConfiguration calling port 8443 -> 9443.
func mutatingBackend() []runtime.Object {
	port := int32(8443)
	return append(serviceWorkload("injector", "injector-webhook", "injector-0", 8443, 9443, "10.244.3.5"),
		&admissionregv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "injector"},
			Webhooks: []admissionregv1.MutatingWebhook{{
				Name: "inject.example.io",
				ClientConfig: admissionregv1.WebhookClientConfig{
					Service: &admissionregv1.ServiceReference{Namespace: "injector", Name: "injector-webhook", Port: &port},
				},
			}},
		})
}

// conversionBackend is a CRD whose conversion webhook is a Service in
// "widgets" on port 443 -> 9443.
func conversionBackend() []runtime.Object {
	return append(serviceWorkload("widgets", "widget-conversion", "widget-conversion-0", 443, 9443, "10.244.3.6"),
		&apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.io"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "example.io",
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Kind: "Widget"},
				Scope: apiextensionsv1.NamespaceScoped,
				Conversion: &apiextensionsv1.CustomResourceConversion{
					Strategy: apiextensionsv1.WebhookConverter,
					Webhook: &apiextensionsv1.WebhookConversion{
						ClientConfig: &apiextensionsv1.WebhookClientConfig{
							Service: &apiextensionsv1.ServiceReference{Namespace: "widgets", Name: "widget-conversion"},
						},
						ConversionReviewVersions: []string{"v1"},
					},
				},
			},
		})
}

func TestBlocksWebhook(t *testing.T) {
	cp := objs(apiServerSlice(apiServerIP))
	warn := []verdict{{blocksWebhook, policies.Warn}}
	runNPCases(t, []npCase{
		{
			name:   "default-deny in the guard's namespace",
			state:  slices.Concat(guardWebhookBackend(), cp),
			review: npCreate(netpolicy(guardNS, "default-deny")),
			want:   warn,
			mentions: []string{"webhook " + guardHook, "API server 10.0.0.1", "pod guard/" + guardPod, "9443/TCP",
				"isolated by default-deny", "ipBlock: {cidr: 10.0.0.1/32}", "port: 9443"},
			detail: []string{"denied: isolated by guard/default-deny"},
		},
		{
			name:   "default-deny after an allow of the webhook's pod port",
			state:  slices.Concat(guardWebhookBackend(), cp, objs(allowAPIServer(guardNS, "allow-control-plane", 9443))),
			review: npCreate(netpolicy(guardNS, "default-deny")),
		},
		{
			name:     "allow on the Service port only",
			state:    slices.Concat(guardWebhookBackend(), cp),
			review:   npCreate(allowAPIServer(guardNS, "allow-443", 443)),
			want:     warn,
			mentions: []string{"9443/TCP", "isolated by allow-443"},
		},
		{
			name:     "mutating webhook on an explicit port",
			state:    slices.Concat(mutatingBackend(), cp),
			review:   npCreate(netpolicy("injector", "default-deny")),
			want:     warn,
			mentions: []string{"webhook inject.example.io", "pod injector/injector-0", "9443/TCP"},
		},
		{
			name:     "CRD conversion webhook",
			state:    slices.Concat(conversionBackend(), cp),
			review:   npCreate(netpolicy("widgets", "default-deny")),
			want:     warn,
			mentions: []string{"conversion webhook of CRD widgets.example.io", "pod widgets/widget-conversion-0", "9443/TCP", "isolated by default-deny"},
		},
		{
			name:   "only backends in the policy's namespace are reported",
			state:  slices.Concat(guardWebhookBackend(), conversionBackend(), kedaBackend(), cp),
			review: npCreate(netpolicy("widgets", "default-deny")),
			want:   warn,
		},
	})
}

func TestNamedTargetPort(t *testing.T) {
	cp := objs(apiServerSlice(apiServerIP))
	allowMS := func(name string, port any) *policies.Review {
		return npCreate(netpolicy("kube-system", name, npSelect(msLabels), npAllow(ipBlock(apiServerIP+"/32"), port)))
	}
	runNPCases(t, []npCase{
		{name: "policy opening the resolved pod port 10250", state: slices.Concat(metricsServerBackend(), cp), review: allowMS("allow-10250", 10250)},
		{name: "policy opening the port by its name", state: slices.Concat(metricsServerBackend(), cp), review: allowMS("allow-https", "https")},
		{
			name:   "policy opening only the Service port 443",
			state:  slices.Concat(metricsServerBackend(), cp),
			review: allowMS("allow-443", 443),
			want:   []verdict{{blocksAPIService, policies.Enforce}},
			mentions: []string{"APIService " + msAPI, "pod kube-system/" + msPod, "10250/TCP", "isolated by allow-443",
				"port: 10250"},
		},
		{
			name: "a pod not declaring the named port is no endpoint",
			state: slices.Concat(metricsServerBackend()[:2], cp,
				objs(pod("kube-system", msPod, msLabels, podPort("metrics", 4443), podIP("10.244.2.9")))),
			review: allowMS("allow-443", 443),
		},
	})
}

// ---- apiservice-unreachable: the same facts, seen from an APIService write ----

func TestAPIServiceUnreachable(t *testing.T) {
	deny := netpolicy(kedaNS, "default-deny")
	cp := objs(apiServerSlice(apiServerIP))
	stored := apiService(kedaAPI, kedaNS, kedaSvc, asAvailable(apiregv1.ConditionFalse))
	tests := []struct {
		name     string
		state    []runtime.Object
		update   bool
		want     []verdict
		mentions []string
	}{
		{
			name:   "UPDATE while a default-deny blocks the API server",
			state:  slices.Concat(kedaWorkload(), cp, objs(deny, stored)),
			update: true,
			want:   []verdict{{"apiservice-unreachable", policies.Warn}},
			mentions: []string{"APIService " + kedaAPI, "API server 10.0.0.1", "pod keda/" + kedaPod, "6443/TCP",
				"isolated by default-deny", "ipBlock: {cidr: 10.0.0.1/32}"},
		},
		{
			name:     "CREATE while a default-deny blocks the API server",
			state:    slices.Concat(kedaWorkload(), cp, objs(deny)),
			want:     []verdict{{"apiservice-unreachable", policies.Warn}},
			mentions: []string{"API server 10.0.0.1", "isolated by default-deny"},
		},
		{
			name:  "CREATE with the API server allowed on the pod port",
			state: slices.Concat(kedaWorkload(), cp, objs(deny, allowAPIServer(kedaNS, "allow-control-plane", 6443))),
		},
		{
			name:  "CREATE without any policy",
			state: slices.Concat(kedaWorkload(), cp),
		},
		{
			name:     "no control-plane source known: cannot verify",
			state:    slices.Concat(kedaWorkload(), objs(deny)),
			want:     []verdict{{"apiservice-unreachable", policies.Warn}},
			mentions: []string{"cannot verify", "--control-plane-cidr"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := apiService(kedaAPI, kedaNS, kedaSvc)
			r := createReview(api, time.Time{})
			if tc.update {
				r = updateReview(stored, api, time.Time{})
			}
			got := ruleFindings(mustEngine(t, defaultConfig(t)).Evaluate(t.Context(), r, newView(t, tc.state...)), "apiservice-unreachable")
			if diff := cmp.Diff(tc.want, verdicts(got)); diff != "" {
				t.Errorf("findings of apiservice-unreachable (-want +got):\n%s\nfindings: %v", diff, got)
			}
			for _, f := range got {
				for _, m := range tc.mentions {
					if !strings.Contains(f.String(), m) {
						t.Errorf("finding %q does not mention %q", f.String(), m)
					}
				}
			}
		})
	}
}
