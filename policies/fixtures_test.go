package policies_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// TestManifestFixtures runs the offline path: a static view loaded from
// manifests, every APIService in them reviewed as a CREATE.
func TestManifestFixtures(t *testing.T) {
	tests := []struct {
		file string
		want map[string][]verdict // by APIService name
	}{
		{
			file: "metrics-server.yaml",
			want: map[string][]verdict{
				"v1beta1.metrics.k8s.io": {{"apiservice-insecure-skip-tls", policies.Warn}},
			},
		},
		{
			file: "keda-gke-broken.yaml",
			want: map[string][]verdict{
				"v1beta1.external.metrics.k8s.io": {
					{"apiservice-no-ready-endpoints", policies.Warn},
					{"apiservice-cabundle-invalid", policies.Enforce},
					{"apiservice-auth-delegation", policies.Warn},
					{"apiservice-firewall-port", policies.Warn},
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			v, err := cluster.LoadStatic(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatalf("LoadStatic: %v", err)
			}
			e := mustEngine(t, defaultConfig(t))
			got := map[string][]verdict{}
			for _, l := range v.Objects() {
				api, ok := l.Object.(*apiregv1.APIService)
				if !ok {
					continue
				}
				findings := e.Evaluate(t.Context(), createReview(api, time.Time{}), v)
				got[api.Name] = verdicts(findings)
				for _, f := range findings {
					if want := (policies.ObjectRef{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: api.Name}); f.Object != want {
						t.Errorf("finding %s is about %+v, want %+v", f.Rule, f.Object, want)
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings per APIService (-want +got):\n%s", diff)
			}
		})
	}
}
