package servingcert

import (
	"bytes"
	"crypto/x509"
	"slices"
)

func sameCert(a, b *x509.Certificate) bool { return bytes.Equal(a.Raw, b.Raw) }

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	return slices.ContainsFunc(list, func(x *x509.Certificate) bool { return sameCert(x, c) })
}

func sameCerts(a, b []*x509.Certificate) bool { return slices.EqualFunc(a, b, sameCert) }

// sortNewestFirst orders CAs by NotBefore, newest first, then by their bytes.
func sortNewestFirst(list []*x509.Certificate) {
	slices.SortStableFunc(list, func(a, b *x509.Certificate) int {
		if c := b.NotBefore.Compare(a.NotBefore); c != 0 {
			return c
		}
		return bytes.Compare(a.Raw, b.Raw)
	})
}
