package netpol_test

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// TestWith: With replaces in place, appends, removes, and leaves the
// original set as it was.
func TestWith(t *testing.T) {
	tr := netpol.Traffic{Source: apiserver(), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	base := netpol.Compile(pols{
		netpolicy("keda", "deny", types(ing)),
		netpolicy("keda", "allow", in(ports(tcp(8080)))),
		netpolicy("other", "x"),
	})
	cases := []struct {
		name   string
		upsert pols
		remove []netpol.PolicyRef
		want   outcome
		len    int
	}{
		{name: "unchanged", want: denied("keda/deny", "keda/allow"), len: 3},
		{name: "update in place keeps order", upsert: pols{netpolicy("keda", "allow", in(ports(tcp(6443))))},
			want: allowed("keda/allow ingress rule 0", "keda/deny", "keda/allow"), len: 3},
		{name: "create appends", upsert: pols{netpolicy("keda", "new", in(nil))},
			want: allowed("keda/new ingress rule 0", "keda/deny", "keda/allow", "keda/new"), len: 4},
		{name: "delete", remove: []netpol.PolicyRef{{Namespace: "keda", Name: "deny"}},
			want: denied("keda/allow"), len: 2},
		{name: "delete the last one of a namespace", remove: []netpol.PolicyRef{{Namespace: "keda", Name: "deny"}, {Namespace: "keda", Name: "allow"}},
			want: notIsolated(), len: 1},
		{name: "delete unknown is a no-op", remove: []netpol.PolicyRef{{Namespace: "nope", Name: "x"}},
			want: denied("keda/deny", "keda/allow"), len: 3},
		{name: "nil upsert is skipped", upsert: pols{nil}, want: denied("keda/deny", "keda/allow"), len: 3},
		{name: "empty namespace means default", upsert: pols{netpolicy("", "d")}, remove: []netpol.PolicyRef{{Name: "d"}},
			want: denied("keda/deny", "keda/allow"), len: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := base.With(tc.upsert, tc.remove...)
			if diff := cmp.Diff(tc.want, outcomeOf(s.Ingress(tr))); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
			if s.Len() != tc.len {
				t.Errorf("Len = %d, want %d", s.Len(), tc.len)
			}
			if diff := cmp.Diff(denied("keda/deny", "keda/allow"), outcomeOf(base.Ingress(tr))); diff != "" {
				t.Errorf("With changed the original set (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIssues: Set.Issues lists every invalid part, by namespace then policy
// order, and a Verdict names only the policies that took part.
func TestIssues(t *testing.T) {
	s := netpol.Compile(pols{
		netpolicy("keda", "b", in(nil, ipPeer("nope"))),
		netpolicy("a-ns", "a", out(ports(tcp(0)))),
		netpolicy("keda", "c", selecting(map[string]string{"app": "other"}), in(nil, networkingv1.NetworkPolicyPeer{})),
	})
	want := []netpol.Issue{
		{Policy: netpol.PolicyRef{Namespace: "a-ns", Name: "a"}, Field: "spec.egress[0].ports[0].port",
			Detail: "port 0 is outside 1-65535; the port matches nothing"},
		{Policy: netpol.PolicyRef{Namespace: "keda", Name: "b"}, Field: "spec.ingress[0].from[0].ipBlock.cidr",
			Detail: `invalid CIDR "nope"; the peer matches nothing`},
		{Policy: netpol.PolicyRef{Namespace: "keda", Name: "c"}, Field: "spec.ingress[0].from[0]",
			Detail: "no podSelector, namespaceSelector or ipBlock; the peer matches nothing"},
	}
	if diff := cmp.Diff(want, s.Issues()); diff != "" {
		t.Errorf("Issues (-want +got):\n%s", diff)
	}
	v := s.Ingress(netpol.Traffic{Source: apiserver(), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443})
	if diff := cmp.Diff(want[1:2], v.Issues); diff != "" {
		t.Errorf("Verdict.Issues (-want +got):\n%s", diff)
	}
}

// TestExplanation: the one-line account of each kind of verdict.
func TestExplanation(t *testing.T) {
	dst := netpol.PodEndpoint(kedaPod())
	many := pols{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		many = append(many, netpolicy("keda", n))
	}
	cases := []struct {
		name     string
		policies pols
		tr       netpol.Traffic
		egress   bool
		want     string
	}{
		{"not isolated", nil, netpol.Traffic{Source: apiserver(), Destination: dst, Port: 6443},
			false, "ingress from 192.168.0.10 (node cp-1) to keda/keda-metrics-apiserver on 6443/TCP allowed: no NetworkPolicy selects the destination pod for ingress"},
		{"allowed by rule", pols{netpolicy("keda", "p", in(nil), in(ports(tcp(6443))))}, netpol.Traffic{Source: external(), Destination: dst, Port: 6443},
			false, "ingress from 203.0.113.5 to keda/keda-metrics-apiserver on 6443/TCP allowed by keda/p ingress rule 0"},
		{"denied, many policies", many, netpol.Traffic{Source: apiserver(), Destination: dst, Port: 6443, Protocol: "UDP"},
			false, "ingress from 192.168.0.10 (node cp-1) to keda/keda-metrics-apiserver on 6443/UDP denied: isolated by keda/a, keda/b, keda/c and 2 more, and no ingress rule allows it"},
		{"same node", many[:1], netpol.Traffic{Source: ownNode(), Destination: dst, Port: 6443},
			false, "ingress from 192.168.0.21 (node worker-1) to keda/keda-metrics-apiserver on 6443/TCP allowed only because the source is the pod's own node; no rule of keda/a allows it"},
		{"not policed", nil, netpol.Traffic{Source: netpol.PodEndpoint(agentPod(true)), Destination: dst, Port: 6443},
			true, "egress from kube-system/konnectivity-agent-x (hostNetwork 192.168.0.21) to keda/keda-metrics-apiserver on 6443/TCP allowed: NetworkPolicy does not apply, the source is no pod-network pod"},
		{"with issues", pols{netpolicy("keda", "p", in(nil, ipPeer("bad")))}, netpol.Traffic{Source: external(), Destination: dst, Port: 6443},
			false, `ingress from 203.0.113.5 to keda/keda-metrics-apiserver on 6443/TCP denied: isolated by keda/p, and no ingress rule allows it (1 invalid part(s) in these policies, first: policy keda/p spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "bad"; the peer matches nothing)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := netpol.Evaluate(tc.policies, tc.tr)
			got := p.Ingress.Explanation
			if tc.egress {
				got = p.Egress.Explanation
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("explanation (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConcurrentUse: one Set evaluated from many goroutines while With
// derives others (run with -race).
func TestConcurrentUse(t *testing.T) {
	set := netpol.Compile(benchPolicies(200, 10))
	tr := netpol.Traffic{Source: apiserver(), Destination: netpol.PodEndpoint(kedaPod()), Port: 6443}
	want := set.Reach(tr)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if diff := cmp.Diff(want, set.Reach(tr)); diff != "" {
					t.Errorf("verdict changed under concurrent use (-want +got):\n%s", diff)
					return
				}
				set.With(pols{netpolicy("keda", "np-"+string(rune('a'+i)))})
			}
		})
	}
	wg.Wait()
}
