package netpol

import (
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// namespaceNameLabel is set by the API server on every namespace to its name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// labelSet is a read-only view of labels. For a namespace, ns is its name and
// stands in for the kubernetes.io/metadata.name label.
type labelSet struct {
	m  map[string]string
	ns string
	// cilium, when set, is the pod whose labels these are as Cilium's
	// selectors see them (ciliumLabels); m and ns are then unused.
	cilium *Pod
}

func (l labelSet) get(key string) (string, bool) {
	if l.cilium != nil {
		return l.cilium.ciliumLabel(key)
	}
	if l.ns != "" && key == namespaceNameLabel {
		return l.ns, true
	}
	v, ok := l.m[key]
	return v, ok
}

// selectorOp is a compiled label selector operator.
type selectorOp uint8

const (
	opEquals selectorOp = iota
	opIn
	opNotIn
	opExists
	opDoesNotExist
)

// requirement is one compiled matchLabels entry or matchExpression.
type requirement struct {
	key    string
	op     selectorOp
	value  string   // opEquals
	values []string // opIn, opNotIn
}

func (r *requirement) matches(l labelSet) bool {
	v, ok := l.get(r.key)
	switch r.op {
	case opEquals:
		return ok && v == r.value
	case opIn:
		return ok && slices.Contains(r.values, v)
	case opNotIn:
		return !ok || !slices.Contains(r.values, v)
	case opExists:
		return ok
	default: // opDoesNotExist
		return !ok
	}
}

// selector is a compiled metav1.LabelSelector: all requirements must hold; no
// requirement matches everything; an invalid selector matches nothing.
type selector struct {
	reqs    []requirement
	invalid bool
}

func (s *selector) matches(l labelSet) bool {
	if s.invalid {
		return false
	}
	for i := range s.reqs {
		if !s.reqs[i].matches(l) {
			return false
		}
	}
	return true
}

// compileSelector compiles ls (nil is the empty selector) at field path f and
// reports its problems through r; any problem makes the selector match
// nothing, as metav1.LabelSelectorAsSelector would fail on it. Key and value
// syntax is not checked: it does not change what a selector matches.
func compileSelector(ls *metav1.LabelSelector, f path, r reporter) selector {
	var s selector
	if ls == nil {
		return s
	}
	s.reqs = make([]requirement, 0, len(ls.MatchLabels)+len(ls.MatchExpressions))
	for k, v := range ls.MatchLabels {
		s.reqs = append(s.reqs, requirement{key: k, op: opEquals, value: v})
	}
	// Map order is random: sort for deterministic evaluation order.
	slices.SortFunc(s.reqs, func(a, b requirement) int { return strings.Compare(a.key, b.key) })
	for i, e := range ls.MatchExpressions {
		req, detail := compileRequirement(e)
		if detail != "" {
			ef := f.at("matchExpressions", i)
			r.add(ef, detail+"; the selector matches nothing")
			s.invalid = true
			continue
		}
		s.reqs = append(s.reqs, req)
	}
	return s
}

// compileRequirement compiles one expression, or returns why it is invalid.
func compileRequirement(e metav1.LabelSelectorRequirement) (requirement, string) {
	r := requirement{key: e.Key}
	switch e.Operator {
	case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
		if len(e.Values) == 0 {
			return r, "operator " + string(e.Operator) + " needs at least one value"
		}
		r.op = opIn
		if e.Operator == metav1.LabelSelectorOpNotIn {
			r.op = opNotIn
		}
		r.values = slices.Clone(e.Values)
	case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
		if len(e.Values) != 0 {
			return r, "operator " + string(e.Operator) + " takes no values"
		}
		r.op = opExists
		if e.Operator == metav1.LabelSelectorOpDoesNotExist {
			r.op = opDoesNotExist
		}
	default:
		return r, "unknown operator " + strconv.Quote(string(e.Operator))
	}
	return r, ""
}
