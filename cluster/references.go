package cluster

import (
	"slices"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// ServiceReference is a Service the API server calls out to, as the object
// that makes it do so names it.
type ServiceReference struct {
	// Kind is the referrer's kind: APIService, ValidatingWebhookConfiguration,
	// MutatingWebhookConfiguration or CustomResourceDefinition.
	Kind string
	// Name is the APIService's, the webhook's (not its configuration's) or
	// the CRD's name.
	Name string
	// Referrer is the name of the object holding the reference: the
	// APIService, the webhook configuration or the CRD.
	Referrer string
	// Namespace and Service name the Service.
	Namespace, Service string
	// Port is the Service port; nil means 443.
	Port *int32
}

// Referrer kinds of ServiceReference.Kind.
const (
	KindAPIService                     = "APIService"
	KindValidatingWebhookConfiguration = "ValidatingWebhookConfiguration"
	KindMutatingWebhookConfiguration   = "MutatingWebhookConfiguration"
	KindCustomResourceDefinition       = "CustomResourceDefinition"
)

// appendServiceReferences appends the Services obj makes the API server call
// (an APIService's spec.service, each webhook's clientConfig.service, a CRD's
// conversion webhook's), those in namespace ns only unless ns is empty.
// Other objects have none.
func appendServiceReferences(out []ServiceReference, obj any, ns string) []ServiceReference {
	var referrer string
	add := func(kind, name string, namespace, service string, port *int32) {
		if ns == "" || namespace == ns {
			out = append(out, ServiceReference{Kind: kind, Name: name, Referrer: referrer, Namespace: namespace, Service: service, Port: port})
		}
	}
	if m, err := meta.Accessor(obj); err == nil {
		referrer = m.GetName()
	}
	switch o := obj.(type) {
	case *apiregv1.APIService:
		if s := o.Spec.Service; s != nil {
			add(KindAPIService, o.Name, s.Namespace, s.Name, s.Port)
		}
	case *admissionregv1.ValidatingWebhookConfiguration:
		for i := range o.Webhooks {
			if s := o.Webhooks[i].ClientConfig.Service; s != nil {
				add(KindValidatingWebhookConfiguration, o.Webhooks[i].Name, s.Namespace, s.Name, s.Port)
			}
		}
	case *admissionregv1.MutatingWebhookConfiguration:
		for i := range o.Webhooks {
			if s := o.Webhooks[i].ClientConfig.Service; s != nil {
				add(KindMutatingWebhookConfiguration, o.Webhooks[i].Name, s.Namespace, s.Name, s.Port)
			}
		}
	case *apiextensionsv1.CustomResourceDefinition:
		if cv := o.Spec.Conversion; cv != nil && cv.Webhook != nil && cv.Webhook.ClientConfig != nil && cv.Webhook.ClientConfig.Service != nil {
			s := cv.Webhook.ClientConfig.Service
			add(KindCustomResourceDefinition, o.Name, s.Namespace, s.Name, s.Port)
		}
	}
	return out
}

// byServiceNamespace indexes an APIService, webhook configuration or CRD by
// the namespaces of the Services it references.
func byServiceNamespace(obj any) ([]string, error) {
	var out []string
	for _, r := range appendServiceReferences(nil, obj, "") {
		if !slices.Contains(out, r.Namespace) {
			out = append(out, r.Namespace)
		}
	}
	return out, nil
}
