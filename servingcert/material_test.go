package servingcert

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestMaterialRoundTrip: what the Rotator writes reads back the same, and a
// part that does not parse is left out (so it is made again) and named.
func TestMaterialRoundTrip(t *testing.T) {
	o := testOptions(t)
	m := mustDecide(t, o, t0, Material{}, Material{}).next
	m.Published = t0
	secret := func(m Material) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: m.annotations()}, Data: m.data()}
	}
	got, err := decode(secret(m))
	if err != nil || !got.same(m) || got.CA.Key == nil || got.Serving.Key == nil {
		t.Fatalf("round trip: %v, same=%v", err, got.same(m))
	}

	other := mustDecide(t, o, t0, Material{}, Material{}).next
	for _, tt := range []struct {
		name    string
		mangle  func(s *corev1.Secret)
		check   func(m Material) bool
		problem string
	}{
		{"garbage ca.crt", func(s *corev1.Secret) { s.Data[KeyCABundle] = []byte("garbage") },
			func(m Material) bool { return m.CA == nil && len(m.Bundle) == 0 && m.Serving != nil }, KeyCABundle},
		{"ca.key of another CA", func(s *corev1.Secret) { s.Data[KeyCAKey] = other.CA.KeyPEM() },
			func(m Material) bool { return m.CA == nil && len(m.Bundle) == 1 }, KeyCAKey},
		{"tls.key of another pair", func(s *corev1.Secret) { s.Data[corev1.TLSPrivateKeyKey] = other.Serving.KeyPEM() },
			func(m Material) bool { return m.Serving == nil && m.CA != nil }, corev1.TLSCertKey},
		{"tls.key missing", func(s *corev1.Secret) { delete(s.Data, corev1.TLSPrivateKeyKey) },
			func(m Material) bool { return m.Serving == nil }, corev1.TLSPrivateKeyKey},
		{"published not a time", func(s *corev1.Secret) { s.Annotations[AnnotationPublished] = "yesterday" },
			func(m Material) bool { return m.Published.IsZero() && m.Serving != nil }, AnnotationPublished},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := secret(m)
			tt.mangle(s)
			got, err := decode(s)
			if err == nil || !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error %v, want one naming %s", err, tt.problem)
			}
			if !tt.check(got) {
				t.Errorf("decoded CA=%v bundle=%d serving=%v published=%s", got.CA != nil, len(got.Bundle), got.Serving != nil, got.Published.Format(time.RFC3339))
			}
		})
	}
}
