package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cnp "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/policies/netpol"
	"apiservice-guard.io/apiservice-guard/test/harness"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// scaleEnv is the generated cluster, loaded once per process (it takes a
// while), and the Live view synced from it.
type scaleEnv struct {
	state *scaleState
	live  *cluster.Live
	// heapBefore and heapAfter are read after a GC, before StartLive and
	// after the view synced.
	heapBefore, heapAfter runtime.MemStats
	syncTook              time.Duration
}

var scaleCluster = sync.OnceValues(func() (*scaleEnv, error) {
	cp, err := liveEnv()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	apiServer, err := apiServerAddr(ctx, cp)
	if err != nil {
		return nil, err
	}
	st, err := loadScale(ctx, cp.Env.Config, apiServer)
	if err != nil {
		return nil, err
	}
	env := &scaleEnv{state: st}
	runtime.GC()
	runtime.ReadMemStats(&env.heapBefore)
	liveCtx, stop := context.WithCancel(ctx)
	stopViews = append(stopViews, stop)
	start := time.Now()
	if env.live, err = cluster.StartLive(liveCtx, cp.Env.Config, cluster.LiveOptions{
		PolicyAPIs: cluster.PolicyAPIs{ClusterNetworkPolicyV1Beta1: true, CiliumNetworkPolicy: true, CiliumClusterwideNetworkPolicy: true}}); err != nil {
		return nil, err
	}
	env.syncTook = time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&env.heapAfter)
	return env, nil
})

// apiServerAddr is the first address of the default/kubernetes
// EndpointSlice, which the API server writes shortly after it starts.
func apiServerAddr(ctx context.Context, cp *harness.ControlPlane) (netip.Addr, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		var slices discoveryv1.EndpointSliceList
		err := cp.Client.List(ctx, &slices, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"})
		if err == nil {
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					for _, a := range e.Addresses {
						return netip.ParseAddr(a)
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("no default/kubernetes EndpointSlice address after a minute (last error: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// BenchmarkNetworkPolicyScale measures in-process validating reviews of a
// NetworkPolicy CREATE on a generated cluster of 20,000 pods, 2,000
// namespaces, 5,000 NetworkPolicies, 100 ClusterNetworkPolicies, 1,000
// Cilium policies and 100 APIService backends, read from a Live view synced
// from a real kube-apiserver. Two writes: in the backend namespace holding
// 1,000 policies (every rule evaluates whether the API server still reaches
// the adapters), and in a namespace with no backend. The backend write is
// also timed with the Cilium policies hidden from the view (the tiers'
// model), and with every cluster-wide policy hidden, in the same run; and a
// CiliumNetworkPolicy CREATE among the 1,000. It also reports the heap the
// Live view takes for that state.
func BenchmarkNetworkPolicyScale(b *testing.B) {
	env, err := scaleCluster()
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	v := webhook.NewValidator(webhook.Options{Engine: engine, View: env.live})
	st := env.state

	b.Run("live-view-heap", func(b *testing.B) {
		b.Logf("loaded %d objects in %s; the Live view synced in %s", st.objects, st.took.Round(time.Millisecond), env.syncTook.Round(time.Millisecond))
		for b.Loop() {
		}
		mb := func(after, before uint64) float64 { return float64(int64(after)-int64(before)) / (1 << 20) }
		b.ReportMetric(mb(env.heapAfter.HeapAlloc, env.heapBefore.HeapAlloc), "live-alloc-MB")
		b.ReportMetric(mb(env.heapAfter.HeapInuse, env.heapBefore.HeapInuse), "live-inuse-MB")
		b.ReportMetric(mb(env.heapAfter.HeapAlloc, 0), "total-alloc-MB")
	})
	b.Run("write=backend-ns-1000-policies", func(b *testing.B) {
		req := npRequest(b, admissionv1.Create, asAdmitted(b, ctx, prometheusPolicy(st.bigNS, "allow-adapter-scrape",
			metav1.LabelSelector{MatchLabels: map[string]string{"app": "adapter"}})))
		miss := missReview(b, ctx, env.live, req)
		// The state is what it claims: without its allow, the API server
		// would be cut off from the adapters.
		var allow networkingv1.NetworkPolicy
		cp, _ := liveEnv()
		if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: st.bigNS, Name: "allow-apiserver"}, &allow); err != nil {
			b.Fatal(err)
		}
		resp := v.Handle(ctx, npRequest(b, admissionv1.Delete, &allow))
		if resp.Allowed || !strings.Contains(resp.Result.Message, "networkpolicy-blocks-apiservice") {
			b.Fatalf("DELETE of %s/allow-apiserver: allowed=%v result=%+v, want denied by networkpolicy-blocks-apiservice", st.bigNS, resp.Allowed, resp.Result)
		}
		// The cluster-wide policies are in the view, so every judgement
		// runs over them: Cilium's model, its 1,000 policies and the
		// NetworkPolicies in its union.
		if cnps, err := env.live.ClusterNetworkPolicies(ctx); err != nil || len(cnps) < scaleClusterPolicies {
			b.Fatalf("the Live view holds %d ClusterNetworkPolicies (%v), want %d", len(cnps), err, scaleClusterPolicies)
		}
		if cps, err := env.live.CiliumPolicies(ctx); err != nil || len(cps) < scaleCiliumPolicies {
			b.Fatalf("the Live view holds %d Cilium policies (%v), want %d", len(cps), err, scaleCiliumPolicies)
		}
		measure(b, ctx, v, req)
		b.ReportMetric(miss, "miss-µs")
	})
	// The same write with the Cilium policies hidden from the view (the
	// ClusterNetworkPolicy tiers decide), and with every cluster-wide
	// policy hidden: their cost, measured in the same run.
	for _, hidden := range []struct {
		name string
		view cluster.View
	}{
		{"no-cilium-policies", noCiliumPolicies{env.live}},
		{"no-cluster-policies", noCiliumPolicies{noClusterPolicies{env.live}}},
	} {
		b.Run("write=backend-ns-1000-policies,"+hidden.name, func(b *testing.B) {
			req := npRequest(b, admissionv1.Create, asAdmitted(b, ctx, prometheusPolicy(st.bigNS, "allow-adapter-scrape",
				metav1.LabelSelector{MatchLabels: map[string]string{"app": "adapter"}})))
			engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
			if err != nil {
				b.Fatal(err)
			}
			measure(b, ctx, webhook.NewValidator(webhook.Options{Engine: engine, View: hidden.view}), req)
		})
	}
	// A CiliumNetworkPolicy CREATE in the backend namespace, among the
	// 1,000: judged before and after for every protected backend.
	b.Run("write=cilium-policy-backend-ns", func(b *testing.B) {
		p := &cluster.CiliumNetworkPolicy{CiliumPolicy: netpol.CiliumPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "cilium.io/v2", Kind: "CiliumNetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Namespace: st.bigNS, Name: "adapter-from-cluster"},
			Spec: &netpol.CiliumRule{EndpointSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "adapter"}},
				Ingress: []netpol.CiliumIngressRule{{FromEntities: []string{"cluster", "kube-apiserver"},
					ToPorts: []netpol.CiliumPortRule{{Ports: []netpol.CiliumPortProtocol{{Port: "6443", Protocol: "TCP"}}}}}}}}}
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "bench", Kind: metav1.GroupVersionKind{Group: "cilium.io", Version: "v2", Kind: "CiliumNetworkPolicy"},
			Resource:  metav1.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"},
			Namespace: p.Namespace, Name: p.Name, Operation: admissionv1.Create, Object: raw(b, p)}}
		// The judgement is real: the same policy denying world would cut
		// the API server off, which is outside the cluster here.
		bad := p.CiliumPolicy
		bad.Spec = &netpol.CiliumRule{EndpointSelector: p.Spec.EndpointSelector, IngressDeny: []netpol.CiliumIngressRule{{FromEntities: []string{"world"}}}}
		badReq := req
		badReq.Object = raw(b, &cluster.CiliumNetworkPolicy{CiliumPolicy: bad})
		if resp := v.Handle(ctx, badReq); resp.Allowed || !strings.Contains(resp.Result.Message, "networkpolicy-blocks-apiservice") {
			b.Fatalf("a cluster-only Cilium policy of the adapters: allowed=%v result=%+v, want denied", resp.Allowed, resp.Result)
		}
		measure(b, ctx, v, req)
	})
	b.Run("write=no-backend-ns", func(b *testing.B) {
		req := npRequest(b, admissionv1.Create, asAdmitted(b, ctx, prometheusPolicy(st.plainNS, "allow-web-scrape",
			metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}})))
		measure(b, ctx, v, req)
	})
	// The same review as the API server sends it: an AdmissionReview body
	// through the webhook's HTTP handler (envelope checks, controller-runtime's
	// decoding, the response's encoding), without TLS and network.
	b.Run("write=no-backend-ns-http", func(b *testing.B) {
		req := npRequest(b, admissionv1.Create, asAdmitted(b, ctx, prometheusPolicy(st.plainNS, "allow-web-scrape",
			metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}})))
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request:  &req.AdmissionRequest,
		})
		if err != nil {
			b.Fatal(err)
		}
		h := webhook.Handler(v)
		post := func() *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			hr := httptest.NewRequest(http.MethodPost, webhook.ValidatePath, bytes.NewReader(body))
			hr.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(rec, hr)
			return rec
		}
		var ar admissionv1.AdmissionReview
		rec := post()
		if err := json.Unmarshal(rec.Body.Bytes(), &ar); err != nil || ar.Response == nil || !ar.Response.Allowed || len(ar.Response.Warnings) > 0 {
			b.Fatalf("warm-up review not clean (%v): %s", err, rec.Body.Bytes())
		}
		b.ReportAllocs()
		percentiles(b, func() {
			if rec := post(); rec.Code != http.StatusOK {
				b.Fatalf("HTTP %d", rec.Code)
			}
		})
		b.ReportMetric(float64(len(body)), "body-bytes")
	})
}

// missReview is the median time of a review by a new engine, whose cache of
// compiled policies is empty: what the first write after a change of the
// namespace's policies costs. Its answer must be allowed with no warnings.
// noCiliumPolicies is a view that holds no Cilium policy.
type noCiliumPolicies struct{ cluster.View }

func (noCiliumPolicies) CiliumPolicies(context.Context) ([]*netpol.CiliumPolicy, error) {
	return nil, nil
}

// noClusterPolicies is a view that holds no ClusterNetworkPolicy.
type noClusterPolicies struct{ cluster.View }

func (noClusterPolicies) ClusterNetworkPolicies(context.Context) ([]*cnp.ClusterNetworkPolicy, error) {
	return nil, nil
}

func missReview(b *testing.B, ctx context.Context, view cluster.View, req admission.Request) float64 {
	b.Helper()
	var times []time.Duration
	for range 5 {
		engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
		if err != nil {
			b.Fatal(err)
		}
		v := webhook.NewValidator(webhook.Options{Engine: engine, View: view})
		start := time.Now()
		resp := v.Handle(ctx, req)
		times = append(times, time.Since(start))
		if !resp.Allowed || len(resp.Warnings) > 0 {
			b.Fatalf("review by a new engine not clean: allowed=%v warnings=%q result=%+v", resp.Allowed, resp.Warnings, resp.Result)
		}
	}
	slices.Sort(times)
	return float64(times[len(times)/2].Nanoseconds()) / 1e3
}

// asAdmitted returns np as the API server hands it to validating webhooks
// (defaulted, with uid, creationTimestamp and managedFields), by a dry-run
// CREATE.
func asAdmitted(b *testing.B, ctx context.Context, np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	b.Helper()
	cp, err := liveEnv()
	if err != nil {
		b.Fatal(err)
	}
	np = np.DeepCopy()
	if err := cp.Client.Create(ctx, np, client.DryRunAll); err != nil {
		b.Fatalf("dry-run CREATE of %s/%s: %v", np.Namespace, np.Name, err)
	}
	return np
}

// npRequest is the AdmissionRequest of a NetworkPolicy CREATE (np as the
// object) or DELETE (np as the old object).
func npRequest(b *testing.B, op admissionv1.Operation, np *networkingv1.NetworkPolicy) admission.Request {
	np = np.DeepCopy()
	np.APIVersion, np.Kind = "networking.k8s.io/v1", "NetworkPolicy"
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "bench",
		Kind:      metav1.GroupVersionKind{Group: networkingv1.GroupName, Version: "v1", Kind: "NetworkPolicy"},
		Resource:  metav1.GroupVersionResource{Group: networkingv1.GroupName, Version: "v1", Resource: "networkpolicies"},
		Namespace: np.Namespace,
		Name:      np.Name,
		Operation: op,
	}}
	if op == admissionv1.Delete {
		req.OldObject = raw(b, np)
	} else {
		req.Object = raw(b, np)
	}
	return req
}
