package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"
)

// clockSkew is how far before "now" issued certificates become valid, to
// tolerate clocks that differ slightly between nodes.
const clockSkew = time.Minute

// Sentinel errors for CA handling.
var (
	// ErrNotCA reports a certificate that is not a CA certificate.
	ErrNotCA = errors.New("certificate is not a CA")
	// ErrKeyMismatch reports a private key that does not match a certificate.
	ErrKeyMismatch = errors.New("private key does not match certificate")
)

// CA is the cluster certificate authority.
type CA struct {
	// Cert is the parsed CA certificate.
	Cert *x509.Certificate
	// CertPEM is the PEM encoding of Cert.
	CertPEM []byte
	key     crypto.Signer
}

// NewCA creates a self-signed cluster CA with an ECDSA P-256 key, valid from
// one minute before now until now+ttl. It returns the CA and its private key
// as PKCS#8 PEM, which the caller must store sealed.
func NewCA(commonName string, now time.Time, ttl time.Duration) (ca *CA, keyPEM []byte, err error) {
	if commonName == "" {
		return nil, nil, errors.New("new CA: common name is empty")
	}
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("new CA: ttl %v must be positive", ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("new CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA: parse certificate: %w", err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA: %w", err)
	}
	return &CA{Cert: cert, CertPEM: encodePEM(pemCertificate, der), key: key}, keyPEM, nil
}

// LoadCA reconstructs a CA from its certificate and private key PEM. It
// checks that the certificate is a CA and that the key matches it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertificate(certPEM, "CA certificate")
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("load CA: %w", ErrNotCA)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA: %w", ErrKeyMismatch)
	}
	return &CA{Cert: cert, CertPEM: encodePEM(pemCertificate, cert.Raw), key: key}, nil
}

// Fingerprint returns the CA certificate's fingerprint in the form
// "sha256:<hex>".
func (ca *CA) Fingerprint() string {
	return Fingerprint(ca.Cert.Raw)
}
