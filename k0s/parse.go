package k0s

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
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

// Document is a ClusterConfig document found in text.
type Document struct {
	// Spec is the spec; nil when Err is set.
	Spec *Spec
	// Err says why the document cannot be used: not YAML, too large, a
	// version k0s does not serve, or a spec ParseSpec refuses.
	Err error
	// Strict is what k0s's strict reading of the text refuses (see
	// CheckStrict): unknown fields and duplicate keys, nil when there is
	// none. It is found whether or not the spec parses, but not for text
	// that is not YAML, too large or of another version.
	Strict error
}

// FindClusterConfig looks for a ClusterConfig document in text (a ConfigMap
// value, a k0s.yaml): YAML or JSON, possibly several documents, of which the
// first ClusterConfig counts. found is true when a document is a
// ClusterConfig, or when text cannot be parsed but Mentions one; doc then
// says what is wrong with it.
func FindClusterConfig(text string) (doc Document, found bool) {
	if len(text) > MaxDocumentBytes {
		return Document{Err: ErrTooLarge}, Mentions(text)
	}
	docs, serr := splitDocuments(text)
	for n, d := range docs {
		js, yerr := yaml.YAMLToJSON([]byte(d.text))
		if yerr != nil {
			return Document{Err: fmt.Errorf("not valid YAML (document %d): %w", n+1, yerr)}, Mentions(text)
		}
		var h header
		if json.Unmarshal(js, &h) != nil || !IsClusterConfig(h.APIVersion, h.Kind) {
			continue // not an object, or another kind
		}
		if h.APIVersion != SchemeGroupVersion.String() {
			return Document{Err: field.NotSupported(field.NewPath("apiVersion"), h.APIVersion, []string{SchemeGroupVersion.String()})}, true
		}
		spec, err := ParseSpec(h.Spec)
		return Document{Spec: spec, Err: err, Strict: CheckStrict([]byte(d.text), d.line, "")}, true
	}
	if serr != nil {
		return Document{Err: fmt.Errorf("not valid YAML: %w", serr)}, Mentions(text)
	}
	return Document{}, false
}

// yamlDocument is one document of a text, and the line it starts on.
type yamlDocument struct {
	text string
	line int
}

// splitDocuments splits text into its YAML documents at separator lines, as
// the API machinery's YAMLReader does: a line starting with "---" and
// followed by nothing but spaces or a comment; anything else after "---" is
// an error, returned with the documents before it. Empty documents are left
// out.
func splitDocuments(text string) ([]yamlDocument, error) {
	var docs []yamlDocument
	start, startLine := 0, 1
	for off, line := 0, 1; off < len(text); line++ {
		next := len(text)
		if i := strings.IndexByte(text[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		if rest, ok := strings.CutPrefix(text[off:next], "---"); ok {
			if t := strings.TrimSpace(rest); t != "" && t[0] != '#' {
				return docs, fmt.Errorf("line %d: invalid YAML document separator: %s", line, t)
			}
			if off > start {
				docs = append(docs, yamlDocument{text: text[start:off], line: startLine})
			}
			start, startLine = next, line+1
		}
		off = next
	}
	if start < len(text) {
		docs = append(docs, yamlDocument{text: text[start:], line: startLine})
	}
	return docs, nil
}
