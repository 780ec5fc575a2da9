package pki_test

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
)

// newCA returns a CA valid from a day ago for a year, so that certificates
// issued "in the past" by tests are still within its validity.
func newCA(t *testing.T, cn string) (*pki.CA, []byte) {
	t.Helper()
	ca, keyPEM, err := pki.NewCA(cn, time.Now().Add(-24*time.Hour), 365*24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca, keyPEM
}

func parseCertPEM(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE block in %q", certPEM)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

type keyPair struct{ cert, key []byte }

func issueNode(t *testing.T, ca *pki.CA, id string, now time.Time, ttl time.Duration) keyPair {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueNode(id, []string{"node.example"}, now, ttl)
	if err != nil {
		t.Fatalf("IssueNode(%s): %v", id, err)
	}
	return keyPair{certPEM, keyPEM}
}

func issueDataplane(t *testing.T, ca *pki.CA, name string) keyPair {
	t.Helper()
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(name)
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	certPEM, err := ca.SignDataplane(csrPEM, name, time.Now(), time.Hour)
	if err != nil {
		t.Fatalf("SignDataplane: %v", err)
	}
	return keyPair{certPEM, keyPEM}
}
