package netpol_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/policies/netpol"
)

// Differential test parameters: fixed seeds make every run draw the same cases.
const (
	diffCases = 30000
	diffSeed1 = 0x6e6574706f6c // "netpol"
	diffSeed2 = 2026
	// maxReported stops the test after this many disagreements.
	maxReported = 5
)

// ambiguity is a place where cyclonus's model and this package's reading of
// the spec part ways, and how the differential test handles it.
type ambiguity struct {
	id, why, handling string
}

// ambiguities lists every known divergence. Counted ones are reported by
// TestDifferential under their id.
func ambiguities() []ambiguity {
	return []ambiguity{
		{"own-node", "the spec always allows ingress from the pod's own node; cyclonus has no nodes",
			"counted: where Reason is SameNode, cyclonus must say denied with the same isolating policies"},
		{"notin-absent-key", "cyclonus's NotIn fails on a missing key; apimachinery's labels (what the API server and plugins use) match it",
			"adapted: labels are made total over the universe's keys (absent -> " + absentValue + ") and Exists/DoesNotExist rewritten to NotIn/In [" + absentValue + "], which means the same under both readings; cases where unadapted cyclonus differs are counted"},
		{"policytypes-defaulting", "cyclonus panics on a policy without policyTypes; the API server defaults them",
			"adapted: the oracle gets a copy defaulted as the API server does; the defaulting itself is in the hand table"},
		{"hostnetwork", "cyclonus does not model hostNetwork; the spec's common implementation treats such pods as their node",
			"adapted: hostNetwork pods are external peers at their node IP; counted: ingress verdicts at a hostNetwork destination (not policed in either)"},
		{"named-port-protocol", "cyclonus takes the port name from the caller; the spec resolves it on the destination pod",
			"adapted: the name of the container port with the traffic's number and protocol is passed"},
		{"named-port-duplicates", "two container ports with the same number and protocol (different names) make the resolved name ambiguous",
			"avoided: generated pods have unique names and unique number/protocol pairs"},
		{"invalid-policies", "cyclonus panics on invalid policies (bad CIDR, endPort < port, empty peer); this package reports Issues",
			"avoided: the generator emits valid policies only (checked: Set.Issues must be empty); invalid input is in the hand table and FuzzEvaluate"},
		{"lenient-cidr", "cyclonus parses CIDRs with net.ParseCIDR, which rejects IPv4 octets with leading zeros that the API server's legacy parser accepts",
			"avoided: generated CIDRs are canonical (host bits may be set); leniency is in the hand table"},
	}
}

// diffStats counts what the differential run saw.
type diffStats struct {
	counts  map[string]int // by ambiguity id, for the counted ones
	reasons map[string]int // by direction/reason/allowed
}

// TestDifferential compares Set.Ingress and Set.Egress with cyclonus on
// diffCases random cases, each in both directions.
func TestDifferential(t *testing.T) {
	g := newGen(diffSeed1, diffSeed2)
	keys := g.u.allKeys()
	st := diffStats{counts: map[string]int{"own-node": 0, "notin-absent-key": 0, "hostnetwork": 0}, reasons: map[string]int{}}
	failures := 0
	for i := range diffCases {
		c := g.newCase()
		set := netpol.Compile(c.policies)
		if issues := set.Issues(); len(issues) > 0 {
			t.Fatalf("case %d: generator made an invalid policy: %v", i, issues)
		}
		for _, egress := range []bool{false, true} {
			msg := compareOne(set, c, egress, keys, &st)
			if msg == "" {
				continue
			}
			failures++
			t.Errorf("case %d (%s): %s\n%s", i, dirName(egress), msg, dumpCase(c))
			if failures >= maxReported {
				t.Fatalf("stopping after %d disagreements", failures)
			}
		}
	}
	for _, a := range ambiguities() {
		if n, ok := st.counts[a.id]; ok {
			t.Logf("ambiguity %-22s %d verdicts: %s", a.id, n, a.handling)
		} else {
			t.Logf("ambiguity %-22s %s", a.id, a.handling)
		}
	}
	t.Logf("differential: %d cases x 2 directions, seeds %#x/%d, %d disagreements; outcomes %v",
		diffCases, diffSeed1, diffSeed2, failures, st.reasons)
	checkCoverage(t, st)
}

// compareOne evaluates one direction of c with both implementations and
// returns a description of the disagreement, or "".
func compareOne(set *netpol.Set, c genCase, egress bool, keys []string, st *diffStats) string {
	v := set.Ingress(c.traffic)
	if egress {
		v = set.Egress(c.traffic)
	}
	var theirs oracleResult
	if err := catch(func() { theirs = oracle(c.policies, c.traffic, egress, true, keys) }); err != nil {
		return "cyclonus panicked: " + err.Error()
	}
	raw := oracle(c.policies, c.traffic, egress, false, keys)
	if raw.allowed != theirs.allowed || !slices.Equal(raw.isolatedBy, theirs.isolatedBy) {
		st.counts["notin-absent-key"]++
	}
	st.reasons[fmt.Sprintf("%s/%s", dirName(egress), v.Reason)]++
	var mine []string
	for _, r := range v.IsolatedBy {
		mine = append(mine, r.String())
	}
	slices.Sort(mine)
	switch {
	case !slices.Equal(mine, theirs.isolatedBy):
		return fmt.Sprintf("isolating policies differ: netpol %v, cyclonus %v", mine, theirs.isolatedBy)
	case v.Reason == netpol.SameNode:
		st.counts["own-node"]++
		if egress || !fromOwnNode(c.traffic) {
			return "SameNode verdict for traffic that is not ingress from the pod's own node: " + v.Explanation
		}
		if theirs.allowed {
			return "SameNode verdict, but cyclonus allows it by a rule: " + v.Explanation
		}
	case !egress && !v.Allowed && fromOwnNode(c.traffic):
		return "ingress from the pod's own node denied: " + v.Explanation
	case v.Allowed != theirs.allowed:
		return fmt.Sprintf("allowed: netpol %t, cyclonus %t: %s", v.Allowed, theirs.allowed, v.Explanation)
	case v.AllowedBy != nil && !slices.Contains(theirs.allowers, v.AllowedBy.Policy.String()):
		return fmt.Sprintf("netpol allowed by %s, cyclonus's allowing policies are %v", v.AllowedBy, theirs.allowers)
	}
	if v.Reason == netpol.NotPoliced && c.traffic.Destination.Pod != nil && !egress {
		st.counts["hostnetwork"]++
	}
	return ""
}

// fromOwnNode is the test's own reading of the own-node rule: a source that
// is no pod-network pod, on the destination pod's node.
func fromOwnNode(t netpol.Traffic) bool {
	src, dst := t.Source, t.Destination
	if src.Pod != nil && !src.Pod.HostNetwork || dst.Pod == nil {
		return false
	}
	node := src.Node
	if node == "" && src.Pod != nil {
		node = src.Pod.NodeName
	}
	return node != "" && node == dst.Pod.NodeName
}

// checkCoverage fails when the generator stopped reaching an outcome: a
// differential run that never denies proves little.
func checkCoverage(t *testing.T, st diffStats) {
	t.Helper()
	for _, want := range []string{
		"ingress/NotPoliced", "ingress/NotIsolated", "ingress/AllowedByRule", "ingress/SameNode", "ingress/NoRuleAllows",
		"egress/NotPoliced", "egress/NotIsolated", "egress/AllowedByRule", "egress/NoRuleAllows",
	} {
		if st.reasons[want] < 200 {
			t.Errorf("outcome %s seen %d times, want >= 200: the generator lost coverage", want, st.reasons[want])
		}
	}
}

func dirName(egress bool) string {
	if egress {
		return "egress"
	}
	return "ingress"
}

// catch runs f and turns a panic into an error.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

// dumpCase renders a case for a failure message.
func dumpCase(c genCase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "traffic: %s -> %s port %d %q\n", c.traffic.Source, c.traffic.Destination, c.traffic.Port, c.traffic.Protocol)
	for _, e := range []netpol.Endpoint{c.traffic.Source, c.traffic.Destination} {
		if e.Pod != nil {
			fmt.Fprintf(&b, "pod %+v\n", *e.Pod)
		}
	}
	for _, p := range c.policies {
		y, _ := yaml.Marshal(p)
		b.WriteString("---\n" + string(y))
	}
	return b.String()
}
