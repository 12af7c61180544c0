package bench

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// The generated cluster of the scale benchmark.
const (
	scaleNamespaces  = 2000
	scalePodsPerNS   = 10 // 20,000 pods
	scaleBackends    = 100
	scaleNodes       = 200
	scaleBigPolicies = 1000 // in the first backend namespace
	scaleWebhooks    = 5    // validating and mutating configurations, each
	// scaleOtherPolicies per namespace elsewhere, plus scaleExtraPolicies in
	// the first app namespaces: 1,000 + 1,999*2 + 2 = 5,000 policies.
	scaleOtherPolicies = 2
	scaleExtraPolicies = 2
	// scaleWorkers bounds the concurrent writes while loading. Pod creates
	// spread over many namespaces are bound by latency in the API server's
	// admission, not by CPU: 8 writers load at about 200 writes/s, 32 at
	// about 550/s, the rate of pods created in a single namespace.
	scaleWorkers = 32
)

// scaleState names what the loader created.
type scaleState struct {
	// bigNS is the backend namespace holding scaleBigPolicies policies;
	// plainNS a namespace with no backend.
	bigNS, plainNS string
	// apiServer is the address of the default/kubernetes EndpointSlice.
	apiServer netip.Addr
	objects   int
	took      time.Duration
}

// scaleNames are the namespaces of one generated cluster.
type scaleNames struct{ run int32 }

func (n scaleNames) backend(i int) string { return fmt.Sprintf("s%d-backend-%03d", n.run, i) }
func (n scaleNames) app(i int) string     { return fmt.Sprintf("s%d-app-%04d", n.run, i) }

// loadScale writes the generated cluster through the API with scaleWorkers
// concurrent writers: namespaces first, then everything else. Every pod gets
// a pod IP through the status subresource, as the kubelet would set it.
func loadScale(ctx context.Context, cfg *rest.Config, apiServer netip.Addr) (*scaleState, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: cluster.NewScheme()})
	if err != nil {
		return nil, err
	}
	names := scaleNames{run: runs.Add(1)}
	st := &scaleState{bigNS: names.backend(0), plainNS: names.app(0), apiServer: apiServer}
	start := time.Now()
	var nss []client.Object
	for i := range scaleNamespaces {
		name := names.app(i - scaleBackends)
		if i < scaleBackends {
			name = names.backend(i)
		}
		nss = append(nss, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"team": "team-" + strconv.Itoa(i%40), "env": []string{"prod", "staging"}[i%2]}}})
	}
	if err := createAll(ctx, c, nss); err != nil {
		return nil, err
	}
	objs := scaleObjects(names, apiServer)
	if err := createAll(ctx, c, objs); err != nil {
		return nil, err
	}
	st.objects, st.took = len(nss)+len(objs), time.Since(start)
	return st, nil
}

// createAll creates objs with scaleWorkers writers. A pod is created and
// then given its status.
func createAll(ctx context.Context, c client.Client, objs []client.Object) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(scaleWorkers)
	for _, o := range objs {
		g.Go(func() error {
			var status *corev1.PodStatus
			if p, ok := o.(*corev1.Pod); ok {
				status = p.Status.DeepCopy()
			}
			if err := c.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err)
			}
			if status != nil {
				p := o.(*corev1.Pod)
				p.Status = *status
				if err := c.Status().Update(ctx, p); err != nil {
					return fmt.Errorf("setting the status of pod %s/%s: %w", p.Namespace, p.Name, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// scaleObjects is everything but the namespaces: nodes, backends (Service,
// APIService, pods), webhook configurations, the other pods, and the
// policies.
func scaleObjects(names scaleNames, apiServer netip.Addr) []client.Object {
	var objs []client.Object
	for i := range scaleNodes {
		objs = append(objs, scaleNode(i))
	}
	podIndex := 0
	nextPod := func(ns string, labels map[string]string, backend bool) client.Object {
		podIndex++
		return scalePod(ns, podIndex, labels, backend)
	}
	for i := range scaleBackends {
		ns := names.backend(i)
		objs = append(objs, backendService(ns, i), backendAPIService(names.run, ns, i))
		for range 2 {
			objs = append(objs, nextPod(ns, map[string]string{"app": "adapter", "app.kubernetes.io/instance": "backend-" + strconv.Itoa(i)}, true))
		}
		for k := range scalePodsPerNS - 2 {
			objs = append(objs, nextPod(ns, appLabels(k), false))
		}
		if i > 0 {
			objs = append(objs, appPolicies(ns, scaleOtherPolicies)...)
		}
	}
	for i := range scaleWebhooks {
		objs = append(objs, webhookConfigs(names.run, names.backend(1+i), i)...)
	}
	for j := range scaleNamespaces - scaleBackends {
		ns := names.app(j)
		for k := range scalePodsPerNS {
			objs = append(objs, nextPod(ns, appLabels(k), false))
		}
		n := scaleOtherPolicies
		if j < scaleExtraPolicies {
			n++
		}
		objs = append(objs, appPolicies(ns, n)...)
	}
	objs = append(objs, clusterPolicies(names.run)...)
	objs = append(objs, ciliumPolicies(names)...)
	return append(objs, bigPolicies(names.backend(0), apiServer)...)
}

func appLabels(k int) map[string]string {
	return map[string]string{"app": "svc-" + strconv.Itoa(k), "tier": []string{"web", "api", "worker", "db"}[k%4],
		"pod-template-hash": fmt.Sprintf("%08x", k*2654435761)}
}

func scaleNode(i int) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%03d", i), Labels: map[string]string{
			"kubernetes.io/hostname": fmt.Sprintf("node-%03d", i), "kubernetes.io/os": "linux",
			"topology.kubernetes.io/zone": "zone-" + strconv.Itoa(i%3), "node.kubernetes.io/instance-type": "m5.2xlarge"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: nodeIP(i)},
			{Type: corev1.NodeHostName, Address: fmt.Sprintf("node-%03d", i)}}},
	}
}

func nodeIP(i int) string { return fmt.Sprintf("192.168.%d.%d", i/250, 1+i%250) }

// scalePod is a Deployment-made pod with what real pods carry: annotations,
// an owner, env, resources, probes, volumes, and (in its status) a pod IP.
// Backend pods serve 6443 named https and mount their serving Secret.
func scalePod(ns string, n int, labels map[string]string, backend bool) *corev1.Pod {
	ports := []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}
	if backend {
		ports = []corev1.ContainerPort{{Name: "https", ContainerPort: 6443}, {Name: "metrics", ContainerPort: 9022}}
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString(ports[0].Name)}},
		InitialDelaySeconds: 5, PeriodSeconds: 10}
	node := n % scaleNodes
	ip := netip.AddrFrom4([4]byte{10, byte(128 + n>>16), byte(n >> 8), byte(n)}).String()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%05d", labels["app"], n), Namespace: ns, Labels: labels,
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
				"checksum/config": fmt.Sprintf("%064x", n)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: labels["app"] + "-7d9f8b6c5d",
				UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", n)), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			NodeName:           fmt.Sprintf("node-%03d", node),
			ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name: "main", Image: "registry.example.com/team/" + labels["app"] + ":v1.42.0", Ports: ports,
				Args: []string{"--config=/etc/app/config.yaml", "--log-level=info"},
				Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					{Name: "GOMAXPROCS", Value: "2"}, {Name: "LOG_FORMAT", Value: "json"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}},
				ReadinessProbe: probe, LivenessProbe: probe,
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}, {Name: "certs", MountPath: "/certs", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: labels["app"] + "-config"}}}},
				{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: labels["app"] + "-certs"}}},
			},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, HostIP: nodeIP(node), HostIPs: []corev1.HostIP{{IP: nodeIP(node)}},
			PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: &metav1.Time{Time: time.Unix(1.7e9, 0)},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Ready: true, RestartCount: 0,
				Image: "registry.example.com/team/" + labels["app"] + ":v1.42.0", ImageID: fmt.Sprintf("registry.example.com/team/app@sha256:%064x", n),
				ContainerID: fmt.Sprintf("containerd://%064x", n)}},
		},
	}
}

// backendService sends 443 to the adapters' 6443, by name for odd backends.
func backendService(ns string, i int) *corev1.Service {
	target := intstr.FromInt32(6443)
	if i%2 == 1 {
		target = intstr.FromString("https")
	}
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "adapter", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "adapter"},
		Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: target}},
	}}
}

func backendAPIService(run int32, ns string, i int) *apiregv1.APIService {
	group := fmt.Sprintf("b%d.s%d.bench.apiservice-guard.io", i, run)
	return &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: "v1beta1." + group},
		Spec: apiregv1.APIServiceSpec{Group: group, Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100,
			InsecureSkipTLSVerify: true, Service: &apiregv1.ServiceReference{Namespace: ns, Name: "adapter", Port: ptr.To[int32](443)}},
	}
}

// webhookConfigs are a validating and a mutating configuration with two
// webhooks each, served from ns, for a group nobody serves (never called).
func webhookConfigs(run int32, ns string, i int) []client.Object {
	group := fmt.Sprintf("w%d.s%d.bench.apiservice-guard.io", i, run)
	rules := []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create},
		Rule: admissionregv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: []string{"widgets"}}}}
	cc := admissionregv1.WebhookClientConfig{Service: &admissionregv1.ServiceReference{Namespace: ns, Name: "webhook", Path: ptr.To("/validate")}}
	name := fmt.Sprintf("s%d-webhook-%d", run, i)
	var vws []admissionregv1.ValidatingWebhook
	var mws []admissionregv1.MutatingWebhook
	for k := range 2 {
		whName := fmt.Sprintf("v%d.%s", k, group)
		vws = append(vws, admissionregv1.ValidatingWebhook{Name: whName, ClientConfig: cc, Rules: rules,
			FailurePolicy: ptr.To(admissionregv1.Ignore), SideEffects: ptr.To(admissionregv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"}})
		mws = append(mws, admissionregv1.MutatingWebhook{Name: "m" + whName, ClientConfig: cc, Rules: rules,
			FailurePolicy: ptr.To(admissionregv1.Ignore), SideEffects: ptr.To(admissionregv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"}})
	}
	return []client.Object{
		&admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: vws},
		&admissionregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: mws},
	}
}
