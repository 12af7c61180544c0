package k0s

import (
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// How k0s reads its config file, found in k0s's source (github.com/k0sproject/k0s,
// main at v1.37.0-alpha.1+k0s.0-258, August 2026; the same since v1.30.0):
//
//   - pkg/apis/k0s/v1beta1/clusterconfig_types.go, ConfigFromBytes ->
//     ClusterConfig.MergedWithYAML: the text goes through
//     strictyaml.YamlUnmarshalStrictIgnoringFields(bytes, cfg, "interval",
//     "podSecurityPolicy") (internal/pkg/strictyaml/strictyaml.go), which is
//     sigs.k8s.io/yaml's UnmarshalStrict: YAML to JSON with yaml.v2 in strict
//     mode, which refuses a key set twice in a mapping (also by a merge key,
//     "<<"), then the JSON decoded with DisallowUnknownFields. When the error
//     message contains `unknown field "interval"` or `unknown field
//     "podSecurityPolicy"`, MergedWithYAML drops it and k0s runs with the
//     config. These are the legacy fields: spec.telemetry.interval (removed in
//     k0s commit e61abc057c, 2021) and spec.podSecurityPolicy (removed with
//     Kubernetes 1.25, commit f02bd11668). k0s matches them by name alone,
//     so at any depth.
//   - The JSON decoder keeps only its first error, and meets the keys sorted
//     (sigs.k8s.io/yaml converts through a Go map), depth first. So k0s names
//     the first unknown field in that order, and when that one is interval or
//     podSecurityPolicy it accepts the document whatever else is unknown.
//   - ClusterConfig.UnmarshalJSON decodes with its own json.Decoder and
//     DisallowUnknownFields. encoding/json does not carry that setting into a
//     field's own UnmarshalJSON, and APISpec (api.go, since v1.30.0), Network
//     (network.go), StorageSpec (storage.go) and ClusterImages (images.go)
//     have one calling plain json.Unmarshal: k0s ignores unknown fields
//     anywhere under spec.api, spec.network (calico, kuberouter,
//     nodeLocalLoadBalancing, ... included), spec.storage and spec.images.
//     It refuses them everywhere else: at the top level, in metadata
//     (metav1.ObjectMeta), in spec and in its other sections.
//   - Field names match without regard to case (encoding/json): `Network:`
//     is spec.network. Keys differing in case are not duplicates.
//
// k0sctl reads k0sctl.yaml with gopkg.in/yaml.v2 UnmarshalStrict
// (pkg/manifest/reader.go, ResourceDefinition.Unmarshal), refusing a
// duplicate key there too, keeps spec.k0s.config as a free-form mapping, and
// runs `k0s config validate --config` on it (phase/configure_k0s.go): the
// same strict reading.

// legacyFields are the unknown fields k0s lets pass, by name.
var legacyFields = map[string]bool{"interval": true, "podSecurityPolicy": true}

// shape is what k0s's strict decoding knows of a value: an object's fields,
// or the items of a list. A nil *shape accepts any content: a scalar, a
// free-form map, or a section k0s decodes without refusing unknown fields.
type shape struct {
	fields map[string]*shape // an object's fields, by their JSON name
	each   *shape            // a list's items
}

// field returns the shape of the field name, matched as encoding/json
// matches: exactly, or else without regard to case.
func (s *shape) field(name string) (*shape, bool) {
	if f, ok := s.fields[name]; ok {
		return f, true
	}
	for n, f := range s.fields {
		if strings.EqualFold(n, name) {
			return f, true
		}
	}
	return nil, false
}

func object(fields map[string]*shape) *shape { return &shape{fields: fields} }

func listOf(item *shape) *shape { return &shape{each: item} }

// names is an object whose fields accept any content.
func names(fields ...string) *shape {
	s := &shape{fields: make(map[string]*shape, len(fields))}
	for _, f := range fields {
		s.fields[f] = nil
	}
	return s
}

// jsonFields is an object with the JSON fields of a Go struct, each
// accepting any content.
func jsonFields(t reflect.Type) *shape {
	s := &shape{fields: map[string]*shape{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "" && name != "-" {
			s.fields[name] = nil
		}
	}
	return s
}

// clusterConfigShape is the ClusterConfig document as k0s's strict decoding
// knows it (pkg/apis/k0s/v1beta1, the field names of the json tags; the
// union of v1.30 to main, which only added fields). The check goes as deep
// as k0s refuses unknown fields, with one exception: metadata's own fields
// are checked, not those inside ownerReferences and managedFields items.
// Sections k0s reads tolerantly (api, network, storage, images) and free
// values (extraArgs, workerProfiles[].values, ...) accept any content; duplicate
// keys are checked in every part of the document.
var clusterConfigShape = object(map[string]*shape{
	"apiVersion": nil,
	"kind":       nil,
	"metadata":   jsonFields(reflect.TypeFor[metav1.ObjectMeta]()),
	"spec":       specShape,
	"status":     names(), // ClusterConfigStatus has no fields
})

// specShape is ClusterSpec (clusterconfig_types.go) and its sections.
var specShape = object(map[string]*shape{
	// Decoded by their own UnmarshalJSON without DisallowUnknownFields.
	"api": nil, "network": nil, "storage": nil, "images": nil,

	"controllerManager": names("extraArgs", "rawArgs"),
	"scheduler":         names("extraArgs", "rawArgs"),
	"workerProfiles":    listOf(names("name", "values")), // workerprofile.go; values is a RawExtension
	"telemetry":         names("enabled"),                // telemetry.go
	"installConfig": object(map[string]*shape{ // InstallSpec, SystemUser (system.go)
		"users": names("etcdUser", "kineUser", "konnectivityUser", "kubeAPIserverUser", "kubeSchedulerUser"),
	}),
	"extensions": object(map[string]*shape{ // extensions.go
		"storage": names("type", "create_default_storage_class"),
		"helm": object(map[string]*shape{
			"concurrencyLevel": nil,
			"repositories":     listOf(names("name", "url", "insecure", "caFile", "certFile", "keyfile", "username", "password")),
			"charts":           listOf(names("name", "chartname", "version", "values", "namespace", "timeout", "forceUpgrade", "order")),
		}),
	}),
	"konnectivity": names("adminPort", "agentPort", "externalAddress"), // konnectivity.go
	"featureGates": listOf(names("name", "enabled", "components")),     // feature_gates.go
	"metricsServer": object(map[string]*shape{ // metricsserver.go, patches.go
		"patches": listOf(object(map[string]*shape{
			"target": names("kind", "name", "namespace"),
			"patch":  names("type", "content"),
		})),
	}),
})
