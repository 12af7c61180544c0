package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
)

// CAKey is the Secret key cert-manager writes the issuing CA to.
const CAKey = "ca.crt"

// CAReader reads the objects a CA source names, by name.
type CAReader interface {
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	Certificate(ctx context.Context, namespace, name string) (*cmapi.Certificate, error)
}

// CASource is where an object's cert-manager annotations say its caBundle
// comes from: a Certificate (cert-manager.io/inject-ca-from) or a Secret
// (cert-manager.io/inject-ca-from-secret).
type CASource struct {
	// Annotation is the annotation that names the source.
	Annotation string
	// Namespace and Name name the Certificate or Secret.
	Namespace, Name string
}

// FromSecret reports whether the source names a Secret directly.
func (s CASource) FromSecret() bool { return s.Annotation == cmapi.WantInjectFromSecretAnnotation }

// String names the source for messages: "Certificate keda/keda-cert".
func (s CASource) String() string {
	if s.FromSecret() {
		return "Secret " + s.Namespace + "/" + s.Name
	}
	return "Certificate " + s.Namespace + "/" + s.Name
}

// CASourceOf returns the CA source that annotations declare. ok is false when
// they declare none. A malformed value is an error that quotes it. When both
// annotations are set, inject-ca-from-secret wins, as in cert-manager's
// cainjector, which asks its Secret source before its Certificate source.
func CASourceOf(annotations map[string]string) (src CASource, ok bool, err error) {
	for _, key := range []string{cmapi.WantInjectFromSecretAnnotation, cmapi.WantInjectAnnotation} {
		value, set := annotations[key]
		if !set {
			continue
		}
		src = CASource{Annotation: key}
		ns, name, found := strings.Cut(value, "/")
		switch {
		case !found:
			return src, true, fmt.Errorf("annotation %s: %q is not <namespace>/<name>", key, value)
		case ns == "" || name == "":
			return src, true, fmt.Errorf("annotation %s: %q has an empty namespace or name", key, value)
		case len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0:
			return src, true, fmt.Errorf("annotation %s: %q is not a valid <namespace>/<name>", key, value)
		}
		src.Namespace, src.Name = ns, name
		return src, true, nil
	}
	return CASource{}, false, nil
}

// CA is the CA a source holds.
type CA struct {
	// Certs are the certificates of the Secret's ca.crt, in order.
	Certs []*x509.Certificate
	// Secret is the Secret they were read from, "<namespace>/<name>".
	Secret string
}

// ErrNoCA is wrapped by every reason a source yields no CA. The error's
// message is only the reason, which names the object at fault.
var ErrNoCA = errors.New("no CA")

// noCAError is a reason for ErrNoCA.
type noCAError struct{ msg string }

func (e *noCAError) Error() string { return e.msg }
func (e *noCAError) Unwrap() error { return ErrNoCA }

func noCAf(format string, args ...any) error {
	return &noCAError{msg: fmt.Sprintf(format, args...)}
}

// ReadCA reads the CA of src under cainjector's rules. A Certificate's CA is
// the ca.crt of its spec.secretName Secret, which must carry the
// cert-manager.io/certificate-name annotation with the Certificate's name. A
// Secret named directly must be annotated cert-manager.io/allow-direct-injection:
// "true". ca.crt must be PEM certificates only. Every error wraps ErrNoCA.
func ReadCA(ctx context.Context, r CAReader, src CASource) (*CA, error) {
	secretNS, secretName := src.Namespace, src.Name
	if !src.FromSecret() {
		crt, err := r.Certificate(ctx, src.Namespace, src.Name)
		if err != nil {
			return nil, noCA(src.String(), err)
		}
		if crt.Spec.SecretName == "" {
			return nil, noCAf("%s has no spec.secretName", src)
		}
		secretName = crt.Spec.SecretName
	}
	secret, err := r.Secret(ctx, secretNS, secretName)
	if err != nil {
		return nil, noCA("Secret "+secretNS+"/"+secretName, err)
	}
	where := "Secret " + secretNS + "/" + secretName
	switch {
	case src.FromSecret() && secret.Annotations[cmapi.AllowsInjectionFromSecretAnnotation] != "true":
		return nil, noCAf("%s is not annotated %s: \"true\"", where, cmapi.AllowsInjectionFromSecretAnnotation)
	case !src.FromSecret() && secret.Annotations[cmapi.CertificateNameKey] != src.Name:
		return nil, noCAf("%s is not annotated %s: %s, so it is not %s's", where, cmapi.CertificateNameKey, src.Name, src)
	}
	data, found := secret.Data[CAKey]
	if !found || len(data) == 0 {
		return nil, noCAf("%s has no %s", where, CAKey)
	}
	certs, err := ParseBundle(data)
	if err != nil {
		return nil, noCAf("%s %s: %v", where, CAKey, err)
	}
	return &CA{Certs: certs, Secret: secretNS + "/" + secretName}, nil
}

// noCA words a failed read: not found, forbidden, or another error.
func noCA(what string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return noCAf("%s not found", what)
	case apierrors.IsForbidden(err):
		return noCAf("reading %s is forbidden: %v", what, err)
	default:
		return noCAf("reading %s: %v", what, err)
	}
}
