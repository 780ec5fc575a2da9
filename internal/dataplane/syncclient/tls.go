package syncclient

import (
	"crypto/tls"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/clusterpin"
)

// ErrUntrusted reports a control plane whose certificate chain does not
// lead to the pinned cluster CA.
var ErrUntrusted = clusterpin.ErrUntrusted

// PinnedTLSConfig returns a TLS 1.3 client configuration that trusts
// exactly one CA: the one whose SHA-256 fingerprint ("sha256:<hex>" or
// plain hex, as in a join credential) is given, by clusterpin's rule (the
// server sends the CA in its chain; host names are not checked, since the
// pin, not a name, identifies the cluster).
func PinnedTLSConfig(fingerprint string) (*tls.Config, error) {
	pin, err := clusterpin.Parse(fingerprint)
	if err != nil {
		return nil, fmt.Errorf("CA fingerprint %q: %w", fingerprint, err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The standard verification needs a host name; VerifyConnection
		// below replaces it with the pinned-CA check.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := clusterpin.VerifyPinned(cs.PeerCertificates, pin)
			return err
		},
	}, nil
}
