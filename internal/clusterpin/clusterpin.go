// Package clusterpin is how a client trusts a Portcullis cluster by the
// fingerprint of its CA alone (a join credential carries one): fingerprint
// formatting and parsing, and the pinned-chain check of a server's
// certificates. Both planes use it; it depends on neither.
package clusterpin

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors callers branch on.
var (
	// ErrInvalid reports a fingerprint string that cannot be parsed.
	ErrInvalid = errors.New("invalid certificate fingerprint")
	// ErrUntrusted reports a server whose chain does not lead to the
	// pinned CA.
	ErrUntrusted = errors.New("certificate is not issued by the pinned cluster CA")
)

const prefix = "sha256:"

// Fingerprint returns "sha256:" followed by the lowercase hex SHA-256 of a
// DER-encoded certificate.
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return prefix + hex.EncodeToString(sum[:])
}

// Parse parses a SHA-256 certificate fingerprint written as
// "sha256:<hex>", plain hex, or colon-separated hex byte pairs (with or
// without the prefix), in any letter case, and returns the 32 raw bytes.
func Parse(s string) ([]byte, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), prefix)
	if strings.Contains(t, ":") {
		parts := strings.Split(t, ":")
		for _, p := range parts {
			if len(p) != 2 {
				return nil, fmt.Errorf("%w: colon-separated form needs two hex digits per byte", ErrInvalid)
			}
		}
		t = strings.Join(parts, "")
	}
	b, err := hex.DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("%w: not hexadecimal", ErrInvalid)
	}
	if len(b) != sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes, want %d (SHA-256)", ErrInvalid, len(b), sha256.Size)
	}
	return b, nil
}

// Matches reports whether c has the fingerprint pin (raw bytes).
func Matches(c *x509.Certificate, pin []byte) bool {
	sum := sha256.Sum256(c.Raw)
	return bytes.Equal(sum[:], pin)
}

// VerifyPinned checks the certificates a server sent against a pinned CA:
// among the certificates after the leaf there must be a CA certificate
// with the pinned fingerprint, and the leaf must verify for server
// authentication at the current time with that CA as the only root and the
// other sent certificates as intermediates. Host names are not checked: the
// pin, not a name, identifies the cluster. It returns the verified leaf.
func VerifyPinned(peer []*x509.Certificate, pin []byte) (*x509.Certificate, error) {
	if len(peer) == 0 {
		return nil, fmt.Errorf("%w: the server sent no certificate", ErrUntrusted)
	}
	for i, ca := range peer[1:] {
		if !Matches(ca, pin) || !ca.BasicConstraintsValid || !ca.IsCA {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		inter := x509.NewCertPool()
		for j, c := range peer[1:] {
			if j != i {
				inter.AddCert(c)
			}
		}
		if _, err := peer[0].Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   time.Now(),
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
		}
		return peer[0], nil
	}
	return nil, fmt.Errorf("%w: the server did not send a CA certificate with the pinned fingerprint", ErrUntrusted)
}
