package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/k0s"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// webhookManifest is the webhook configuration the guard is installed with,
// relative to this package's directory.
var webhookManifest = filepath.Join("..", "manifests", "base", "webhook.yaml")

// ruleResources are the resources webhook rules name for the kinds the
// policies review. Explicit rather than guessed from the kind: a rule for a
// kind missing here fails TestManifestRoutesEveryRule until it is added.
var ruleResources = map[schema.GroupKind]string{
	policies.APIServiceKind:                     "apiservices",
	policies.NetworkPolicyKind:                  "networkpolicies",
	policies.ConfigMapKind:                      "configmaps",
	k0s.ClusterConfigKind:                       "clusterconfigs",
	policies.ClusterNetworkPolicyKind:           "clusternetworkpolicies",
	policies.AdminNetworkPolicyKind:             "adminnetworkpolicies",
	policies.BaselineAdminNetworkPolicyKind:     "baselineadminnetworkpolicies",
	policies.CiliumNetworkPolicyKind:            "ciliumnetworkpolicies",
	policies.CiliumClusterwideNetworkPolicyKind: "ciliumclusterwidenetworkpolicies",
}

// allOperations are the operations a rule with no Operations reviews.
var allOperations = []policies.Operation{policies.Create, policies.Update, policies.Delete}

// hook is what routing reads of one webhook of a validating or mutating
// configuration: which requests it sends, and to which path.
type hook struct {
	name     string
	mutating bool
	// path is clientConfig.service.path, or the path of clientConfig.url.
	path  string
	rules []admissionregv1.RuleWithOperations
}

// loadHooks decodes every webhook configuration in the manifest, strictly:
// a misspelt field fails the test rather than dropping a route.
func loadHooks(t *testing.T) []hook {
	t.Helper()
	data, err := os.ReadFile(webhookManifest)
	if err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(cluster.NewScheme(), serializer.EnableStrict).UniversalDeserializer()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var hooks []hook
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", webhookManifest, err)
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s#%d: %v", webhookManifest, i, err)
		}
		switch c := obj.(type) {
		case *admissionregv1.ValidatingWebhookConfiguration:
			for _, w := range c.Webhooks {
				hooks = append(hooks, hook{name: w.Name, path: hookPath(t, w.ClientConfig), rules: w.Rules})
			}
		case *admissionregv1.MutatingWebhookConfiguration:
			for _, w := range c.Webhooks {
				hooks = append(hooks, hook{name: w.Name, mutating: true, path: hookPath(t, w.ClientConfig), rules: w.Rules})
			}
		}
	}
	if len(hooks) == 0 {
		t.Fatalf("%s holds no webhook", webhookManifest)
	}
	return hooks
}

// hookPath is the path the API server posts reviews to.
func hookPath(t *testing.T, cc admissionregv1.WebhookClientConfig) string {
	t.Helper()
	switch {
	case cc.Service != nil && cc.Service.Path != nil:
		return *cc.Service.Path
	case cc.URL != nil:
		u, err := url.Parse(*cc.URL)
		if err != nil {
			t.Fatalf("clientConfig.url %q: %v", *cc.URL, err)
		}
		return u.Path
	}
	return "/"
}

// routes reports whether h sends a request for resource in group with op.
// API versions are not compared: the manifest's webhooks use matchPolicy
// Equivalent, so the API server converts other versions to the one named.
func (h hook) routes(group, resource string, op policies.Operation) bool {
	for _, r := range h.rules {
		if (slices.Contains(r.APIGroups, group) || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*") || slices.Contains(r.Resources, "*/*")) &&
			(slices.Contains(r.Operations, admissionregv1.OperationType(op)) || slices.Contains(r.Operations, admissionregv1.OperationAll)) {
			return true
		}
	}
	return false
}

// unrouted returns one line for every (kind, operation) a rule reviews that
// no webhook sends to where the rule runs: a validating rule needs a
// ValidatingWebhookConfiguration webhook posting to webhook.ValidatePath, a
// mutating rule a MutatingWebhookConfiguration webhook posting to
// webhook.MutatePath. Every rule counts, those Off by default included: a
// config can turn them on.
func unrouted(rules []policies.Rule, hooks []hook) []string {
	var out []string
	for _, rule := range rules {
		mutating, path, config := false, webhook.ValidatePath, "ValidatingWebhookConfiguration"
		if rule.Mutate != nil {
			mutating, path, config = true, webhook.MutatePath, "MutatingWebhookConfiguration"
		}
		ops := rule.Operations
		if len(ops) == 0 {
			ops = allOperations
		}
		for _, kind := range rule.Kinds {
			resource, ok := ruleResources[kind]
			if !ok {
				out = append(out, fmt.Sprintf("rule %s reviews %s, which ruleResources does not map to a resource", rule.Name, kind))
				continue
			}
			for _, op := range ops {
				if !slices.ContainsFunc(hooks, func(h hook) bool {
					return h.mutating == mutating && h.path == path && h.routes(kind.Group, resource, op)
				}) {
					out = append(out, fmt.Sprintf("rule %s reviews %s %s, but no %s webhook sends it to %s", rule.Name, kind, op, config, path))
				}
			}
		}
	}
	return out
}

// TestManifestRoutesEveryRule fails when a (kind, operation) some rule
// reviews never reaches the guard in a cluster installed from manifests/base.
func TestManifestRoutesEveryRule(t *testing.T) {
	for _, line := range unrouted(policies.DefaultRules(), loadHooks(t)) {
		t.Errorf("%s: %s", webhookManifest, line)
	}
}

// TestUnroutedReportsMissingRoutes: the check behind
// TestManifestRoutesEveryRule fails when a route goes missing.
func TestUnroutedReportsMissingRoutes(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the manifest's webhooks.
		edit func(hooks []hook) []hook
		// want are lines unrouted must report, among others.
		want []string
	}{{
		name: "NetworkPolicy webhook removed",
		edit: func(hooks []hook) []hook {
			return slices.DeleteFunc(hooks, func(h hook) bool { return h.name == "networkpolicies.apiservice-guard.io" })
		},
		want: []string{
			"rule networkpolicy-blocks-apiservice reviews NetworkPolicy.networking.k8s.io CREATE, but no ValidatingWebhookConfiguration webhook sends it to /validate",
			"rule networkpolicy-blocks-apiservice reviews NetworkPolicy.networking.k8s.io DELETE, but no ValidatingWebhookConfiguration webhook sends it to /validate",
		},
	}, {
		name: "DELETE dropped from the NetworkPolicy webhook",
		edit: func(hooks []hook) []hook {
			for i, h := range hooks {
				if h.name == "networkpolicies.apiservice-guard.io" {
					hooks[i].rules = []admissionregv1.RuleWithOperations{{
						Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
						Rule:       admissionregv1.Rule{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}},
					}}
				}
			}
			return hooks
		},
		want: []string{
			"rule networkpolicy-blocks-apiservice reviews NetworkPolicy.networking.k8s.io DELETE, but no ValidatingWebhookConfiguration webhook sends it to /validate",
		},
	}, {
		name: "mutating webhook removed",
		edit: func(hooks []hook) []hook {
			return slices.DeleteFunc(hooks, func(h hook) bool { return h.mutating })
		},
		want: []string{
			"rule apiservice-cabundle-inject reviews APIService.apiregistration.k8s.io CREATE, but no MutatingWebhookConfiguration webhook sends it to /mutate",
			"rule apiservice-cabundle-preserve reviews APIService.apiregistration.k8s.io UPDATE, but no MutatingWebhookConfiguration webhook sends it to /mutate",
		},
	}, {
		name: "k0s ConfigMap webhook posting to the wrong path",
		edit: func(hooks []hook) []hook {
			for i, h := range hooks {
				if h.name == "k0s-configmaps.apiservice-guard.io" {
					hooks[i].path = webhook.MutatePath
				}
			}
			return hooks
		},
		want: []string{
			"rule k0s-konnectivity-disabled reviews ConfigMap CREATE, but no ValidatingWebhookConfiguration webhook sends it to /validate",
		},
	}, {
		name: "no webhook at all",
		edit: func([]hook) []hook { return nil },
		want: []string{
			"rule k0s-calico-autodetect reviews ClusterConfig.k0s.k0sproject.io UPDATE, but no ValidatingWebhookConfiguration webhook sends it to /validate",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unrouted(policies.DefaultRules(), tt.edit(loadHooks(t)))
			for _, want := range tt.want {
				if !slices.Contains(got, want) {
					t.Errorf("unrouted lacks %q; got:\n%s", want, strings.Join(got, "\n"))
				}
			}
		})
	}
	t.Run("kind without a resource", func(t *testing.T) {
		noop := func(context.Context, *policies.Review, cluster.View) []policies.Result { return nil }
		rule := policies.Rule{Name: "secret-rule", Kinds: []schema.GroupKind{{Kind: "Secret"}}, Check: noop}
		want := []string{"rule secret-rule reviews Secret, which ruleResources does not map to a resource"}
		if got := unrouted([]policies.Rule{rule}, loadHooks(t)); !slices.Equal(want, got) {
			t.Errorf("unrouted = %q, want %q", got, want)
		}
	})
}
