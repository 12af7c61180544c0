package policies_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"apiservice-guard.io/apiservice-guard/policies"
)

// TestEngineFollowsPolicyChanges: one engine, hence one cache of compiled
// policies, reviews the same CREATE of a default-deny against a changing
// namespace. Each answer must be the one for the state it is given.
func TestEngineFollowsPolicyChanges(t *testing.T) {
	withRV := func(np *networkingv1.NetworkPolicy, rv string) *networkingv1.NetworkPolicy {
		np.ResourceVersion = rv
		return np
	}
	allow := withRV(allowAPIServer(kedaNS, "allow-control-plane", 6443), "11")
	// The same policy, edited to select other pods: the adapter is no longer
	// isolated before the write, and the default-deny cuts it off.
	elsewhere := withRV(netpolicy(kedaNS, "allow-control-plane", npSelect(map[string]string{"app": "other"}),
		npAllow(ipBlock(apiServerIP+"/32"), 6443)), "12")
	other := withRV(netpolicy(kedaNS, "deny-operator", npSelect(map[string]string{"app": "keda-operator"})), "13")
	enforce := []verdict{{blocksAPIService, policies.Enforce}}
	engine := mustEngine(t, defaultConfig(t))
	for _, step := range []struct {
		name  string
		state []runtime.Object
		want  []verdict
	}{
		{"allow in force", objs(allow), nil},
		{"allow edited to select other pods", objs(elsewhere), enforce},
		{"allow in force again", objs(allow), nil},
		{"allow deleted", objs(other), enforce},
		{"allow added back", objs(other, allow), nil},
	} {
		v := newView(t, slices.Concat(kedaBackend(), objs(apiServerSlice(apiServerIP)), step.state)...)
		got := engine.Evaluate(t.Context(), npCreate(netpolicy(kedaNS, "default-deny")), v)
		if diff := cmp.Diff(step.want, verdicts(got)); diff != "" {
			t.Errorf("%s: findings (-want +got):\n%s\nall findings: %v", step.name, diff, got)
		}
	}
}
