package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/policies"
)

// Mutator is the mutating admission handler: it runs the engine's mutating
// rules and answers with a JSON patch of what they changed, plus their
// findings as warnings or audit annotations. It never denies.
type Mutator struct {
	handler
}

var _ admission.Handler = (*Mutator)(nil)

// NewMutator returns a mutating handler.
func NewMutator(o Options) *Mutator {
	return &Mutator{handler: newHandler(o, "mutate")}
}

// Handle implements admission.Handler.
func (m *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	review, err := m.decoder.review(req)
	if err == nil && !m.engine.Mutates(review.Kind) {
		err = errNotReviewed(review.Kind.String())
	}
	var mutated runtime.Object
	var findings []policies.Finding
	if err == nil {
		mutated, findings = m.engine.Mutate(ctx, review, m.view)
		err = review.DecodeErr()
	}
	if err != nil {
		log.FromContext(ctx).Info("rejecting malformed admission request", "error", err.Error())
		m.count(req, "error")
		return errored(http.StatusBadRequest, err)
	}
	m.record(ctx, review, findings)
	resp := respond(findings)
	obj, _ := review.Objects()
	if patch, err := patchFor(obj, mutated); err != nil {
		return errored(http.StatusInternalServerError, err)
	} else if len(patch.Patches) > 0 {
		resp.Patches, resp.PatchType = patch.Patches, patch.PatchType
		m.count(req, "patched")
		return resp
	}
	m.count(req, "allowed")
	return resp
}

// patchFor is the JSON patch from obj to mutated. Both are encoded the same
// way, so the patch holds only what the rules changed, whatever the request's
// own encoding; its paths are valid in the request's object.
func patchFor(obj, mutated runtime.Object) (admission.Response, error) {
	if obj == nil || mutated == nil {
		return admission.Response{}, nil
	}
	before, err := json.Marshal(obj)
	if err != nil {
		return admission.Response{}, err
	}
	after, err := json.Marshal(mutated)
	if err != nil {
		return admission.Response{}, err
	}
	if bytes.Equal(before, after) {
		return admission.Response{}, nil
	}
	return admission.PatchResponseFromRaw(before, after), nil
}
