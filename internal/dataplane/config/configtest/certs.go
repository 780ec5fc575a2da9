package configtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// CA is a test certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// PEM is the CA certificate's PEM.
	PEM string
}

// NewCA returns a self-signed CA valid from a year before VersionTime for
// twenty years (long enough for certificates checked at wall time too).
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             VersionTime.Add(-365 * 24 * time.Hour),
		NotAfter:              VersionTime.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert := sign(t, tmpl, tmpl, &key.PublicKey, key)
	return &CA{Cert: cert, Key: key, PEM: PEM(cert)}
}

// Leaf describes a certificate for CA.Issue. Zero fields take defaults:
// valid for a day around VersionTime, extended key usage client auth.
type Leaf struct {
	Name      string
	SPIFFEID  string
	NotBefore time.Time
	NotAfter  time.Time
	// Usages replaces the default extended key usage (client auth).
	Usages []x509.ExtKeyUsage
	// CA makes an intermediate CA (see Issued.AsCA).
	CA bool
	// DNSNames and IPs are SANs for a server certificate.
	DNSNames []string
	IPs      []net.IP
}

// Issued is a certificate and its key.
type Issued struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issue signs a leaf certificate with ca; a nil ca self-signs it.
func (ca *CA) Issue(t testing.TB, l Leaf) Issued {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: l.Name},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  l.Usages,
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = VersionTime.Add(-12 * time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = VersionTime.Add(12 * time.Hour)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if l.CA {
		tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if l.SPIFFEID != "" {
		u, err := url.Parse(l.SPIFFEID)
		if err != nil {
			t.Fatalf("parse SPIFFE ID: %v", err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	return Issued{Cert: sign(t, tmpl, parent, &key.PublicKey, signer), Key: key}
}

// AsCA uses an issued intermediate CA certificate to sign others.
func (i Issued) AsCA() *CA { return &CA{Cert: i.Cert, Key: i.Key, PEM: PEM(i.Cert)} }

// PEM encodes a certificate.
func PEM(cert *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// KeyPEM encodes a key as PKCS#8.
func KeyPEM(t testing.TB, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// MTLSAuthoritySource returns an identity source named name trusting the
// CA certificates caPEM for client certificates.
func MTLSAuthoritySource(name, caPEM string) *configv1.IdentitySource {
	return &configv1.IdentitySource{
		Meta: &configv1.ResourceMeta{Name: name},
		Kind: &configv1.IdentitySource_MtlsAuthority{MtlsAuthority: &configv1.MtlsAuthority{CaPem: caPEM}},
	}
}

// Agent returns the named agent of s.
func Agent(t testing.TB, s *snapshotv1.Snapshot, name string) *configv1.Agent {
	t.Helper()
	for _, a := range s.GetAgents() {
		if a.GetMeta().GetName() == name {
			return a
		}
	}
	t.Fatalf("no agent %q in the snapshot", name)
	return nil
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	return n
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}
