package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// backdate is how long before its issue a certificate is valid from, for
// clocks a little behind the issuer's.
const backdate = time.Minute

// NewCA creates a self-signed CA valid from now for validity.
func NewCA(commonName string, validity time.Duration) (*KeyPair, error) {
	now := time.Now()
	return NewCAValid(commonName, now.Add(-backdate), now.Add(validity))
}

// NewCAValid creates a self-signed CA valid from notBefore to notAfter.
func NewCAValid(commonName string, notBefore, notAfter time.Time) (*KeyPair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
	}
	return sign(tmpl, nil)
}

// IssueServing issues a serving certificate for dnsNames and ips signed by
// kp, valid from now for validity.
func (kp *KeyPair) IssueServing(dnsNames []string, ips []net.IP, validity time.Duration) (*KeyPair, error) {
	now := time.Now()
	return kp.IssueServingValid(dnsNames, ips, now.Add(-backdate), now.Add(validity))
}

// IssueServingValid issues a serving certificate for dnsNames and ips signed
// by kp, valid from notBefore to notAfter.
func (kp *KeyPair) IssueServingValid(dnsNames []string, ips []net.IP, notBefore, notAfter time.Time) (*KeyPair, error) {
	cn := "serving"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
	}
	return sign(tmpl, kp)
}

// sign creates a key and a certificate from tmpl (its validity set),
// signed by parent or, when parent is nil, self-signed.
func sign(tmpl *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial: %w", err)
	}
	tmpl.SerialNumber = serial
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// CertPEM returns the certificate as PEM.
func (kp *KeyPair) CertPEM() []byte { return EncodePEM(kp.Cert) }

// KeyPEM returns the private key as PKCS#8 PEM.
func (kp *KeyPair) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		// Only ECDSA keys made by sign reach here; they always marshal.
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TLSCertificate returns the pair for a tls.Config.
func (kp *KeyPair) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(kp.CertPEM(), kp.KeyPEM())
}

// WriteFiles writes the pair as dir/tls.crt and dir/tls.key (mode 0600),
// atomically per file so a watcher never reads half a file.
func (kp *KeyPair) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The key goes first: a watcher reacts to the certificate.
	if err := writeAtomic(filepath.Join(dir, "tls.key"), kp.KeyPEM()); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "tls.crt"), kp.CertPEM())
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ParseKeyPair reads a PEM certificate (the first of a chain) and, when
// keyPEM is not empty, its PKCS#8, PKCS#1 or SEC1 private key.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	chain, err := ParseBundle(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	kp := &KeyPair{Cert: chain[0]}
	if len(keyPEM) == 0 {
		return kp, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key: %T is not a signing key", pair.PrivateKey)
	}
	kp.Key = signer
	return kp, nil
}
