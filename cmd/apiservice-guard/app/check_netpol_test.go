package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"apiservice-guard.io/apiservice-guard/policies"
)

// NetworkPolicy fixtures: a KEDA backend, policies that each cut the control
// plane (172.16.0.0/28) off from it, and the policy that fixes them all.
const (
	netpolDir     = "testdata/check/netpol"
	netpolBackend = netpolDir + "/backend.yaml"
	netpolFixed   = netpolDir + "/fixed/allow-control-plane.yaml"
	controlPlane  = "172.16.0.0/28"
	blocksRule    = "networkpolicy-blocks-apiservice"
)

// failingPolicies are the fixtures under failing/, by file, with the name of
// the policy each holds (messages name policies in the pod's namespace
// without it).
func failingPolicies(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(netpolDir, "failing", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("failing fixtures: %v, %v", files, err)
	}
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(data), "\n  name: ")
		name, _, _ := strings.Cut(rest, "\n")
		out[f] = name
	}
	return out
}

// checkPolicies runs check on the backend and the policy files, with the
// control plane's CIDR when cidr is set.
func checkPolicies(t *testing.T, cidr bool, files ...string) (int, []checkFinding) {
	t.Helper()
	args := []string{"check", "-o", "json", "-f", netpolBackend}
	if cidr {
		args = append(args, "--control-plane-cidr", controlPlane)
	}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	code, stdout, stderr := runMain(args...)
	if code != exitOK && code != exitFindings {
		t.Fatalf("check %v: exit %d\n%s", files, code, stderr)
	}
	return code, decodeReport(t, stdout)
}

// ofRule are the findings of rule.
func ofRule(fs []checkFinding, rule string) []checkFinding {
	var out []checkFinding
	for _, f := range fs {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

// TestCheckPoliciesAsASet: the files' policies are judged together. Each
// failing fixture fails alone, every pair of them fails too (in both orders),
// naming both policies in one finding, and the fix passes next to any of them.
func TestCheckPoliciesAsASet(t *testing.T) {
	failing := failingPolicies(t)
	for file, name := range failing {
		t.Run("alone/"+filepath.Base(file), func(t *testing.T) {
			code, fs := checkPolicies(t, true, file)
			got := ofRule(fs, blocksRule)
			if code != exitFindings || len(got) != 1 || got[0].Action != policies.Enforce || !strings.Contains(got[0].Message, name) {
				t.Errorf("exit %d, %s findings %v; want exit 1 and one Enforce naming %s", code, blocksRule, got, name)
			}
		})
		t.Run("with the fix/"+filepath.Base(file), func(t *testing.T) {
			if code, fs := checkPolicies(t, true, file, netpolFixed); code != exitOK || len(ofRule(fs, blocksRule)) != 0 {
				t.Errorf("exit %d, findings %v; want exit 0 and no %s", code, fs, blocksRule)
			}
		})
		for other, otherName := range failing {
			if other == file {
				continue
			}
			t.Run("pair/"+filepath.Base(file)+"+"+filepath.Base(other), func(t *testing.T) {
				code, fs := checkPolicies(t, true, file, other)
				got := ofRule(fs, blocksRule)
				if code != exitFindings || len(got) != 1 || got[0].Action != policies.Enforce {
					t.Fatalf("exit %d, %s findings %v; want exit 1 and one Enforce", code, blocksRule, got)
				}
				if !strings.Contains(got[0].Message, name) || !strings.Contains(got[0].Message, otherName) {
					t.Errorf("message %q does not name both %s and %s", got[0].Message, name, otherName)
				}
				if got[0].Object.Name != name {
					t.Errorf("finding is on %s, want the first policy in the files, %s", got[0].Object.Name, name)
				}
			})
		}
	}
}

// TestCheckCannotVerifyOncePerNamespace: without a control-plane source,
// the policies isolating the backend get one "cannot verify" warning between
// them, and a policy that isolates nothing protected gets none.
func TestCheckCannotVerifyOncePerNamespace(t *testing.T) {
	var files []string
	for f := range failingPolicies(t) {
		files = append(files, f)
	}
	code, fs := checkPolicies(t, false, files...)
	got := ofRule(fs, blocksRule)
	if code != exitOK || len(got) != 1 || got[0].Action != policies.Warn || !strings.Contains(got[0].Message, "cannot verify") {
		t.Fatalf("exit %d, %s findings %v; want exit 0 and one Warn saying it cannot verify", code, blocksRule, got)
	}
	if !strings.Contains(got[0].Fix, "--control-plane-cidr") {
		t.Errorf("fix %q does not name --control-plane-cidr", got[0].Fix)
	}
	dir := t.TempDir()
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-operator, namespace: keda}
spec:
  podSelector: {matchLabels: {app: keda-operator}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-6443, namespace: keda}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 6443}]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, fs := checkPolicies(t, false, other); len(ofRule(fs, blocksRule)) != 0 {
		t.Errorf("findings %v for policies that select no backend or admit everything, want none", fs)
	}
}
