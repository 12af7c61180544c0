package cluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestFollowPolicyAPIs: a policy API whose CRD is installed after the view
// started is watched once its CRD is established, with no restart; before
// that it reads as none.
func TestFollowPolicyAPIs(t *testing.T) {
	cfg := envConfig(t)
	admin := adminClient(t, cfg)
	ns := unique("live-cilium")
	create(t, admin, namespace(ns))
	l := startLive(t, cfg, LiveOptions{})
	ctx := t.Context()
	if got := l.PolicyAPIs(); got.Any() {
		t.Fatalf("at start the view watches %s, want none", got)
	}
	if ps, err := l.CiliumPolicies(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("CiliumPolicies without the CRDs = %v, %v", ps, err)
	}
	changes := make(chan string, 4)
	followCtx, stop := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		l.FollowPolicyAPIs(followCtx, 50*time.Millisecond, func(a PolicyAPIs, err error) {
			if err != nil {
				t.Errorf("adding the informers: %v", err)
			}
			select {
			case changes <- a.String():
			default:
			}
		})
	}()
	t.Cleanup(func() { stop(); <-followed }) // no callback after the test

	crds := envtest.CRDInstallOptions{Paths: []string{
		filepath.Join("..", "test", "crds", "ciliumnetworkpolicies.cilium.io.yaml"),
		filepath.Join("..", "test", "crds", "ciliumclusterwidenetworkpolicies.cilium.io.yaml")}}
	if _, err := envtest.InstallCRDs(cfg, crds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(cfg, crds); err != nil {
			t.Errorf("uninstalling CRDs: %v", err)
		}
	})
	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"name": "keda-metrics", "namespace": ns},
		"spec": map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{"app": "keda"}},
			"ingress":          []any{map[string]any{"fromEntities": []any{"cluster"}}},
			"ingressDeny":      []any{map[string]any{"fromCIDR": []any{"203.0.113.0/24"}, "unknownField": true}},
		},
	}}
	create(t, admin, policy)

	deadline := time.After(30 * time.Second)
	for {
		ps, err := l.CiliumPolicies(ctx)
		if err == nil && len(ps) == 1 {
			p := ps[0]
			if p.Namespace != ns || p.Spec == nil || len(p.Spec.Ingress) != 1 || p.Spec.Ingress[0].FromEntities[0] != "cluster" ||
				len(p.Spec.IngressDeny) != 1 || p.Spec.IngressDeny[0].FromCIDR[0] != "203.0.113.0/24" {
				t.Fatalf("policy read as %+v", p)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatalf("the policy was not read 30 s after its CRD was installed (watching %s): %v, %v", l.PolicyAPIs(), ps, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The listing kept between reviews follows every change.
	second := policy.DeepCopy()
	second.SetName("second")
	second.SetResourceVersion("")
	create(t, admin, second)
	waitCilium := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ps, err := l.CiliumPolicies(ctx)
			if err == nil && len(ps) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the view lists %d Cilium policies (%v), want %d", len(ps), err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCilium(2)
	if err := admin.Delete(ctx, second); err != nil {
		t.Fatal(err)
	}
	waitCilium(1)
	if got := <-changes; got != "CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy" && got != "CiliumNetworkPolicy" && got != "CiliumClusterwideNetworkPolicy" {
		t.Errorf("changed told %q", got)
	}
	if got := l.PolicyAPIs(); !got.CiliumNetworkPolicy {
		t.Errorf("watching %s", got)
	}
}
