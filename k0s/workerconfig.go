package k0s

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// Labels k0s puts on the worker-config ConfigMaps it manages.
const (
	LabelManagedBy          = "app.kubernetes.io/managed-by"
	LabelComponent          = "app.kubernetes.io/component"
	ManagedByK0s            = "k0s"
	ComponentWorkerConfig   = "worker-config"
	WorkerKonnectivityKey   = "konnectivity"
	workerConfigNamePattern = `^worker-config-.+-[0-9]+\.[0-9]+$`
)

var workerConfigName = regexp.MustCompile(workerConfigNamePattern)

// IsWorkerConfig reports whether a kube-system ConfigMap is a k0s
// worker-config: labelled as one by k0s, or named as k0s workers look them
// up, worker-config-<profile>-<major.minor> (a worker reads a ConfigMap of
// that name whoever wrote it).
func IsWorkerConfig(name string, labels map[string]string) bool {
	return labels[LabelManagedBy] == ManagedByK0s && labels[LabelComponent] == ComponentWorkerConfig ||
		workerConfigName.MatchString(name)
}

// WorkerKonnectivity is the konnectivity entry of a worker-config: whether
// workers run konnectivity-agent, and the controller port it connects to.
// k0s writes it as JSON and omits enabled when it is false:
// {"enabled":true,"agentPort":8132} or {"agentPort":8132}.
type WorkerKonnectivity struct {
	Enabled   bool `json:"enabled,omitempty"`
	AgentPort int  `json:"agentPort,omitempty"`
}

// ParseWorkerKonnectivity parses a worker-config's konnectivity value as a
// k0s worker does (JSON, or YAML, which k0s also accepts), with the same
// checks: wrong types and an agentPort outside 1-65535 are errors naming the
// field path (data[konnectivity].agentPort).
func ParseWorkerKonnectivity(value string) (WorkerKonnectivity, error) {
	var k WorkerKonnectivity
	path := field.NewPath("data").Key(WorkerKonnectivityKey)
	if len(value) > MaxDocumentBytes {
		return k, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	js, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		return k, fmt.Errorf("%s: not JSON (nor YAML): %w", path, err)
	}
	if err := json.Unmarshal(js, &k); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field != "" {
				return k, typeError(path.Child(te.Field), te, "")
			}
			return k, typeError(path, te, `{"enabled":true,"agentPort":8132}`)
		}
		return k, fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	if k.AgentPort < 1 || k.AgentPort > maxPort {
		return k, field.Invalid(path.Child("agentPort"), k.AgentPort, "must be between 1 and 65535, inclusive")
	}
	return k, nil
}
