package k0s

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// MaxDocumentBytes bounds the k0s configuration text the guard parses: 1 MiB,
// the most a ConfigMap may hold. Real k0s.yaml files are a few KiB.
const MaxDocumentBytes = 1 << 20

// ErrTooLarge is returned (wrapped) for text over MaxDocumentBytes.
var ErrTooLarge = fmt.Errorf("over %d bytes: not parsed", MaxDocumentBytes)

// ParseSpec decodes a ClusterConfig spec (JSON, as the API server stores it)
// into a Spec. Unknown fields are ignored and field names match without
// regard to case, as k0s decodes; a field of the wrong type is an error
// naming its path ("spec.network.podCIDR: ..."). An empty spec is k0s's
// defaults. ParseSpec does not validate values: see Spec.Validate.
func ParseSpec(raw []byte) (*Spec, error) {
	spec := &Spec{}
	if len(raw) > MaxDocumentBytes {
		return nil, fmt.Errorf("spec: %w", ErrTooLarge)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return spec, nil
	}
	if err := json.Unmarshal(raw, spec); err != nil {
		return nil, decodeError(err)
	}
	return spec, nil
}

// decodeError turns a JSON decoding error into one naming the field path.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := field.NewPath("spec")
		if te.Field != "" {
			for part := range strings.SplitSeq(te.Field, ".") {
				path = path.Child(part)
			}
		}
		return typeError(path, te, "")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("spec: not valid JSON at byte %d: %w", se.Offset, err)
	}
	return fmt.Errorf("spec: %w", err)
}

// typeError reports a value of the wrong type at path, with an example of
// the right one when given.
func typeError(path *field.Path, te *json.UnmarshalTypeError, example string) *field.Error {
	want := typeName(te.Type)
	if example != "" {
		want += " like " + example
	}
	got := te.Value
	switch {
	case strings.HasPrefix(got, "number "):
		got = "the number " + strings.TrimPrefix(got, "number ")
	case got == "array" || got == "object":
		got = "an " + got
	case got == "bool":
		got = "a boolean"
	default:
		got = "a " + got
	}
	return field.TypeInvalid(path, field.OmitValueType{}, fmt.Sprintf("must be %s, not %s", want, got))
}

// typeName names a Go type the way a YAML author thinks of it.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return t.String()
}

// header is what identifies a document's kind, and its spec.
type header struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Spec       json.RawMessage `json:"spec"`
}

// IsClusterConfig reports whether apiVersion and kind name a k0s
// ClusterConfig, of any version.
func IsClusterConfig(apiVersion, kind string) bool {
	gv, err := schema.ParseGroupVersion(apiVersion)
	return err == nil && gv.Group == GroupName && kind == ClusterConfigKind.Kind
}

// Mentions reports whether text names a k0s ClusterConfig at all: the
// fallback test for text too broken to parse.
func Mentions(text string) bool {
	return strings.Contains(text, GroupName) && strings.Contains(text, ClusterConfigKind.Kind)
}

// FindClusterConfig looks for a ClusterConfig document in text (a ConfigMap
// value, a k0s.yaml): YAML or JSON, possibly several documents. found is true
// when a document is a ClusterConfig, or when text cannot be parsed but
// Mentions one; err then says what is wrong with it: not YAML, too large, a
// version k0s does not serve, or a spec ParseSpec refuses.
func FindClusterConfig(text string) (spec *Spec, found bool, err error) {
	if len(text) > MaxDocumentBytes {
		return nil, Mentions(text), ErrTooLarge
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	for n := 1; ; n++ {
		doc, rerr := reader.Read()
		if errors.Is(rerr, io.EOF) {
			return nil, false, nil
		}
		if rerr != nil {
			return nil, Mentions(text), fmt.Errorf("not valid YAML: %w", rerr)
		}
		js, yerr := yaml.YAMLToJSON(doc)
		if yerr != nil {
			return nil, Mentions(text), fmt.Errorf("not valid YAML (document %d): %w", n, yerr)
		}
		var h header
		if json.Unmarshal(js, &h) != nil || !IsClusterConfig(h.APIVersion, h.Kind) {
			continue // not an object, or another kind
		}
		if h.APIVersion != SchemeGroupVersion.String() {
			return nil, true, field.NotSupported(field.NewPath("apiVersion"), h.APIVersion, []string{SchemeGroupVersion.String()})
		}
		spec, err := ParseSpec(h.Spec)
		return spec, true, err
	}
}
