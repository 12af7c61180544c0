package webhook

import (
	"bytes"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/policies"
)

// decoder turns admission requests into reviews for the engine.
type decoder struct {
	scheme *runtime.Scheme
}

func newDecoder(scheme *runtime.Scheme) *decoder {
	return &decoder{scheme: scheme}
}

// review builds the engine's Review from a request, its objects decoded on
// first use. Every error, here or from the deferred decoding (the Review's
// DecodeErr), is the client's fault and becomes a 400.
func (d *decoder) review(req admission.Request) (*policies.Review, error) {
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	kind := gvk.GroupKind()
	if kind.Kind == "" {
		return nil, errors.New("request has no kind")
	}
	r := &policies.Review{
		Kind:      kind,
		Namespace: req.Namespace,
		Name:      req.Name,
		User:      req.UserInfo.Username,
		DryRun:    req.DryRun != nil && *req.DryRun,
	}
	// The API server writes the options it sends; without the key there is
	// no field manager to decode.
	if bytes.Contains(req.Options.Raw, []byte(`"fieldManager"`)) {
		// CreateOptions, UpdateOptions and PatchOptions all carry fieldManager;
		// PatchOptions has every field of the others.
		var opts metav1.PatchOptions
		if err := decodeObject(req.Options.Raw, &opts); err != nil {
			return nil, fmt.Errorf("decoding options: %w", err)
		}
		r.FieldManager = opts.FieldManager
	}
	switch req.Operation {
	case admissionv1.Create:
		r.Operation = policies.Create
	case admissionv1.Update:
		r.Operation = policies.Update
	case admissionv1.Delete:
		r.Operation = policies.Delete
	default:
		return nil, fmt.Errorf("operation %q is not reviewed", req.Operation)
	}
	for _, o := range []struct {
		raw      runtime.RawExtension
		field    string
		required bool
	}{
		{req.Object, "object", r.Operation != policies.Delete},
		{req.OldObject, "oldObject", r.Operation != policies.Create},
	} {
		if o.required && len(o.raw.Raw) == 0 {
			return nil, fmt.Errorf("request has no %s", o.field)
		}
	}
	if !d.scheme.Recognizes(gvk) {
		return nil, errNotReviewed(kind.String())
	}
	// The API server has validated the object before a validating webhook
	// sees it. Decoding is most of a review's cost, and many reviews (a
	// NetworkPolicy written where nothing protected runs) need only the
	// request's namespace and name: decode when a rule first asks.
	r.Validated = true
	// The closure keeps the two objects, not the whole request: what it
	// captures goes to the heap with it.
	object, oldObject := req.Object, req.OldObject
	r.DecodeLazily(func() (obj, old runtime.Object, err error) {
		if obj, err = d.object(object, gvk, "object"); err != nil {
			return nil, nil, err
		}
		if old, err = d.object(oldObject, gvk, "oldObject"); err != nil {
			return nil, nil, err
		}
		return obj, old, nil
	})
	if r.Name == "" {
		// A name is needed for any finding; only the object has it.
		obj, old := r.Objects()
		if err := r.DecodeErr(); err != nil {
			return nil, err
		}
		r.Name = nameOf(obj, old)
	}
	return r, nil
}

// object decodes one of the request's objects into the Go type of the kind
// the request names, in a single JSON pass (field names case-sensitive, as
// the API machinery decodes), and checks the object says it is of that kind.
func (d *decoder) object(raw runtime.RawExtension, gvk schema.GroupVersionKind, field string) (runtime.Object, error) {
	if len(raw.Raw) == 0 {
		return nil, nil
	}
	obj, err := d.scheme.New(gvk)
	if err != nil {
		return nil, errNotReviewed(gvk.GroupKind().String())
	}
	if err := decodeObject(raw.Raw, obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", field, err)
	}
	got := obj.GetObjectKind().GroupVersionKind()
	if got.Kind == "" || got.Version == "" {
		return nil, fmt.Errorf("decoding %s: apiVersion and kind are required", field)
	}
	if got.GroupKind() != gvk.GroupKind() {
		return nil, fmt.Errorf("%s is a %s, but the request is for %s", field, got.GroupKind(), gvk.GroupKind())
	}
	return obj, nil
}

func nameOf(objs ...runtime.Object) string {
	for _, o := range objs {
		if m, ok := o.(interface{ GetName() string }); ok && m.GetName() != "" {
			return m.GetName()
		}
	}
	return ""
}
