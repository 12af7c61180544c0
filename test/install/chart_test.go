package install

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"

	"apiservice-guard.io/apiservice-guard/cluster"
)

var chartDir = repoPath("charts", "apiservice-guard")

// valueSets are the chart's values the tests render: the defaults, one
// replica, cert-manager, and a release of another name with everything
// optional turned on.
var valueSets = []struct {
	name, release, namespace string
	values                   string
}{
	{"defaults", "apiservice-guard", "apiservice-guard-system", ``},
	{"one replica", "apiservice-guard", "apiservice-guard-system", `replicaCount: 1`},
	{"cert-manager", "apiservice-guard", "apiservice-guard-system", `certManager: {enabled: true}`},
	{"everything on", "guard", "guard-ns", `
priorityClassName: system-cluster-critical
webhook: {failurePolicy: Ignore, timeoutSeconds: 3, namespaceSelector: {matchExpressions: [{key: guard, operator: NotIn, values: ["off"]}]}}
config: {mode: audit, exemptNamespaces: [dev], rules: {apiservice-insecure-skip-tls: "Off"}, controlPlane: {cidrs: [192.0.2.0/24]}}
networkPolicy: {enabled: true, metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}
serviceMonitor: {enabled: true}
extraArgs: [--audit-interval=30m]
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Exists}]
`},
}

// renderChart renders the chart as `helm template` would, with Helm's own
// library, and returns the manifests, each file's documents in file order.
func renderChart(t testing.TB, release, namespace, values string) string {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals,
		common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}, common.DefaultCapabilities, false)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(chrt, rv)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	var docs []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		for _, d := range strings.Split(files[name], "\n---") {
			if strings.TrimSpace(stripComments(d)) != "" {
				docs = append(docs, strings.TrimSpace(d))
			}
		}
	}
	return strings.Join(docs, "\n---\n") + "\n"
}

func stripComments(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// objects decodes rendered manifests, typed where the guard's scheme knows
// the kind, keyed "Kind/namespace/name".
func objects(t testing.TB, manifests string) map[string]runtime.Object {
	t.Helper()
	dec := serializer.NewCodecFactory(cluster.NewScheme()).UniversalDeserializer()
	out := map[string]runtime.Object{}
	for _, d := range strings.Split(manifests, "\n---\n") {
		if strings.TrimSpace(stripComments(d)) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			t.Fatalf("decoding %q: %v", d, err)
		}
		key := u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
		if obj, _, err := dec.Decode([]byte(d), nil, nil); err == nil {
			out[key] = obj
		} else {
			out[key] = u
		}
	}
	return out
}

// kustomize renders a kustomization with the built kubectl.
func kustomize(t testing.TB, dir string) string {
	t.Helper()
	return kubectl(t, "", "kustomize", dir)
}

// TestChartLints: Helm's own lint rules (Chart.yaml, values, templates)
// find nothing for any value set.
func TestChartLints(t *testing.T) {
	for _, vs := range valueSets {
		vals := map[string]any{}
		if err := yaml.Unmarshal([]byte(vs.values), &vals); err != nil {
			t.Fatal(err)
		}
		res := lint.RunAll(chartDir, vals, vs.namespace)
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: %s", vs.name, m.Error())
			}
		}
	}
}

// TestChartRenders: every value set renders to manifests the API server
// accepts (server-side dry run; the ServiceMonitor, whose CRD is not
// installed here, is checked as text), with what the values ask for.
func TestChartRenders(t *testing.T) {
	fresh(t) // no webhook configurations: the dry run's NetworkPolicy is not sent to a guard
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			rendered := renderChart(t, vs.release, vs.namespace, vs.values)
			ensureNamespace(t, vs.namespace)
			var apply []string
			for _, d := range strings.Split(rendered, "\n---\n") {
				if !strings.Contains(d, "kind: ServiceMonitor") {
					apply = append(apply, d)
				}
			}
			out := kubectl(t, strings.Join(apply, "\n---\n"), "apply", "--dry-run=server", "-f", "-")
			if n := strings.Count(out, "(server dry run)"); n != len(apply) {
				t.Errorf("%d of %d objects passed the dry run:\n%s", n, len(apply), out)
			}
			checkRendered(t, vs.name, rendered)
		})
	}
}

// ensureNamespace creates a namespace unless it exists.
func ensureNamespace(t testing.TB, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := suite.cp.KubectlCommand(ctx, "create", "namespace", ns).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "AlreadyExists") {
		t.Fatalf("creating namespace %s: %v\n%s", ns, err, out)
	}
}

// checkRendered checks what each value set asks for.
func checkRendered(t *testing.T, set, rendered string) {
	objs := objects(t, rendered)
	var dep *appsv1.Deployment
	var vwc *admissionregv1.ValidatingWebhookConfiguration
	var mwc *admissionregv1.MutatingWebhookConfiguration
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			dep = o
		case *admissionregv1.ValidatingWebhookConfiguration:
			vwc = o
		case *admissionregv1.MutatingWebhookConfiguration:
			mwc = o
		}
	}
	if dep == nil || vwc == nil || mwc == nil {
		t.Fatalf("%s: a Deployment and two webhook configurations, got %v", set, slices.Sorted(maps.Keys(objs)))
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	sc := c.SecurityContext
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" ||
		sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: not the restricted security context", set)
	}
	if len(pod.TopologySpreadConstraints) == 0 {
		t.Errorf("%s: no topology spread", set)
	}
	args := strings.Join(c.Args, " ")
	wantPolicy := admissionregv1.Fail
	switch set {
	case "one replica", "everything on":
		wantPolicy = admissionregv1.Ignore
	}
	for _, w := range vwc.Webhooks {
		if *w.FailurePolicy != wantPolicy {
			t.Errorf("%s: webhook %s failurePolicy %s, want %s", set, w.Name, *w.FailurePolicy, wantPolicy)
		}
	}
	for _, a := range []map[string]string{vwc.Annotations, mwc.Annotations} {
		if a["admissions.enforcer/disabled"] != "true" {
			t.Errorf("%s: a webhook configuration lacks the AKS opt-out annotation", set)
		}
	}
	_, pdb := objs["PodDisruptionBudget/"+dep.Namespace+"/"+dep.Name]
	if !pdb {
		t.Errorf("%s: no PodDisruptionBudget", set)
	}
	switch set {
	case "cert-manager":
		if !strings.Contains(args, "--cert-mode=files") || mwc.Annotations["cert-manager.io/inject-ca-from"] == "" {
			t.Errorf("%s: args %q, annotations %v", set, args, mwc.Annotations)
		}
		if _, ok := objs["Role/"+dep.Namespace+"/apiservice-guard-certs"]; ok {
			t.Errorf("%s: the self-managed RBAC is rendered", set)
		}
	case "everything on":
		for _, want := range []string{"--cert-mode=self-managed", "--cert-secret=guard-apiservice-guard-certs", "--service-name=guard-apiservice-guard-webhook",
			"--webhook-configuration=guard-apiservice-guard", "--namespace=guard-ns", "--audit-interval=30m"} {
			if !strings.Contains(args, want) {
				t.Errorf("%s: args %q lack %s", set, args, want)
			}
		}
		if pod.PriorityClassName != "system-cluster-critical" || *vwc.Webhooks[0].TimeoutSeconds != 3 {
			t.Errorf("%s: priorityClassName %q, timeoutSeconds %d", set, pod.PriorityClassName, *vwc.Webhooks[0].TimeoutSeconds)
		}
		if !strings.Contains(rendered, "kind: ServiceMonitor") {
			t.Errorf("%s: no ServiceMonitor", set)
		}
		if !strings.Contains(rendered, "mode: audit") || !strings.Contains(rendered, "apiservice-insecure-skip-tls: \"Off\"") {
			t.Errorf("%s: the policy config is not the values'", set)
		}
		np, ok := objs["NetworkPolicy/guard-ns/guard-apiservice-guard"].(*networkingv1.NetworkPolicy)
		if !ok || np.Spec.Ingress[0].From[0].IPBlock == nil || np.Spec.Ingress[0].From[0].IPBlock.CIDR != "192.0.2.0/24" {
			t.Errorf("%s: the NetworkPolicy does not admit the control plane's CIDR", set)
		}
	default:
		if !strings.Contains(args, "--cert-mode=self-managed") {
			t.Errorf("%s: args %q", set, args)
		}
	}
}

// TestChartMatchesKustomize: the chart at its defaults (with the
// kustomize base's failurePolicy Ignore) grants exactly the RBAC of
// manifests/base and registers exactly its webhooks.
func TestChartMatchesKustomize(t *testing.T) {
	chart := objects(t, renderChart(t, "apiservice-guard", "apiservice-guard-system", `webhook: {failurePolicy: Ignore}`))
	base := objects(t, kustomize(t, repoPath("manifests", "base")))
	compared := 0
	for key, b := range base {
		c, ok := chart[key]
		switch b := b.(type) {
		case *rbacv1.ClusterRole, *rbacv1.Role, *rbacv1.ClusterRoleBinding, *rbacv1.RoleBinding,
			*admissionregv1.ValidatingWebhookConfiguration, *admissionregv1.MutatingWebhookConfiguration:
			if !ok {
				t.Errorf("the chart has no %s", key)
				continue
			}
			if diff := cmp.Diff(essence(b), essence(c)); diff != "" {
				t.Errorf("%s differs (-kustomize +chart):\n%s", key, diff)
			}
			compared++
		}
	}
	for key, c := range chart {
		switch c.(type) {
		case *rbacv1.ClusterRole, *rbacv1.Role, *rbacv1.ClusterRoleBinding, *rbacv1.RoleBinding:
			if _, ok := base[key]; !ok {
				t.Errorf("the chart grants %s, which the base does not", key)
			}
		}
	}
	if compared < 10 {
		t.Errorf("only %d objects compared", compared)
	}
}

// essence is what an object grants or registers: metadata left out.
func essence(o runtime.Object) any {
	switch o := o.(type) {
	case *rbacv1.ClusterRole:
		return o.Rules
	case *rbacv1.Role:
		return o.Rules
	case *rbacv1.ClusterRoleBinding:
		return []any{o.RoleRef, o.Subjects}
	case *rbacv1.RoleBinding:
		return []any{o.RoleRef, o.Subjects}
	case *admissionregv1.ValidatingWebhookConfiguration:
		return o.Webhooks
	case *admissionregv1.MutatingWebhookConfiguration:
		return o.Webhooks
	}
	return o
}

// TestChartNetworkPolicyPassesCheck: the chart's NetworkPolicy for the
// guard's own pods passes the guard's own check (the guard's Service is a
// webhook backend the control plane must reach), by default and with the
// control plane's CIDRs; a policy that admits only the namespace's pods
// does not.
func TestChartNetworkPolicyPassesCheck(t *testing.T) {
	for _, tt := range []struct {
		name, values string
		pass         bool
	}{
		{"anywhere", `networkPolicy: {enabled: true}`, true},
		{"the control plane's CIDRs", `networkPolicy: {enabled: true}
config: {controlPlane: {cidrs: [192.0.2.0/24]}}`, true},
		{"only the namespace's pods", `networkPolicy: {enabled: true, webhookFrom: [{podSelector: {}}]}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "chart.yaml")
			if err := os.WriteFile(path, []byte(renderChart(t, "apiservice-guard", "apiservice-guard-system", tt.values)), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(suite.in.Bin, "check", "-f", path, "--control-plane-cidr", "192.0.2.0/24")
			out, err := cmd.CombinedOutput()
			found := strings.Contains(string(out), "[networkpolicy-blocks-webhook]")
			switch {
			case err != nil:
				t.Errorf("check: %v\n%s", err, out)
			case tt.pass && found:
				t.Errorf("check finds that the chart's NetworkPolicy cuts the control plane off:\n%s", out)
			case !tt.pass && !found:
				t.Errorf("check passes a policy that cuts the control plane off:\n%s", out)
			}
		})
	}
}
