package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrInvalidCSR reports a certificate signing request that cannot be parsed,
// has a bad signature, or carries an unacceptable public key.
var ErrInvalidCSR = errors.New("invalid certificate signing request")

// ErrInvalidHost reports a host entry that is neither an IP literal nor a
// DNS name.
var ErrInvalidHost = errors.New("invalid host name")

// NewKeyAndCSR generates an ECDSA P-256 key and a certificate signing
// request for commonName. The key is returned as PKCS#8 PEM.
func NewKeyAndCSR(commonName string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CSR: %w", err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, encodePEM(pemCSR, der), nil
}

// SignNode signs csrPEM as the certificate of control-plane node id: CN=id,
// URI SAN NodeURI(id), DNS and IP SANs from hosts plus "localhost",
// 127.0.0.1 and ::1, and extended key usages server and client auth. The
// certificate is valid from one minute before now until now+ttl, clamped to
// the CA's own expiry. Only the CSR's public key and signature are used;
// its subject and extensions are ignored.
func (ca *CA) SignNode(csrPEM []byte, id string, hosts []string, now time.Time, ttl time.Duration) (certPEM []byte, err error) {
	if err := validName(id); err != nil {
		return nil, fmt.Errorf("sign node certificate: node id: %w", err)
	}
	dns, ips, err := sans(hosts)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate for %s: %w", id, err)
	}
	u, err := url.Parse(NodeURI(id))
	if err != nil {
		return nil, fmt.Errorf("sign node certificate for %s: %w", id, err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id},
		URIs:        []*url.URL{u},
		DNSNames:    dns,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	certPEM, err = ca.sign(csrPEM, tmpl, now, ttl)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate for %s: %w", id, err)
	}
	return certPEM, nil
}

// SignDataplane signs csrPEM as the client certificate of the data plane
// called name: CN=name, URI SAN DataplaneURI(name) and extended key usage
// client auth only. Validity is as for SignNode.
func (ca *CA) SignDataplane(csrPEM []byte, name string, now time.Time, ttl time.Duration) (certPEM []byte, err error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("sign data-plane certificate: name: %w", err)
	}
	u, err := url.Parse(DataplaneURI(name))
	if err != nil {
		return nil, fmt.Errorf("sign data-plane certificate for %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certPEM, err = ca.sign(csrPEM, tmpl, now, ttl)
	if err != nil {
		return nil, fmt.Errorf("sign data-plane certificate for %s: %w", name, err)
	}
	return certPEM, nil
}

// IssueNode generates a key for node id and signs it with SignNode,
// returning the certificate and PKCS#8 key PEM.
func (ca *CA) IssueNode(id string, hosts []string, now time.Time, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	keyPEM, csrPEM, err := NewKeyAndCSR(id)
	if err != nil {
		return nil, nil, fmt.Errorf("issue node certificate for %s: %w", id, err)
	}
	certPEM, err = ca.SignNode(csrPEM, id, hosts, now, ttl)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// sign completes tmpl with serial and validity and signs the CSR's key.
func (ca *CA) sign(csrPEM []byte, tmpl *x509.Certificate, now time.Time, ttl time.Duration) ([]byte, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("ttl %v must be positive", ttl)
	}
	pub, err := csrPublicKey(csrPEM)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = notAfter
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return encodePEM(pemCertificate, der), nil
}

// csrPublicKey parses a CSR, verifies its self-signature and returns its
// public key if it is of an acceptable type and size.
func csrPublicKey(csrPEM []byte) (crypto.PublicKey, error) {
	der, _, err := decodeBlock(csrPEM, "certificate request", pemCSR, "NEW CERTIFICATE REQUEST")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrInvalidCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: RSA key of %d bits is too small", ErrInvalidCSR, k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("%w: unsupported public key type %T", ErrInvalidCSR, csr.PublicKey)
	}
	return csr.PublicKey, nil
}

// sans splits hosts into DNS names and IP addresses, always adding
// localhost, 127.0.0.1 and ::1, and dropping duplicates.
func sans(hosts []string) ([]string, []net.IP, error) {
	dns := []string{"localhost"}
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	seenDNS := map[string]bool{"localhost": true}
	seenIP := map[netip.Addr]bool{ips[0]: true, ips[1]: true}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Zone() != "" {
				return nil, nil, fmt.Errorf("%w: %q: IP address zones cannot appear in certificates", ErrInvalidHost, h)
			}
			a = a.Unmap()
			if !seenIP[a] {
				seenIP[a] = true
				ips = append(ips, a)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if err := validDNSName(name); err != nil {
			return nil, nil, fmt.Errorf("%w: %q: %w", ErrInvalidHost, h, err)
		}
		if !seenDNS[name] {
			seenDNS[name] = true
			dns = append(dns, name)
		}
	}
	out := make([]net.IP, len(ips))
	for i, a := range ips {
		out[i] = net.IP(a.AsSlice())
	}
	return dns, out, nil
}

// validDNSName checks LDH labels of at most 63 bytes, total at most 253,
// allowing a leading "*." wildcard label.
func validDNSName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if i == 0 && l == "*" && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 {
			return errors.New("labels must be 1 to 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("labels may not start or end with '-'")
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return errors.New("only letters, digits, '-', '_' and '.' are allowed (no ports or schemes)")
			}
		}
	}
	return nil
}
