package policies

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// cachePolicies are n policies of namespace keda as an informer holds them
// (UID, resourceVersion, creation time): a default-deny, an allow of the API
// server on 6443, and allows of other addresses and ports, some selecting
// the adapter.
func cachePolicies(n int) []*networkingv1.NetworkPolicy {
	created := time.Unix(1.7e9, 0)
	out := make([]*networkingv1.NetworkPolicy, n)
	for i := range out {
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{
			Namespace: "keda", Name: "np-" + strconv.Itoa(i), UID: types.UID("uid-" + strconv.Itoa(i)),
			ResourceVersion: strconv.Itoa(100 + i), CreationTimestamp: metav1.NewTime(created.Add(time.Duration(i%7) * time.Second)),
		}}
		switch {
		case i == 0: // default-deny
		case i == 1:
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{cacheAllow("10.0.0.1/32", 6443)}
		default:
			if i%3 != 0 {
				np.Spec.PodSelector.MatchLabels = map[string]string{"app": "svc-" + strconv.Itoa(i)}
			}
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{cacheAllow("172.16."+strconv.Itoa(i)+".0/24", int32(8000+i))}
		}
		out[i] = np
	}
	return out
}

func cacheAllow(cidr string, port int32) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{
		From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}},
		Ports: []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromInt32(port))}},
	}
}

// cacheTraffic is what the rules ask: sources toward the adapter's ports.
func cacheTraffic() []netpol.Traffic {
	adapter := netpol.PodEndpoint(&netpol.Pod{Namespace: "keda", Name: "keda-0", Labels: map[string]string{"app": "keda"},
		IPs: []netip.Addr{netip.MustParseAddr("10.244.1.7")}})
	var out []netpol.Traffic
	for _, src := range []string{"10.0.0.1", "10.0.0.2", "172.16.5.9"} {
		for _, port := range []int32{6443, 8005, 8006} {
			out = append(out, netpol.Traffic{Source: netpol.AddrEndpoint(netip.MustParseAddr(src), ""), Destination: adapter, Port: port, Protocol: corev1.ProtocolTCP})
		}
	}
	return out
}

func ingressVerdicts(s *netpol.Set) []netpol.Verdict {
	var out []netpol.Verdict
	for _, t := range cacheTraffic() {
		out = append(out, s.Ingress(t))
	}
	return out
}

// TestCompiledSetsSameAnswers: whatever order the view lists the policies
// in, the cached set answers exactly as compiling them in creation order.
func TestCompiledSetsSameAnswers(t *testing.T) {
	policies := cachePolicies(40)
	want := ingressVerdicts(netpol.Compile(slices.SortedStableFunc(slices.Values(policies), byCreation)))
	c := newCompiledSets()
	first := c.compile("keda", policies)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		listed := slices.Clone(policies)
		rng.Shuffle(len(listed), func(a, b int) { listed[a], listed[b] = listed[b], listed[a] })
		got := c.compile("keda", listed)
		if got != first {
			t.Errorf("listing %d: the same policies in another order missed the cache", i)
		}
		if diff := cmp.Diff(want, ingressVerdicts(got)); diff != "" {
			t.Errorf("listing %d: verdicts (-uncached +cached):\n%s", i, diff)
		}
	}
	var none *compiledSets
	if diff := cmp.Diff(ingressVerdicts(netpol.Compile(policies)), ingressVerdicts(none.compile("keda", policies))); diff != "" {
		t.Errorf("nil cache: verdicts (-Compile +nil cache):\n%s", diff)
	}
}

// TestCompiledSetsMiss: a changed resourceVersion, a removed policy or
// another namespace is a miss, and the new set answers for the new policies;
// policies without resourceVersion are never cached.
func TestCompiledSetsMiss(t *testing.T) {
	policies := cachePolicies(10)
	c := newCompiledSets()
	before := c.compile("keda", policies)
	if !ingressVerdicts(before)[0].Allowed {
		t.Fatal("the API server should reach the adapter on 6443 before the change")
	}

	// The allow now names port 8443: a new resourceVersion.
	changed := slices.Clone(policies)
	changed[1] = policies[1].DeepCopy()
	changed[1].Spec.Ingress[0].Ports[0].Port = new(intstr.FromInt32(8443))
	changed[1].ResourceVersion = "500"
	after := c.compile("keda", changed)
	if after == before {
		t.Fatal("a changed resourceVersion hit the cache")
	}
	if diff := cmp.Diff(ingressVerdicts(netpol.Compile(slices.SortedStableFunc(slices.Values(changed), byCreation))), ingressVerdicts(after)); diff != "" {
		t.Errorf("after the change: verdicts (-uncached +cached):\n%s", diff)
	}
	if ingressVerdicts(after)[0].Allowed {
		t.Error("the changed allow still lets the API server in on 6443")
	}
	if c.compile("keda", changed) != after {
		t.Error("the changed policies, listed again, missed the cache")
	}
	// The namespace's set was replaced: the first policies again are a miss,
	// answered for what they are.
	again := c.compile("keda", policies)
	if again == before || again == after {
		t.Error("the first policies, listed after the change, hit the cache")
	}
	if diff := cmp.Diff(ingressVerdicts(before), ingressVerdicts(again)); diff != "" {
		t.Errorf("the first policies again: verdicts (-first +again):\n%s", diff)
	}

	if c.compile("keda", policies[1:]) == again {
		t.Error("a removed policy hit the cache")
	}
	if c.compile("other", policies) == again {
		t.Error("another namespace hit the cache")
	}

	files := cachePolicies(10)
	for _, p := range files {
		p.ResourceVersion = ""
	}
	if a, b := c.compile("keda", files), c.compile("keda", files); a == b {
		t.Error("policies without resourceVersion were cached")
	}
}

// TestCompiledSetsByteBudget: namespaces of policies with long except
// lists, compiled one after the other, keep the cache within its byte
// budget however few namespaces that leaves.
func TestCompiledSetsByteBudget(t *testing.T) {
	c := newCompiledSets()
	except := make([]string, 20000)
	for i := range except {
		except[i] = fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
	}
	for ns := range 40 {
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: fmt.Sprint("ns-", ns), ResourceVersion: "1"},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: except}}}}}}}
		c.compile(np.Namespace, []*networkingv1.NetworkPolicy{np})
		if b := c.sets.Bytes(); b > compiledSetsBytes {
			t.Fatalf("after %d namespaces: %d bytes held, budget %d", ns+1, b, compiledSetsBytes)
		}
	}
	if n := c.sets.Len(); n >= 40 {
		t.Errorf("%d sets of about 2 MB kept in a %d-byte budget", n, compiledSetsBytes)
	}
}
