package pki

import "github.com/portcullis-gw/portcullis/internal/clusterpin"

// ErrInvalidFingerprint reports a fingerprint string that cannot be parsed.
var ErrInvalidFingerprint = clusterpin.ErrInvalid

// Fingerprint returns "sha256:" followed by the lowercase hex SHA-256 of a
// DER-encoded certificate.
func Fingerprint(certDER []byte) string { return clusterpin.Fingerprint(certDER) }

// ParseFingerprint parses a SHA-256 certificate fingerprint (see
// clusterpin.Parse for the accepted forms) and returns the 32 raw bytes.
func ParseFingerprint(s string) ([]byte, error) { return clusterpin.Parse(s) }
