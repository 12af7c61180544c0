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

// MaxBundleCertificates is the most certificates ParseBundle parses from
// one bundle: a CA bundle holds a few (a public trust store about 150);
// thousands are an attempt on the guard's memory, refused with an error
// rather than parsed.
const MaxBundleCertificates = 512

// ParseBundle parses PEM-encoded certificates, as found in an APIService
// caBundle or a Secret's ca.crt. Text outside PEM blocks (comments, OpenSSL's
// human-readable dump) is ignored, as the aggregator's x509.CertPool ignores
// it. It is stricter than CertPool where CertPool silently skips something
// that was meant to be a certificate: a block that does not decode, a
// CERTIFICATE that does not parse, a block of another type (a private key is
// called out) are errors, so a bundle that only half works is caught.
func ParseBundle(data []byte) ([]*x509.Certificate, error) {
	rest := bytes.TrimSpace(data)
	if len(rest) == 0 {
		return nil, ErrEmpty
	}
	if !bytes.Contains(rest, pemBegin) {
		return nil, errors.New("not PEM: no -----BEGIN CERTIFICATE----- block found")
	}
	var certs []*x509.Certificate
	for i := 0; ; i++ {
		start := bytes.Index(rest, pemBegin)
		if start < 0 {
			break // only text left
		}
		if i == MaxBundleCertificates {
			return nil, fmt.Errorf("more than %d PEM blocks: not parsed (a CA bundle holds a few certificates)", MaxBundleCertificates)
		}
		rest = rest[start:]
		// pem.Decode silently skips a block it cannot decode (bad base64, no
		// END line) and returns the next good one, so decode exactly one
		// block: up to the next BEGIN line.
		end := len(rest)
		if j := bytes.Index(rest[len(pemBegin):], pemBegin); j >= 0 {
			end = len(pemBegin) + j
		}
		block, _ := pem.Decode(rest[:end])
		if block == nil {
			return nil, fmt.Errorf("block %d is not valid PEM: bad base64 or no matching -----END line", i+1)
		}
		rest = rest[end:]
		cert, err := certificateFromBlock(block, i+1)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// certificateFromBlock parses the n-th block, which must be a CERTIFICATE.
func certificateFromBlock(block *pem.Block, n int) (*x509.Certificate, error) {
	if block.Type != "CERTIFICATE" {
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("block %d is a %s: a CA bundle must hold only certificates (remove the key, it is now exposed)", n, block.Type)
		}
		return nil, fmt.Errorf("block %d is a %q block, want CERTIFICATE", n, block.Type)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("block %d is not a valid certificate: %w", n, err)
	}
	return cert, nil
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
