package policies

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/k0s"
)

// ConfigMapKind is the group/kind of ConfigMaps.
var ConfigMapKind = schema.GroupKind{Kind: "ConfigMap"}

// k0sRules is the k0s family: the configuration that decides whether the API
// server can reach the pod network, in worker-config ConfigMaps, ConfigMap
// values holding a ClusterConfig, and the dynamic-config ClusterConfig.
func k0sRules() []Rule {
	both := []schema.GroupKind{ConfigMapKind, k0s.ClusterConfigKind}
	writes := []Operation{Create, Update}
	return []Rule{
		{Name: "k0s-konnectivity-disabled", Default: Warn, Kinds: []schema.GroupKind{ConfigMapKind}, Operations: writes,
			Summary: "a k0s worker-config turns konnectivity off while an APIService backend runs in the pod network",
			Check:   konnectivityDisabled},
		{Name: "k0s-config-invalid", Default: Enforce, Kinds: both, Operations: writes,
			Summary: "a k0s ClusterConfig (or a worker-config's konnectivity entry) that does not parse or that k0s would refuse, or konnectivity ports that are equal or collide with 6443/10250",
			Check:   k0sConfigInvalid},
		{Name: "k0s-immutable-network-change", Default: Enforce, Kinds: both, Operations: []Operation{Update},
			Summary: "an UPDATE changes spec.network.provider, podCIDR or serviceCIDR, which k0s dynamic config cannot apply to a running cluster",
			Check:   k0sImmutableNetworkChange},
		{Name: "k0s-calico-autodetect", Default: Warn, Kinds: both, Operations: writes,
			Summary: "spec.network.provider is calico without calico.ipAutodetectionMethod",
			Check:   k0sCalicoAutodetect},
	}
}

// k0sDocument is one ClusterConfig found in a reviewed object.
type k0sDocument struct {
	// where names it within the object: "data[k0s.yaml]: " for a ConfigMap
	// value, "" for a ClusterConfig object (whose errors start with "spec").
	where string
	spec  *k0s.Spec // nil when err is set
	err   error
	// strict is what k0s's strict reading of the document's text refuses
	// (k0s.CheckStrict); nil for a ClusterConfig object from the API
	// server, which prunes unknown fields.
	strict error
}

// k0sObject is what a reviewed object holds of k0s configuration.
type k0sObject struct {
	documents []k0sDocument
	// worker is set for a worker-config ConfigMap.
	worker *workerConfig
}

// workerConfig is a worker-config ConfigMap's konnectivity entry.
type workerConfig struct {
	name         string
	konnectivity k0s.WorkerKonnectivity
	present      bool  // whether the ConfigMap has the entry at all
	err          error // why the entry does not parse
}

type k0sKey struct{ old bool }

// k0sConfigOf reads the k0s configuration in the review's object (old: the
// object before the write), once per review. A ConfigMap counts only in
// kube-system, where k0s reads it.
func k0sConfigOf(r *Review, old bool) *k0sObject {
	return memoize(r, k0sKey{old}, func() *k0sObject {
		obj, oldObj := r.Objects()
		if old {
			obj = oldObj
		}
		switch o := obj.(type) {
		case *k0s.ClusterConfig:
			if o == nil {
				return nil
			}
			spec, err := k0s.ParseSpec(o.Spec.Raw)
			return &k0sObject{documents: []k0sDocument{{spec: spec, err: err, strict: o.Strict}}}
		case *corev1.ConfigMap:
			if o == nil || r.Namespace != k0s.Namespace {
				return nil
			}
			return configMapK0s(o)
		}
		return nil
	})
}

// configMapK0s finds the ClusterConfigs in a ConfigMap's values, in key
// order, and its konnectivity entry when it is a worker-config.
func configMapK0s(cm *corev1.ConfigMap) *k0sObject {
	out := &k0sObject{}
	if k0s.IsWorkerConfig(cm.Name, cm.Labels) {
		w := &workerConfig{name: cm.Name}
		var value string
		if value, w.present = cm.Data[k0s.WorkerKonnectivityKey]; w.present {
			w.konnectivity, w.err = k0s.ParseWorkerKonnectivity(value)
		}
		out.worker = w
	}
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parsed, skipped := 0, 0
	for _, k := range keys {
		// A value that does not name the ClusterConfig kind and group
		// (a worker-config's kubeletConfiguration, most ConfigMaps' data)
		// is not parsed: the webhook's matchCondition makes the same
		// literal test.
		if out.worker != nil && k == k0s.WorkerKonnectivityKey || !k0s.Mentions(cm.Data[k]) {
			continue
		}
		if parsed == maxClusterConfigValues {
			skipped++
			continue
		}
		parsed++
		if doc, found := k0s.FindClusterConfig(cm.Data[k]); found {
			out.documents = append(out.documents, k0sDocument{where: "data[" + k + "]: ", spec: doc.Spec, err: doc.Err, strict: doc.Strict})
		}
	}
	if skipped > 0 {
		out.documents = append(out.documents, k0sDocument{where: "data: ",
			err: fmt.Errorf("%d more values name a ClusterConfig and were not parsed: a ConfigMap holds one, the guard parses at most %d", skipped, maxClusterConfigValues)})
	}
	return out
}

// maxClusterConfigValues is the most values of one ConfigMap parsed as
// ClusterConfigs: k0s reads one; thousands are an attempt on the guard's
// time.
const maxClusterConfigValues = 8

// k0sConfigInvalid reports ClusterConfigs that do not parse or that k0s
// would refuse, and a worker-config konnectivity entry workers cannot load.
func k0sConfigInvalid(_ context.Context, r *Review, _ cluster.View) []Result {
	o := k0sConfigOf(r, false)
	if o == nil {
		return nil
	}
	var out []Result
	if w := o.worker; w != nil && w.err != nil {
		out = append(out, Result{Message: w.err.Error() + "; k0s workers of this profile cannot load their configuration",
			Fix: `write konnectivity as JSON, e.g. {"enabled":true,"agentPort":8132}`})
	}
	for _, d := range o.documents {
		if d.strict != nil {
			out = append(out, Result{Message: d.where + "k0s refuses unknown fields and duplicate keys: " + d.strict.Error(),
				Detail: "k0s reads its configuration file strictly and does not start with it",
				Fix:    "correct or remove the field named; `k0s config validate --config FILE` reads the file as k0s does"})
		}
		msg := ""
		switch {
		case d.err != nil:
			msg = d.where + d.err.Error()
		default:
			errs := d.spec.Validate()
			if len(errs) == 0 {
				continue
			}
			msg = d.where + errs.ToAggregate().Error()
		}
		out = append(out, Result{Message: msg,
			Fix: "correct the ClusterConfig; `k0s config validate --config FILE` applies k0s's own checks"})
	}
	return out
}

// k0sImmutableNetworkChange compares the network fields k0s cannot change
// live, in each ClusterConfig the object held before and after the write
// (matched by where they are), with k0s's defaults applied.
func k0sImmutableNetworkChange(_ context.Context, r *Review, _ cluster.View) []Result {
	after, before := k0sConfigOf(r, false), k0sConfigOf(r, true)
	if after == nil || before == nil {
		return nil
	}
	var out []Result
	for _, d := range after.documents {
		i := slices.IndexFunc(before.documents, func(b k0sDocument) bool { return b.where == d.where })
		if d.err != nil || i < 0 || before.documents[i].err != nil {
			continue // nothing to compare: k0s-config-invalid reports a broken one
		}
		if change := networkChange(before.documents[i].spec.Effective(), d.spec.Effective()); change != "" {
			out = append(out, Result{
				Message: d.where + change,
				Detail: "k0s dynamic config cannot apply network.provider, podCIDR or serviceCIDR to a running cluster: " +
					"nodes, pods and Services keep the old network",
				Fix: "revert the field; a new CNI or CIDR needs a new cluster, or a planned migration with every controller's k0s.yaml",
			})
		}
	}
	return out
}

// networkChange says what changed among the immutable fields, in k0s's own
// words for the provider ("cannot change CNI provider from kuberouter to
// calico"), or "" when nothing did.
func networkChange(old, cur k0s.Effective) string {
	var changes []string
	if old.Provider != cur.Provider {
		changes = append(changes, fmt.Sprintf("cannot change CNI provider from %s to %s", old.Provider, cur.Provider))
	}
	for _, f := range []struct{ name, old, cur string }{
		{"podCIDR", old.PodCIDR, cur.PodCIDR}, {"serviceCIDR", old.ServiceCIDR, cur.ServiceCIDR},
	} {
		if !sameCIDR(f.old, f.cur) {
			changes = append(changes, fmt.Sprintf("cannot change %s from %s to %s", f.name, f.old, f.cur))
		}
	}
	return strings.Join(changes, "; ")
}

// sameCIDR compares two CIDRs as networks ("10.244.1.0/16" is
// "10.244.0.0/16"), or as text when either does not parse.
func sameCIDR(a, b string) bool {
	pa, errA := k0s.ParseCIDR(a)
	pb, errB := k0s.ParseCIDR(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return pa == pb
}

// k0sCalicoAutodetect warns about calico left to pick each node's address.
func k0sCalicoAutodetect(_ context.Context, r *Review, _ cluster.View) []Result {
	o := k0sConfigOf(r, false)
	if o == nil {
		return nil
	}
	var out []Result
	for _, d := range o.documents {
		if d.err != nil {
			continue
		}
		if e := d.spec.Effective(); e.Provider == k0s.ProviderCalico && e.CalicoIPAutodetectionMethod == "" {
			out = append(out, Result{
				Message: d.where + "calico without spec.network.calico.ipAutodetectionMethod takes each node's first interface, often not the one other nodes reach",
				Fix:     "set spec.network.calico.ipAutodetectionMethod, e.g. can-reach=<a controller IP> or interface=eth0",
			})
		}
	}
	return out
}

// konnectivityDisabled warns when a worker-config leaves konnectivity off
// while an APIService backend runs in the pod network: the API server then
// reaches it only if every controller has a route into the pod CIDR.
func konnectivityDisabled(ctx context.Context, r *Review, v cluster.View) []Result {
	o := k0sConfigOf(r, false)
	if o == nil || o.worker == nil || o.worker.err != nil || o.worker.konnectivity.Enabled {
		return nil
	}
	backends := podNetworkBackends(ctx, v)
	if len(backends) == 0 {
		return nil
	}
	how := "konnectivity is off"
	if !o.worker.present {
		how = "no konnectivity entry, so off"
	}
	more := ""
	if len(backends) > 1 {
		more = fmt.Sprintf(" (+%d more)", len(backends)-1)
	}
	return []Result{{
		Message: fmt.Sprintf("%s: %s, but %s runs in the pod network%s", o.worker.name, how, backends[0], more),
		Fix:     "keep konnectivity, or make every controller able to route to the pod CIDR",
	}}
}

// podNetworkBackends names the APIServices whose backend pods run in the pod
// network, not hostNetwork: "v1beta1.metrics.k8s.io -> kube-system/metrics-server".
func podNetworkBackends(ctx context.Context, v cluster.View) []string {
	refs, err := v.ServiceReferences(ctx, "")
	if err != nil {
		return nil
	}
	var out []string
	for _, ref := range refs {
		if ref.Kind != cluster.KindAPIService {
			continue
		}
		svc, err := v.Service(ctx, ref.Namespace, ref.Service)
		if err != nil || len(svc.Spec.Selector) == 0 {
			continue
		}
		pods, _ := v.Pods(ctx, ref.Namespace, labels.SelectorFromSet(svc.Spec.Selector))
		if slices.ContainsFunc(pods, func(p *corev1.Pod) bool { return !p.Spec.HostNetwork }) {
			out = append(out, ref.Name+" -> "+ref.Namespace+"/"+ref.Service)
		}
	}
	return out
}
