package k0s_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"apiservice-guard.io/apiservice-guard/k0s"
)

// FuzzFindClusterConfig: any text is found or not, with or without an
// error, never a panic; a spec comes only when found without error, and
// validates without a panic. An error without a find only comes for text
// that does not mention a ClusterConfig (text that does is found, so that
// what is wrong with it is reported).
func FuzzFindClusterConfig(f *testing.F) {
	fixture, err := os.ReadFile("testdata/k0s.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add([]byte(k0sYAML))
	f.Add([]byte(configMapYAML + "---\n" + k0sYAML))
	f.Add([]byte(crdYAML))
	f.Add([]byte(`{"apiVersion":"k0s.k0sproject.io/v1beta1","kind":"ClusterConfig","spec":{"network":{"podCIDR":"10.32.0.0/12"},"konnectivity":{"agentPort":6443}}}`))
	f.Add([]byte("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network:\n    podCIDR: 10\n  konnectivity: [1]\n"))
	f.Add([]byte("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  api:\n    port: 1e30\n"))
	f.Add([]byte("apiVersion: k0s.k0sproject.io/v2\nkind: ClusterConfig\n"))
	f.Add([]byte("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network: [\n"))
	f.Add([]byte("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network:\n    provider: flannel\n    calico:\n      mode: foo\n"))
	f.Add([]byte(aliasBomb(3)))
	f.Add([]byte("a: [\n"))
	f.Add([]byte("\"\": 1\nspec: {\"a.b\": 2}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		text := string(data)
		doc, found := k0s.FindClusterConfig(text)
		spec, err := doc.Spec, doc.Err
		switch {
		case spec != nil && (!found || err != nil):
			t.Fatalf("FindClusterConfig() = spec, found %v, error %v: a spec without a clean find", found, err)
		case spec == nil && found && err == nil:
			t.Fatalf("FindClusterConfig() found without error, but no spec")
		case !found && err != nil && k0s.Mentions(text):
			t.Fatalf("FindClusterConfig() = not found, error %v, for text that mentions a ClusterConfig", err)
		case len(text) > k0s.MaxDocumentBytes && !errors.Is(err, k0s.ErrTooLarge):
			t.Fatalf("FindClusterConfig() error = %v for %d bytes, want ErrTooLarge", err, len(text))
		}
		if spec != nil {
			checkSpec(t, spec)
		}
		if doc.Strict != nil && !found {
			t.Fatalf("FindClusterConfig() = strict errors %v without a find", doc.Strict)
		}
		checkStrict(t, doc.Strict)
		// The same bytes as the ClusterConfig of a k0sctl.yaml.
		checkStrict(t, k0s.CheckStrict(data, 1, k0s.K0sctlConfigPath))

		// The same bytes as a raw spec.
		spec, err = k0s.ParseSpec(data)
		if (spec == nil) == (err == nil) {
			t.Fatalf("ParseSpec() = %v, %v: want exactly one of a spec and an error", spec, err)
		}
		if spec != nil {
			checkSpec(t, spec)
		}
	})
}

// checkSpec validates spec, and checks that what Validate passes is usable:
// the CIDRs parse and the ports are distinct and in range.
func checkSpec(t *testing.T, spec *k0s.Spec) {
	t.Helper()
	errs := spec.Validate()
	e := spec.Effective()
	for _, fe := range errs {
		if !strings.HasPrefix(fe.Field, "spec.") {
			t.Errorf("Validate() error %v: path not under spec", fe)
		}
	}
	if len(errs) > 0 {
		return
	}
	for _, c := range []string{e.PodCIDR, e.ServiceCIDR} {
		if _, err := k0s.ParseCIDR(c); err != nil {
			t.Errorf("Validate() passed CIDR %q, but ParseCIDR: %v", c, err)
		}
	}
	for _, p := range []int{e.APIPort, e.AgentPort, e.AdminPort} {
		if p < 1 || p > 65535 {
			t.Errorf("Validate() passed port %d", p)
		}
	}
	if e.AgentPort == e.AdminPort || e.AgentPort == e.APIPort || e.AdminPort == e.APIPort ||
		e.AgentPort == k0s.KubeletPort || e.AdminPort == k0s.KubeletPort {
		t.Errorf("Validate() passed colliding ports: %+v", e)
	}
}

// FuzzParseWorkerKonnectivity: any value parses or is an error, never a
// panic; a value that parses has a port in range and reads back the same
// once written as k0s writes it.
func FuzzParseWorkerKonnectivity(f *testing.F) {
	f.Add(`{"enabled":true,"agentPort":8132}`)
	f.Add(`{"agentPort":8132}`)
	f.Add("enabled: true\nagentPort: 8132")
	f.Add(`not json {`)
	f.Add(`{"enabled":"no","agentPort":1}`)
	f.Add(`{"agentPort":70000}`)
	f.Add(`{"agentPort":1e30}`)
	f.Add(`[1]`)
	f.Add(aliasBomb(3))
	f.Add("")
	f.Fuzz(func(t *testing.T, value string) {
		k, err := k0s.ParseWorkerKonnectivity(value)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "data[konnectivity]") {
				t.Fatalf("ParseWorkerKonnectivity() error %q does not name data[konnectivity]", err)
			}
			return
		}
		if k.AgentPort < 1 || k.AgentPort > 65535 {
			t.Fatalf("ParseWorkerKonnectivity() = %+v without error", k)
		}
		js, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		again, err := k0s.ParseWorkerKonnectivity(string(js))
		if err != nil || again != k {
			t.Fatalf("ParseWorkerKonnectivity(%s) = %+v, %v; want %+v", js, again, err, k)
		}
	})
}

// checkStrict checks that strict reading names a line and a field for
// every error, or is too large or too complex to check.
func checkStrict(t *testing.T, err error) {
	t.Helper()
	var errs k0s.StrictErrors
	switch {
	case err == nil, errors.Is(err, k0s.ErrTooLarge):
	case !errors.As(err, &errs) || len(errs) == 0:
		if !strings.Contains(err.Error(), "too far to check") {
			t.Fatalf("strict reading error = %v, want StrictErrors", err)
		}
	default:
		for _, e := range errs {
			if e.Line < 1 || e.Field == "" || e.Detail == "" {
				t.Fatalf("strict reading error %#v: want a line, a field and a detail", e)
			}
		}
	}
}
