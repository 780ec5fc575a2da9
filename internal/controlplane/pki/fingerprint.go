package pki

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidFingerprint reports a fingerprint string that cannot be parsed.
var ErrInvalidFingerprint = errors.New("invalid certificate fingerprint")

const fingerprintPrefix = "sha256:"

// Fingerprint returns "sha256:" followed by the lowercase hex SHA-256 of a
// DER-encoded certificate.
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// ParseFingerprint parses a SHA-256 certificate fingerprint written as
// "sha256:<hex>", plain hex, or colon-separated hex byte pairs (with or
// without the prefix), in any letter case, and returns the 32 raw bytes.
func ParseFingerprint(s string) ([]byte, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, fingerprintPrefix)
	if strings.Contains(t, ":") {
		parts := strings.Split(t, ":")
		for _, p := range parts {
			if len(p) != 2 {
				return nil, fmt.Errorf("%w: colon-separated form needs two hex digits per byte", ErrInvalidFingerprint)
			}
		}
		t = strings.Join(parts, "")
	}
	b, err := hex.DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("%w: not hexadecimal", ErrInvalidFingerprint)
	}
	if len(b) != sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes, want %d (SHA-256)", ErrInvalidFingerprint, len(b), sha256.Size)
	}
	return b, nil
}
