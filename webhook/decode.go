package webhook

import (
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"apiservice-guard.io/apiservice-guard/policies"
)

// decoder turns admission requests into reviews for the engine.
type decoder struct {
	codecs runtime.Decoder
}

func newDecoder(scheme *runtime.Scheme) *decoder {
	return &decoder{codecs: serializer.NewCodecFactory(scheme).UniversalDeserializer()}
}

// review builds the engine's Review from a request. Every error is the
// client's fault and becomes a 400.
func (d *decoder) review(req admission.Request) (*policies.Review, error) {
	kind := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
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
	var err error
	if r.Object, err = d.object(req.Object, kind, "object", r.Operation != policies.Delete); err != nil {
		return nil, err
	}
	if r.OldObject, err = d.object(req.OldObject, kind, "oldObject", r.Operation != policies.Create); err != nil {
		return nil, err
	}
	if r.Name == "" {
		r.Name = nameOf(r.Object, r.OldObject)
	}
	return r, nil
}

// object decodes one of the request's objects and checks it is of the kind the
// request names.
func (d *decoder) object(raw runtime.RawExtension, kind schema.GroupKind, field string, required bool) (runtime.Object, error) {
	if len(raw.Raw) == 0 {
		if required {
			return nil, fmt.Errorf("request has no %s", field)
		}
		return nil, nil
	}
	obj, gvk, err := d.codecs.Decode(raw.Raw, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", field, err)
	}
	if gvk.GroupKind() != kind {
		return nil, fmt.Errorf("%s is a %s, but the request is for %s", field, gvk.GroupKind(), kind)
	}
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
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
