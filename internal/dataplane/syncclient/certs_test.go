package syncclient_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"testing"
	"time"
)

// cert is a certificate and its key.
type cert struct {
	c   *x509.Certificate
	key crypto.Signer
}

// fingerprint is c's pin as a join credential carries it.
func (c cert) fingerprint() string {
	sum := sha256.Sum256(c.c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// certOpts describes a certificate to issue.
type certOpts struct {
	ca       bool
	eku      []x509.ExtKeyUsage // default server auth
	notAfter time.Time          // default in a day
}

// issue creates a certificate signed by parent (self-signed if nil).
func issue(t *testing.T, cn string, parent *cert, o certOpts) cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     o.notAfter,
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if o.ca {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = o.eku
		if tmpl.ExtKeyUsage == nil {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		tmpl.DNSNames = []string{"node.cluster.invalid"}
	}
	signer, issuerCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuerCert = parent.key, parent.c
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert{c: c, key: key}
}

// chain is what a server presents: leaf first, then the others.
func chain(leaf cert, others ...cert) tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{leaf.c.Raw}, PrivateKey: leaf.key, Leaf: leaf.c}
	for _, o := range others {
		tc.Certificate = append(tc.Certificate, o.c.Raw)
	}
	return tc
}
