package certs

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"strings"
	"unicode"
)

// maxSubjectRunes caps a subject in messages; a longer one is cut, ending in
// "...".
const maxSubjectRunes = 64

// shortFingerprint is how many hex digits of a fingerprint messages show.
const shortFingerprint = 8

// Describe names a certificate for messages, so that two CAs with the same
// subject (a stale and a fresh one, both "keda-ca") are told apart: its
// subject, quoted as crypto/x509/pkix renders it, and the first 8 hex digits
// of its SHA-256 fingerprint, e.g. `"CN=keda-ca,O=acme" (sha256 1a2b3c4d)`.
// The subject is written by whoever made the certificate and is shown on
// terminals: non-printable characters are dropped and it is cut to 64
// characters.
func Describe(cert *x509.Certificate) string {
	return subject(cert.Subject) + " (sha256 " + Fingerprint(cert)[:shortFingerprint] + ")"
}

// DescribeIssuer names the CA that issued cert: Describe of the first of
// candidates (a chain's other certificates, a Secret's ca.crt) whose key
// signed it, else cert's issuer subject with the first 8 hex digits of its
// authority key ID when it has one, e.g. `"CN=keda-ca" (key id 5e6f7a8b)`.
func DescribeIssuer(cert *x509.Certificate, candidates ...*x509.Certificate) string {
	if issuer := Issuer(cert, candidates...); issuer != nil {
		return Describe(issuer)
	}
	name := subject(cert.Issuer)
	if id := hex.EncodeToString(cert.AuthorityKeyId); len(id) >= shortFingerprint {
		name += " (key id " + id[:shortFingerprint] + ")"
	}
	return name
}

// Issuer returns the first of candidates that issued cert: its subject is
// cert's issuer and its key signed cert. Nil when none did.
func Issuer(cert *x509.Certificate, candidates ...*x509.Certificate) *x509.Certificate {
	for _, c := range candidates {
		if bytes.Equal(cert.RawIssuer, c.RawSubject) && cert.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}

// subject renders a subject or issuer name, quoted and safe to print.
func subject(n pkix.Name) string {
	s := n.String()
	if s == "" {
		return "(no subject)"
	}
	printable := []rune(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) { // invalid UTF-8 comes as U+FFFD, which is printable
			return r
		}
		return -1
	}, s))
	if len(printable) > maxSubjectRunes {
		printable = append(printable[:maxSubjectRunes-3], '.', '.', '.')
	}
	return `"` + string(printable) + `"`
}
