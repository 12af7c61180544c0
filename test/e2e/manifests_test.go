package e2e

import (
	"strings"
	"testing"
)

// TestManifestsAreAccepted: the kustomize base, rendered by the built
// kubectl, passes the API server's validation (server-side dry run), and the
// cert-manager overlay renders with the CA injection annotation. The guard
// every other e2e test talks to already runs with the base's RBAC.
func TestManifestsAreAccepted(t *testing.T) {
	base, stderr, err := kubectl(t, "", "kustomize", repoPath("manifests", "base"))
	if err != nil {
		t.Fatalf("rendering manifests/base: %v\n%s", err, stderr)
	}
	// envtest installed webhook configurations of the same names pointing at
	// the local guard (by URL); a dry run would merge the two. Validate the
	// base's under other names instead.
	docs := strings.Split(base, "\n---\n")
	for i, d := range docs {
		if strings.Contains(d, "kind: ValidatingWebhookConfiguration") || strings.Contains(d, "kind: MutatingWebhookConfiguration") {
			docs[i] = strings.Replace(d, "\n  name: apiservice-guard\n", "\n  name: apiservice-guard-dryrun\n", 1)
		}
	}
	out, stderr, err := kubectl(t, strings.Join(docs, "\n---\n"), "apply", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("server-side dry run of manifests/base: %v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{
		"deployment.apps/apiservice-guard", "service/apiservice-guard-webhook",
		"clusterrole.rbac.authorization.k8s.io/apiservice-guard",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/apiservice-guard-dryrun",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/apiservice-guard-dryrun",
		"configmap/apiservice-guard-config",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %s:\n%s", want, out)
		}
	}
	rendered, stderr, err := kubectl(t, "", "kustomize", repoPath("manifests", "overlays", "cert-manager"))
	if err != nil {
		t.Fatalf("rendering the cert-manager overlay: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"cert-manager.io/inject-ca-from: apiservice-guard-system/apiservice-guard-webhook",
		"kind: Certificate", "secretName: apiservice-guard-tls",
		"- apiservice-guard-webhook.apiservice-guard-system.svc",
	} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered overlay lacks %q", want)
		}
	}
	// Both webhook configurations, validating and mutating, get the CA.
	if n := strings.Count(rendered, "cert-manager.io/inject-ca-from: apiservice-guard-system/apiservice-guard-webhook"); n != 2 {
		t.Errorf("rendered overlay annotates %d webhook configurations for CA injection, want 2", n)
	}
}
