package k0s

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// StrictError is something k0s's strict reading of its config file refuses
// (see strict_fields.go): a field it does not know, or a key set twice.
type StrictError struct {
	// Line is the key's line in the file, from 1.
	Line int
	// Field is the key's path in the ClusterConfig: "spec.netwrok".
	Field string
	// Detail is "unknown field", or "duplicate key (first at line 5)".
	Detail string
}

func (e *StrictError) Error() string {
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Detail)
}

// StrictErrors are what k0s refuses in one ClusterConfig text, by line.
type StrictErrors []*StrictError

// maxStrictMessage is about how long StrictErrors.Error gets before it
// counts the rest.
const maxStrictMessage = 150

// Error lists the errors, as many as fit in about 150 characters, and
// counts the rest: "line 7: spec.netwrok: unknown field; ... (+2 more)".
func (e StrictErrors) Error() string {
	var b strings.Builder
	for i, se := range e {
		msg := se.Error()
		if i > 0 && b.Len()+len(msg) > maxStrictMessage {
			fmt.Fprintf(&b, " (+%d more)", len(e)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(msg)
	}
	return b.String()
}

// maxStrictSteps bounds the work of one strict reading: aliases and merge
// keys can make a small text expand into much more.
const maxStrictSteps = 1 << 21

var errTooComplex = errors.New("aliases and merge keys expand too far to check")

// CheckStrict reads text, one YAML or JSON document, as k0s reads its config
// file, and returns what k0s would refuse: StrictErrors naming the unknown
// fields and duplicate keys with their lines, nil when there is none. at is
// where the ClusterConfig is in the document: "" for a k0s.yaml,
// K0sctlConfigPath for a k0sctl.yaml. firstLine is the line text starts on
// in its file, for the lines named.
//
// It does not say whether text is valid YAML or whether the values have the
// right types: what does not parse is left to the YAML decoder and to
// ParseSpec. Text over MaxDocumentBytes is ErrTooLarge.
func CheckStrict(text []byte, firstLine int, at string) error {
	if len(text) > MaxDocumentBytes {
		return fmt.Errorf("strict reading: %w", ErrTooLarge)
	}
	var doc yaml.Node
	if yaml.Unmarshal(text, &doc) != nil {
		return nil
	}
	root := &doc
	if at != "" {
		if root = lookup(&doc, strings.Split(at, ".")); root == nil {
			return nil
		}
	}
	r := &strictReader{offset: firstLine - 1, checked: map[*yaml.Node]bool{}, walked: map[walkKey]bool{}}
	if err := r.walk(root, clusterConfigShape, ""); err != nil {
		return err
	}
	if len(r.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(r.errs, func(a, b *StrictError) int { return cmp.Compare(a.Line, b.Line) })
	return r.errs
}

// strictReader walks a document in the order k0s's JSON decoder meets its
// fields.
type strictReader struct {
	offset int // added to a node's line
	errs   StrictErrors
	// legacy is set once the first unknown field met is a legacy one: k0s
	// then accepts the document, so later unknown fields are not errors.
	legacy  bool
	checked map[*yaml.Node]bool // mappings checked for duplicate keys
	walked  map[walkKey]bool    // values walked, once per shape (aliases)
	steps   int
}

type walkKey struct {
	node  *yaml.Node
	shape *shape
}

// entry is a key and its value in a mapping.
type entry struct{ key, value *yaml.Node }

// walk checks n, at path, against s: unknown fields where s knows an
// object's fields, duplicate keys everywhere.
func (r *strictReader) walk(n *yaml.Node, s *shape, path string) error {
	n = resolve(n)
	if n == nil || r.walked[walkKey{n, s}] {
		return nil
	}
	r.walked[walkKey{n, s}] = true
	if r.steps++; r.steps > maxStrictSteps {
		return errTooComplex
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := r.walk(c, s, path); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		var item *shape
		if s != nil {
			item = s.each
		}
		for i, c := range n.Content {
			if err := r.walk(c, item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		return r.walkMapping(n, s, path)
	}
	return nil
}

// walkMapping walks a mapping's fields sorted by name, as k0s meets them.
func (r *strictReader) walkMapping(n *yaml.Node, s *shape, path string) error {
	entries, err := r.entries(n, path)
	if err != nil {
		return err
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.key.Value, b.key.Value) })
	for _, e := range entries {
		var sub *shape
		if s != nil && s.fields != nil {
			var known bool
			if sub, known = s.field(e.key.Value); !known {
				r.unknown(e.key, join(path, e.key.Value))
			}
		}
		if err := r.walk(e.value, sub, join(path, e.key.Value)); err != nil {
			return err
		}
	}
	return nil
}

// unknown records an unknown field, unless k0s has stopped at a legacy one.
func (r *strictReader) unknown(key *yaml.Node, path string) {
	switch {
	case r.legacy:
	case legacyFields[key.Value]:
		r.legacy = true
	default:
		r.errs = append(r.errs, &StrictError{Line: key.Line + r.offset, Field: path, Detail: "unknown field"})
	}
}

// entries returns a mapping's keys and values with merge keys ("<<")
// expanded as yaml.v2 expands them: the merged mapping's entries in place
// of the merge key, a list of mappings from last to first. A key set a
// second time, written twice or written and merged, is an error (once per
// mapping, however often the mapping is walked); its first setting counts.
func (r *strictReader) entries(m *yaml.Node, path string) ([]entry, error) {
	report := !r.checked[m]
	r.checked[m] = true
	var out []entry
	first := map[string]*yaml.Node{}
	merging := map[*yaml.Node]bool{}
	var add func(m *yaml.Node) error
	add = func(m *yaml.Node) error {
		if merging[m] {
			return nil // a mapping merged into itself: the parser does not allow it
		}
		merging[m] = true
		defer delete(merging, m)
		for i := 0; i+1 < len(m.Content); i += 2 {
			if r.steps++; r.steps > maxStrictSteps {
				return errTooComplex
			}
			k, v := m.Content[i], m.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				for _, src := range mergeSources(v) {
					if err := add(src); err != nil {
						return err
					}
				}
				continue
			}
			id := k.ShortTag() + "\x00" + k.Value
			if f, dup := first[id]; dup {
				if report {
					r.errs = append(r.errs, &StrictError{Line: k.Line + r.offset, Field: join(path, k.Value),
						Detail: fmt.Sprintf("duplicate key (first at line %d)", f.Line+r.offset)})
				}
				continue
			}
			first[id] = k
			out = append(out, entry{k, v})
		}
		return nil
	}
	return out, add(m)
}

// mergeSources are the mappings a merge key's value merges, in the order
// yaml.v2 sets them.
func mergeSources(v *yaml.Node) []*yaml.Node {
	switch v = resolve(v); {
	case v == nil:
	case v.Kind == yaml.MappingNode:
		return []*yaml.Node{v}
	case v.Kind == yaml.SequenceNode:
		var out []*yaml.Node
		for _, item := range slices.Backward(v.Content) {
			if item = resolve(item); item != nil && item.Kind == yaml.MappingNode {
				out = append(out, item)
			}
		}
		return out
	}
	return nil
}

// lookup follows the mapping keys names from the document's root, exactly
// as written (k0sctl's field names are case-sensitive), and returns the
// value there, or nil.
func lookup(doc *yaml.Node, names []string) *yaml.Node {
	n := resolve(doc)
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = resolve(n.Content[0])
	}
	for _, name := range names {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				next = resolve(n.Content[i+1])
				break
			}
		}
		n = next
	}
	return n
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// join appends a key to a dotted path.
func join(path, key string) string {
	if key == "" || strings.ContainsFunc(key, func(r rune) bool { return r == '.' || !unicode.IsGraphic(r) || unicode.IsSpace(r) }) {
		key = strconv.Quote(key) // an empty key, or one that would read as more than one
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
