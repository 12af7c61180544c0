package servingcert

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"apiservice-guard.io/apiservice-guard/certs"
)

// Keys of the Secret, and its annotation.
const (
	// KeyCABundle holds the caBundle: the active CA first, then earlier
	// CAs until they expire.
	KeyCABundle = "ca.crt"
	// KeyCAKey holds the active CA's private key.
	KeyCAKey = "ca.key"
	// AnnotationPublished is when every webhook configuration was first
	// seen trusting the active CA (RFC 3339); absent until then.
	AnnotationPublished = "apiservice-guard.io/ca-published"
	// AnnotationRotate asks for a rotation now, set by an admin: a value
	// starting with "ca" renews the CA (and then the serving certificate),
	// one starting with "serving" the serving certificate. Each distinct
	// value is acted on once, e.g.
	//   kubectl annotate secret NAME apiservice-guard.io/rotate=ca-$(date +%s) --overwrite
	AnnotationRotate = "apiservice-guard.io/rotate"
	// AnnotationRotated is the rotate value last acted on, set by the guard.
	AnnotationRotated = "apiservice-guard.io/rotated"
)

// maxBundle bounds the CAs kept in the caBundle, newest first: rotations
// forced faster than CAs expire must not grow it without end.
const maxBundle = 8

// Material is what the Secret holds.
type Material struct {
	// CA is the active CA, with its key.
	CA *certs.KeyPair
	// Bundle is the caBundle, CA first.
	Bundle []*x509.Certificate
	// Serving is the serving certificate and its key.
	Serving *certs.KeyPair
	// Published is when every webhook configuration was first seen
	// trusting CA; zero until then.
	Published time.Time
	// Rotate is the admin's rotation request (AnnotationRotate); Rotated
	// the last one acted on.
	Rotate, Rotated string
}

// decode reads a Secret's material; a part that does not parse is left
// out (and named in the error), so that it is made again.
func decode(s *corev1.Secret) (Material, error) {
	var m Material
	if s == nil {
		return m, nil
	}
	var problems []error
	if b := s.Data[KeyCABundle]; len(b) > 0 {
		bundle, err := certs.ParseBundle(b)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", KeyCABundle, err))
		}
		m.Bundle = bundle
	}
	if len(m.Bundle) > 0 && len(s.Data[KeyCAKey]) > 0 {
		ca, err := certs.ParseKeyPair(certs.EncodePEM(m.Bundle[0]), s.Data[KeyCAKey])
		if err != nil || !ca.Cert.IsCA {
			problems = append(problems, fmt.Errorf("%s does not hold the key of the first CA of %s: %v", KeyCAKey, KeyCABundle, err))
		} else {
			m.CA = ca
		}
	}
	if len(s.Data[corev1.TLSCertKey]) > 0 {
		pair, err := certs.ParseKeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("%s: %w", corev1.TLSCertKey, err))
		case pair.Key == nil:
			problems = append(problems, fmt.Errorf("%s is missing", corev1.TLSPrivateKeyKey))
		default:
			m.Serving = pair
		}
	}
	m.Rotate, m.Rotated = s.Annotations[AnnotationRotate], s.Annotations[AnnotationRotated]
	if v, ok := s.Annotations[AnnotationPublished]; ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			problems = append(problems, fmt.Errorf("annotation %s: %w", AnnotationPublished, err))
		}
		m.Published = t
	}
	return m, errors.Join(problems...)
}

// data is the Secret's data for m.
func (m Material) data() map[string][]byte {
	d := map[string][]byte{KeyCABundle: certs.EncodePEM(m.Bundle...)}
	if m.CA != nil {
		d[KeyCAKey] = m.CA.KeyPEM()
	}
	if m.Serving != nil {
		d[corev1.TLSCertKey] = m.Serving.CertPEM()
		d[corev1.TLSPrivateKeyKey] = m.Serving.KeyPEM()
	}
	return d
}

// annotations are the Secret's annotations the guard writes for m (the
// rotate request is the admin's).
func (m Material) annotations() map[string]string {
	a := map[string]string{}
	if !m.Published.IsZero() {
		a[AnnotationPublished] = m.Published.UTC().Format(time.RFC3339)
	}
	if m.Rotated != "" {
		a[AnnotationRotated] = m.Rotated
	}
	if len(a) == 0 {
		return nil
	}
	return a
}

// same reports whether m and o hold the same certificates and publication.
// Keys are compared through their certificates.
func (m Material) same(o Material) bool {
	cert := func(kp *certs.KeyPair) []byte {
		if kp == nil {
			return nil
		}
		return kp.Cert.Raw
	}
	return bytes.Equal(cert(m.CA), cert(o.CA)) && bytes.Equal(cert(m.Serving), cert(o.Serving)) &&
		bytes.Equal(certs.EncodePEM(m.Bundle...), certs.EncodePEM(o.Bundle...)) &&
		m.Published.Equal(o.Published) && m.Rotated == o.Rotated
}
