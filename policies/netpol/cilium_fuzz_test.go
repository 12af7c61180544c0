package netpol_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// FuzzCiliumIngress: Cilium policies decoded from arbitrary JSON, valid or
// not, never panic, give the same verdict twice in each direction, and a
// verdict is
// consistent: a Cilium decision names its rule, a default deny its
// selecting policies.
func FuzzCiliumIngress(f *testing.F) {
	f.Add([]byte(`[{"metadata":{"namespace":"keda","name":"p"},"spec":{"endpointSelector":{},"ingress":[{"fromEntities":["cluster"]}]}}]`), []byte{0})
	f.Add([]byte(`[{"metadata":{"name":"c"},"specs":[{"endpointSelector":{"matchLabels":{"k8s:io.kubernetes.pod.namespace":"keda"}},`+
		`"ingressDeny":[{"fromCIDRSet":[{"cidr":"203.0.113.0/24","except":["203.0.113.10/32"]}],"toPorts":[{"ports":[{"port":"https"}]}]}]}]}]`), []byte{1, 2})
	f.Add([]byte(`[{"spec":{"endpointSelector":{"matchExpressions":[{"key":"app","operator":"In"}]},"ingress":[{"fromEndpoints":[{"matchLabels":{"reserved:host":""}}],`+
		`"toPorts":[{"ports":[{"port":"70000","protocol":"ICMP"},{"port":"6000","endPort":5000}]}]}],"enableDefaultDeny":{"ingress":false}}}]`), []byte{3})
	f.Fuzz(func(t *testing.T, policies []byte, traffic []byte) {
		var ps []*netpol.CiliumPolicy
		if json.Unmarshal(policies, &ps) != nil {
			return
		}
		d := &decoder{b: traffic}
		tr := d.traffic()
		tr.Source.KubeAPIServer = d.intn(2) == 0
		tr.Destination.KubeAPIServer = d.intn(2) == 0
		a, b := netpol.CompileCilium(ps), netpol.CompileCilium(ps)
		for _, eval := range []func(*netpol.CiliumSet) netpol.Verdict{
			func(c *netpol.CiliumSet) netpol.Verdict { return c.Ingress(tr) },
			func(c *netpol.CiliumSet) netpol.Verdict { return c.Egress(tr) },
		} {
			checkCiliumVerdict(t, eval(a), eval(b))
		}
	})
}

func checkCiliumVerdict(t *testing.T, v1, v2 netpol.Verdict) {
	t.Helper()
	if diff := cmp.Diff(v1, v2); diff != "" {
		t.Fatalf("not deterministic (-first +second):\n%s", diff)
	}
	decided := v1.Reason == netpol.CiliumAllowed || v1.Reason == netpol.CiliumDenied
	ok := v1.Allowed == (v1.Reason != netpol.CiliumDenied && v1.Reason != netpol.CiliumDefaultDeny) &&
		decided == (v1.DecidedBy != nil) &&
		(v1.Reason != netpol.CiliumDefaultDeny || len(v1.IsolatedBy) > 0) &&
		v1.Explanation != ""
	if !ok {
		t.Fatalf("inconsistent verdict: %+v", v1)
	}
}
