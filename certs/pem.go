package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ErrEmpty is returned by ParseBundle for empty input.
var ErrEmpty = errors.New("empty: no PEM data")

// ParseBundle parses PEM-encoded certificates, as found in an APIService
// caBundle or a Secret's ca.crt. It is stricter than x509.CertPool, which
// silently skips what it cannot read: anything that is not a CERTIFICATE block,
// a block that does not parse, or bytes outside PEM blocks are errors, so that
// a bundle which only half works is caught.
func ParseBundle(data []byte) ([]*x509.Certificate, error) {
	rest := bytes.TrimSpace(data)
	if len(rest) == 0 {
		return nil, ErrEmpty
	}
	if !bytes.Contains(rest, pemBegin) {
		return nil, errors.New("not PEM: no -----BEGIN CERTIFICATE----- block found")
	}
	var certs []*x509.Certificate
	for i := 0; len(rest) > 0; i++ {
		if !bytes.HasPrefix(rest, pemBegin) {
			if i == 0 {
				return nil, fmt.Errorf("not PEM: %d bytes before the first block that are not a PEM block", bytes.Index(rest, pemBegin))
			}
			return nil, fmt.Errorf("not PEM after block %d: %d bytes that are not a PEM block", i, len(rest))
		}
		// pem.Decode silently skips what it cannot decode (a block with bad
		// base64, text between blocks) and returns the next good block, so
		// decode exactly one block: up to the next BEGIN line.
		end := len(rest)
		if j := bytes.Index(rest[len(pemBegin):], pemBegin); j >= 0 {
			end = len(pemBegin) + j
		}
		block, tail := pem.Decode(rest[:end])
		if block == nil {
			return nil, fmt.Errorf("block %d is not valid PEM: bad base64 or no matching -----END line", i+1)
		}
		if tail = bytes.TrimSpace(tail); len(tail) > 0 {
			return nil, fmt.Errorf("not PEM after block %d: %d bytes that are not a PEM block", i+1, len(tail))
		}
		rest = bytes.TrimSpace(rest[end:])
		if block.Type != "CERTIFICATE" {
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("block %d is a %s: a CA bundle must hold only certificates (remove the key, it is now exposed)", i+1, block.Type)
			}
			return nil, fmt.Errorf("block %d is a %q block, want CERTIFICATE", i+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("block %d is not a valid certificate: %w", i+1, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// pemBegin starts every PEM block.
var pemBegin = []byte("-----BEGIN ")

// Fingerprint returns the hex SHA-256 of a certificate's DER bytes.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// EncodePEM encodes certificates as a PEM bundle.
func EncodePEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// Describe names a certificate for messages: its subject CN (or full subject)
// and the first 12 hex digits of its fingerprint.
func Describe(cert *x509.Certificate) string {
	name := cert.Subject.CommonName
	if name == "" {
		name = cert.Subject.String()
	}
	return fmt.Sprintf("%q (sha256 %s)", name, Fingerprint(cert)[:12])
}
