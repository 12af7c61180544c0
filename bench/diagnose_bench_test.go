package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/audit"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/test/adapter"
)

// diagnosedPods is how many pods the diagnosed backend runs: as many as a
// diagnosis probes.
const diagnosedPods = 5

// BenchmarkDiagnose measures one diagnosis of an unavailable APIService as
// `diagnose` makes it, against a real kube-apiserver: the rules on a
// synced Live view, uncached lists of Namespaces and kube-system's
// ConfigMaps, and probes through the API server's service proxy and the
// pod proxy of each of 5 pods, through the test network. Two backends:
// one that answers, and one whose Service and pods drop every connection,
// so that every probe waits for its 1 s timeout: the worst case, which must
// stay within 3 s. Reports the p50 and the worst in seconds.
func BenchmarkDiagnose(b *testing.B) {
	cp, err := liveEnv()
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	live, err := cluster.StartLive(ctx, cp.Env.Config, cluster.LiveOptions{
		Prober: cluster.NewProber(cluster.ProberOptions{Dial: mustDialer(b, cluster.DialNone)}),
	})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := policies.NewEngine(policies.Config{Mode: policies.ModeEnforce}, policies.DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	proxy, err := audit.NewAPIServerProxy(cp.Env.Config, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ev := audit.Evidence{Proxy: proxy, Reader: cp.Client}

	for _, answering := range []bool{true, false} {
		name := "backend=dropping"
		if answering {
			name = "backend=answering"
		}
		b.Run(name, func(b *testing.B) {
			api := diagnosedBackend(b, cp.Client, answering)
			run := func() audit.Diagnosis { return audit.Diagnose(ctx, engine, live, ev, api) }
			d := run() // warm-up, and a check that the probes went as meant
			proxyStep := ""
			for _, s := range d.Steps {
				if s.Name == "proxy" {
					proxyStep = s.Evidence
				}
			}
			want := "HTTP 200"
			if !answering {
				want = "timed out"
			}
			if strings.Count(proxyStep, want) != 1+diagnosedPods {
				b.Fatalf("proxy step %q: want %q for the Service and %d pods", proxyStep, want, diagnosedPods)
			}
			var worst time.Duration
			durations := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				run()
				took := time.Since(start)
				durations = append(durations, took)
				worst = max(worst, took)
			}
			b.ReportMetric(durations[len(durations)/2].Seconds(), "p50-s")
			b.ReportMetric(worst.Seconds(), "max-s")
		})
	}
}

func mustDialer(b *testing.B, spec string) cluster.DialFunc {
	d, err := cluster.BackendDialer(spec)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// diagnosedBackend creates an adapter's ClusterIP Service, its pods and
// EndpointSlice, and an APIService the aggregator has found unavailable,
// with the test network leading the pods and the ClusterIP to a test
// adapter (answering) or dropping every connection to them.
func diagnosedBackend(b *testing.B, c client.Client, answering bool) *apiregv1.APIService {
	ctx := b.Context()
	cp, _ := liveEnv()
	n := runs.Add(1)
	ns, svcName := fmt.Sprintf("diagnosed-%d", n), "adapter"
	group := fmt.Sprintf("diagnosed-%d.bench.apiservice-guard.io", n)
	a, err := adapter.Start(adapter.Options{Group: group, Version: "v1beta1", Namespace: ns, Service: svcName})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Close)
	to := fmt.Sprintf("127.0.0.1:%d", a.Port())
	route := func(dest string) {
		if answering {
			if err := cp.Network.Route(dest, to); err != nil {
				b.Fatal(err)
			}
		} else {
			cp.Network.Drop(dest)
		}
		b.Cleanup(func() { cp.Network.Unroute(dest) })
	}

	labels := map[string]string{"app": svcName}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: svcName, Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: labels,
		Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(6443)}},
	}}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svcName + "-x", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}},
	}
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, svc}
	var pods []*corev1.Pod
	for i := range diagnosedPods {
		ip := fmt.Sprintf("10.250.%d.%d", n%250, i+1)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("adapter-%d", i), Namespace: ns, Labels: labels}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "adapter", Image: "adapter", Ports: []corev1.ContainerPort{{ContainerPort: 6443}}}},
		}}
		pods = append(pods, pod)
		objs = append(objs, pod)
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name}})
		route(ip + ":6443")
	}
	objs = append(objs, slice)
	create(b, ctx, c, objs...)
	for i, pod := range pods {
		ip := slice.Endpoints[i].Addresses[0]
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if err := c.Status().Update(ctx, pod); err != nil {
			b.Fatal(err)
		}
	}
	route(svc.Spec.ClusterIP + ":443")
	api := apiService(group, ns, svcName, 443, a.CA().CertPEM())
	api.Status.Conditions = []apiregv1.APIServiceCondition{{Type: apiregv1.Available, Status: apiregv1.ConditionFalse, Reason: "FailedDiscoveryCheck",
		Message: fmt.Sprintf("failing or missing response from https://%s:443/apis/%s/v1beta1: context deadline exceeded", svc.Spec.ClusterIP, group)}}
	time.Sleep(500 * time.Millisecond) // the pods' status, into the Live view
	return api
}
