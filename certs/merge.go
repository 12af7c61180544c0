package certs

import (
	"bytes"
	"crypto/x509"
	"time"
)

// MergeCA returns the caBundle to store so that it trusts ca, and whether
// that differs from bundle. It writes what cert-manager's cainjector (1.21+,
// which always merges) writes, so the two never fight over the field:
//
//   - a bundle that already holds every certificate of ca is left exactly as
//     it is, extra certificates included. In particular cainjector's own
//     writes are never changed;
//   - otherwise the result is the bundle's certificates that are still valid
//     at now, without duplicates and in their order, then those of ca not
//     already there, PEM-encoded;
//   - a bundle that does not parse is replaced by ca.
func MergeCA(bundle []byte, ca []*x509.Certificate, now time.Time) ([]byte, bool) {
	existing, err := ParseBundle(bundle)
	if err != nil {
		existing = nil // unparsable or empty: replaced, as cainjector does
	} else if holdsAll(existing, ca) {
		return bundle, false
	}
	seen := map[string]bool{}
	var merged []*x509.Certificate
	for _, c := range append(existing, ca...) {
		if seen[string(c.Raw)] || now.After(c.NotAfter) {
			continue
		}
		seen[string(c.Raw)] = true
		merged = append(merged, c)
	}
	out := EncodePEM(merged...)
	return out, !bytes.Equal(out, bundle)
}

// holdsAll reports whether every certificate of want is in have.
func holdsAll(have, want []*x509.Certificate) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if bytes.Equal(h.Raw, w.Raw) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
