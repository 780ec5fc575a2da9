package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// PEM block types used by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemECKey       = "EC PRIVATE KEY"
	pemRSAKey      = "RSA PRIVATE KEY"
	pemCSR         = "CERTIFICATE REQUEST"
)

// ErrInvalidPEM reports PEM input that is missing, of the wrong type or
// cannot be parsed.
var ErrInvalidPEM = errors.New("invalid PEM data")

// decodeBlock returns the DER bytes of the first PEM block of one of the
// given types.
func decodeBlock(data []byte, what string, types ...string) ([]byte, string, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, "", fmt.Errorf("%w: no %s PEM block found", ErrInvalidPEM, what)
		}
		for _, t := range types {
			if block.Type == t {
				return block.Bytes, t, nil
			}
		}
	}
}

// parseCertificates parses every CERTIFICATE block in data.
func parseCertificates(data []byte, what string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", what, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block in %s", ErrInvalidPEM, what)
	}
	return certs, nil
}

// parseCertificate parses the first CERTIFICATE block in data.
func parseCertificate(data []byte, what string) (*x509.Certificate, error) {
	certs, err := parseCertificates(data, what)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// parsePrivateKey parses a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	der, typ, err := decodeBlock(data, "private key", pemPrivateKey, pemECKey, pemRSAKey)
	if err != nil {
		return nil, err
	}
	var key any
	switch typ {
	case pemPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(der)
	case pemECKey:
		key, err = x509.ParseECPrivateKey(der)
	case pemRSAKey:
		key, err = x509.ParsePKCS1PrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
		return k.(crypto.Signer), nil
	default:
		return nil, fmt.Errorf("%w: unsupported private key type %T", ErrInvalidPEM, key)
	}
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func marshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return encodePEM(pemPrivateKey, der), nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// ParseCertificatePEM parses the first certificate of a PEM block.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	return parseCertificate(data, "certificate")
}
