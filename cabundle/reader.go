package cabundle

import (
	"context"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/certs"
)

// sourceReader reads CA sources by name through an uncached reader, so every
// reconcile sees the Secret as it is now.
type sourceReader struct{ r client.Reader }

var _ certs.CAReader = sourceReader{}

// Secret implements certs.CAReader.
func (s sourceReader) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	if err := s.r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret); err != nil {
		return nil, err
	}
	return secret, nil
}

// Certificate implements certs.CAReader.
func (s sourceReader) Certificate(ctx context.Context, namespace, name string) (*cmapi.Certificate, error) {
	crt := &cmapi.Certificate{}
	if err := s.r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, crt); err != nil {
		return nil, err
	}
	return crt, nil
}
