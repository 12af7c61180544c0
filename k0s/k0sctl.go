package k0s

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// K0sctlGroup is the API group of k0sctl's configuration (k0sctl.yaml).
const K0sctlGroup = "k0sctl.k0sproject.io"

// K0sctlConfigPath is where a k0sctl Cluster embeds the k0s configuration.
const K0sctlConfigPath = "spec.k0s.config"

// FromK0sctl returns the ClusterConfig a k0sctl.yaml Cluster embeds at
// spec.k0s.config, in kube-system as k0s stores it and named after the
// Cluster when it names none. ok is false for any other object, and for a
// Cluster without a k0s config (k0sctl then uses k0s's defaults). An
// embedded config that is not an object, or whose metadata does not decode,
// is an error naming spec.k0s.config.
func FromK0sctl(obj map[string]any) (cfg *ClusterConfig, ok bool, err error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	gv, perr := schema.ParseGroupVersion(apiVersion)
	if perr != nil || gv.Group != K0sctlGroup || kind != "Cluster" {
		return nil, false, nil
	}
	spec, _ := obj["spec"].(map[string]any)
	k0sSpec, _ := spec["k0s"].(map[string]any)
	embedded, present := k0sSpec["config"]
	if !present || embedded == nil {
		return nil, false, nil
	}
	js, err := json.Marshal(embedded)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", K0sctlConfigPath, err)
	}
	cfg = &ClusterConfig{}
	if err := json.Unmarshal(js, cfg); err != nil {
		return nil, true, fmt.Errorf("%s: not a k0s ClusterConfig: %w", K0sctlConfigPath, err)
	}
	cfg.SetGroupVersionKind(SchemeGroupVersion.WithKind(ClusterConfigKind.Kind))
	if cfg.Namespace == "" {
		cfg.Namespace = Namespace
	}
	if cfg.Name == "" {
		meta, _ := obj["metadata"].(map[string]any)
		cfg.Name, _ = meta["name"].(string)
	}
	return cfg, true, nil
}
