package e2e

import (
	"strings"
	"testing"
)

// dryRunKustomization renders a kustomization with the built kubectl and
// server-side dry-runs it, returning the rendering and kubectl's output.
// envtest installed webhook configurations of the same names pointing at
// the local guard (by URL); a dry run would merge the two, so the
// rendering's are validated under other names instead.
func dryRunKustomization(t *testing.T, dir ...string) (rendered, out string) {
	t.Helper()
	rendered, stderr, err := kubectl(t, "", "kustomize", repoPath(dir...))
	if err != nil {
		t.Fatalf("rendering %s: %v\n%s", strings.Join(dir, "/"), err, stderr)
	}
	docs := strings.Split(rendered, "\n---\n")
	for i, d := range docs {
		if strings.Contains(d, "kind: ValidatingWebhookConfiguration") || strings.Contains(d, "kind: MutatingWebhookConfiguration") {
			docs[i] = strings.Replace(d, "\n  name: apiservice-guard\n", "\n  name: apiservice-guard-dryrun\n", 1)
		}
	}
	out, stderr, err = kubectl(t, strings.Join(docs, "\n---\n"), "apply", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("server-side dry run of %s: %v\n%s%s", strings.Join(dir, "/"), err, out, stderr)
	}
	return rendered, out
}

// TestManifestsAreAccepted: the kustomize base and both overlays, rendered
// by the built kubectl, pass the API server's validation (server-side dry
// run). The base and the self-managed overlay run the guard with its own
// certificates and the RBAC for them; the cert-manager overlay switches to
// files from cert-manager, with the CA injection annotation, and leaves
// that RBAC out. The guard every other e2e test talks to already runs with
// the base's RBAC.
func TestManifestsAreAccepted(t *testing.T) {
	common := []string{
		"deployment.apps/apiservice-guard", "service/apiservice-guard-webhook",
		"clusterrole.rbac.authorization.k8s.io/apiservice-guard ",
		"poddisruptionbudget.policy/apiservice-guard",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/apiservice-guard-dryrun",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/apiservice-guard-dryrun",
		"configmap/apiservice-guard-config",
	}
	selfManaged := []string{
		"clusterrole.rbac.authorization.k8s.io/apiservice-guard-cabundle",
		"role.rbac.authorization.k8s.io/apiservice-guard-certs",
	}
	for _, dir := range [][]string{{"manifests", "base"}, {"manifests", "overlays", "self-managed"}} {
		rendered, out := dryRunKustomization(t, dir...)
		for _, want := range append(common, selfManaged...) {
			if !strings.Contains(out+"\n", want) {
				t.Errorf("%s: dry run output lacks %s:\n%s", strings.Join(dir, "/"), want, out)
			}
		}
		if !strings.Contains(rendered, "--cert-mode=self-managed") || strings.Contains(rendered, "secretName:") {
			t.Errorf("%s: want the self-managed mode and no Secret volume", strings.Join(dir, "/"))
		}
		// The k0s audit reads kube-system: its Role must stay there.
		if !strings.Contains(rendered, "name: apiservice-guard-k0s-audit\n  namespace: kube-system\n") {
			t.Errorf("%s: the k0s audit's Role is not in kube-system", strings.Join(dir, "/"))
		}
	}

	rendered, out := dryRunKustomization(t, "manifests", "overlays", "cert-manager")
	for _, want := range append(common, "certificate.cert-manager.io/apiservice-guard-webhook", "issuer.cert-manager.io/apiservice-guard-selfsigned") {
		if !strings.Contains(out+"\n", want) {
			t.Errorf("cert-manager overlay: dry run output lacks %s:\n%s", want, out)
		}
	}
	for _, unwanted := range selfManaged {
		if strings.Contains(out, unwanted) {
			t.Errorf("cert-manager overlay: %s is not needed, yet applied", unwanted)
		}
	}
	for _, want := range []string{
		"cert-manager.io/inject-ca-from: apiservice-guard-system/apiservice-guard-webhook",
		"kind: Certificate", "secretName: apiservice-guard-tls",
		"- apiservice-guard-webhook.apiservice-guard-system.svc",
		"--cert-mode=files", "--cert-dir=/etc/apiservice-guard/tls", "mountPath: /etc/apiservice-guard/tls",
	} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered cert-manager overlay lacks %q", want)
		}
	}
	if strings.Contains(rendered, "--cert-mode=self-managed") {
		t.Error("rendered cert-manager overlay keeps --cert-mode=self-managed")
	}
	// Both webhook configurations, validating and mutating, get the CA.
	if n := strings.Count(rendered, "cert-manager.io/inject-ca-from: apiservice-guard-system/apiservice-guard-webhook"); n != 2 {
		t.Errorf("rendered overlay annotates %d webhook configurations for CA injection, want 2", n)
	}
}
