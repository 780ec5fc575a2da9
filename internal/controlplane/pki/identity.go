package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// TrustDomain is the SPIFFE trust domain of every Portcullis cluster.
const TrustDomain = "portcullis.cluster"

const (
	nodePrefix      = "spiffe://" + TrustDomain + "/node/"
	dataplanePrefix = "spiffe://" + TrustDomain + "/dataplane/"
)

// ErrInvalidName reports a node id or data-plane name that cannot be used in
// an identity URI.
var ErrInvalidName = errors.New("invalid identity name")

// NodeURI returns the identity URI of control-plane node id.
func NodeURI(id string) string { return nodePrefix + id }

// DataplaneURI returns the identity URI of the data plane called name.
func DataplaneURI(name string) string { return dataplanePrefix + name }

// NodeID returns the control-plane node id carried in cert's URI SANs. Only
// trust the result for a certificate that has been verified against the
// cluster CA.
func NodeID(cert *x509.Certificate) (string, bool) {
	return identity(cert, nodePrefix)
}

// DataplaneName returns the data-plane name carried in cert's URI SANs. Only
// trust the result for a certificate that has been verified against the
// cluster CA.
func DataplaneName(cert *x509.Certificate) (string, bool) {
	return identity(cert, dataplanePrefix)
}

func identity(cert *x509.Certificate, prefix string) (string, bool) {
	if cert == nil {
		return "", false
	}
	for _, u := range cert.URIs {
		name, ok := strings.CutPrefix(u.String(), prefix)
		if ok && validName(name) == nil {
			return name, true
		}
	}
	return "", false
}

// validName accepts 1–128 characters from the SPIFFE path-segment set
// [A-Za-z0-9._-], excluding "." and "..".
func validName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > 128 {
		return fmt.Errorf("%w: longer than 128 characters", ErrInvalidName)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q is not allowed", ErrInvalidName, name)
	}
	for _, c := range name {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("%w: %q may contain only letters, digits, '.', '-' and '_'", ErrInvalidName, name)
		}
	}
	return nil
}
