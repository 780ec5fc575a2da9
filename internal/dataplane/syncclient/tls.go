package syncclient

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrUntrusted reports a control plane whose certificate chain does not
// lead to the pinned cluster CA.
var ErrUntrusted = errors.New("control plane certificate is not issued by the pinned cluster CA")

// PinnedTLSConfig returns a TLS 1.3 client configuration that trusts
// exactly one CA: the one whose SHA-256 fingerprint ("sha256:<hex>" or
// plain hex, as in a join credential) is given.
//
// The server must send that CA certificate in its chain (control-plane
// nodes send [leaf, CA]). Among the certificates after the leaf there must
// be a CA certificate with the pinned fingerprint, and the leaf must verify
// for server authentication at the current time with that CA as the only
// root and the other sent certificates as intermediates. Host names are
// not checked: the pin, not a name, identifies the cluster, and data planes
// dial nodes by whatever address the operator gave.
func PinnedTLSConfig(fingerprint string) (*tls.Config, error) {
	pin, err := parseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The standard verification needs a host name; VerifyConnection
		// below replaces it with the pinned-CA check.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, pin)
		},
	}, nil
}

func parseFingerprint(s string) ([]byte, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("CA fingerprint %q: want sha256:<64 hex digits>", s)
	}
	return b, nil
}

// verifyPinned applies PinnedTLSConfig's rule to the certificates a server
// sent.
func verifyPinned(peer []*x509.Certificate, pin []byte) error {
	if len(peer) == 0 {
		return fmt.Errorf("%w: the server sent no certificate", ErrUntrusted)
	}
	for i, ca := range peer[1:] {
		sum := sha256.Sum256(ca.Raw)
		if !bytes.Equal(sum[:], pin) || !ca.BasicConstraintsValid || !ca.IsCA {
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
		_, err := peer[0].Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUntrusted, err)
		}
		return nil
	}
	return fmt.Errorf("%w: the server did not send a CA certificate with the pinned fingerprint", ErrUntrusted)
}
