package pki_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
)

func TestSignNode(t *testing.T) {
	ca, _ := newCA(t, "A")
	now := time.Now().Truncate(time.Second)
	_, csrPEM, err := pki.NewKeyAndCSR("ignored-cn")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csrPEM, "node-1", []string{"cp1.internal", "10.0.0.5", "fd00::5", "CP1.internal.", " localhost "}, now, time.Hour)
	if err != nil {
		t.Fatalf("SignNode: %v", err)
	}
	c := parseCertPEM(t, certPEM)
	ips := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		ips[i] = ip.String()
	}
	id, isNode := pki.NodeID(c)
	_, isDP := pki.DataplaneName(c)
	checks := []struct {
		name string
		ok   bool
	}{
		{name: "common name is id", ok: c.Subject.CommonName == "node-1"},
		{name: "node id from URI", ok: isNode && id == "node-1"},
		{name: "not a data plane", ok: !isDP},
		{name: "single URI SAN", ok: len(c.URIs) == 1 && c.URIs[0].String() == pki.NodeURI("node-1")},
		{name: "dns names", ok: slices.Equal(c.DNSNames, []string{"localhost", "cp1.internal"})},
		{name: "ip addresses", ok: slices.Equal(ips, []string{"127.0.0.1", "::1", "10.0.0.5", "fd00::5"})},
		{name: "ext key usage", ok: slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})},
		{name: "not a CA", ok: !c.IsCA},
		{name: "not before", ok: c.NotBefore.Equal(now.Add(-time.Minute))},
		{name: "not after", ok: c.NotAfter.Equal(now.Add(time.Hour))},
		{name: "signed by CA", ok: c.CheckSignatureFrom(ca.Cert) == nil},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("%s: check failed (cert DNS %v IPs %v URIs %v)", ck.name, c.DNSNames, ips, c.URIs)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, host := range []string{"cp1.internal", "10.0.0.5", "localhost", "127.0.0.1", "::1"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
}

func TestSignNodeClampsToCAExpiry(t *testing.T) {
	now := time.Now()
	ca, _, err := pki.NewCA("short", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := issueNode(t, ca, "n1", now, 24*time.Hour)
	if got := parseCertPEM(t, n.cert).NotAfter; got.After(ca.Cert.NotAfter) {
		t.Errorf("node NotAfter %v is after CA NotAfter %v", got, ca.Cert.NotAfter)
	}
}

func TestSignDataplane(t *testing.T) {
	ca, _ := newCA(t, "A")
	dp := issueDataplane(t, ca, "edge-eu-1")
	c := parseCertPEM(t, dp.cert)
	name, ok := pki.DataplaneName(c)
	if !ok || name != "edge-eu-1" {
		t.Errorf("DataplaneName = %q, %v", name, ok)
	}
	if _, ok := pki.NodeID(c); ok {
		t.Error("data-plane certificate has a node identity")
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v, want client auth only", c.ExtKeyUsage)
	}
	if len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 {
		t.Errorf("data-plane certificate has host SANs %v %v", c.DNSNames, c.IPAddresses)
	}
}

func TestSignRejects(t *testing.T) {
	ca, _ := newCA(t, "A")
	_, csrPEM, err := pki.NewKeyAndCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	tamperedPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})

	tests := []struct {
		name    string
		csr     []byte
		id      string
		hosts   []string
		ttl     time.Duration
		wantErr error
	}{
		{name: "tampered CSR signature", csr: tamperedPEM, id: "n1", ttl: time.Hour, wantErr: pki.ErrInvalidCSR},
		{name: "not a CSR", csr: ca.CertPEM, id: "n1", ttl: time.Hour, wantErr: pki.ErrInvalidCSR},
		{name: "empty id", csr: csrPEM, id: "", ttl: time.Hour, wantErr: pki.ErrInvalidName},
		{name: "id with slash", csr: csrPEM, id: "a/b", ttl: time.Hour, wantErr: pki.ErrInvalidName},
		{name: "id dot dot", csr: csrPEM, id: "..", ttl: time.Hour, wantErr: pki.ErrInvalidName},
		{name: "host with port", csr: csrPEM, id: "n1", hosts: []string{"cp1:7000"}, ttl: time.Hour, wantErr: pki.ErrInvalidHost},
		{name: "host with scheme", csr: csrPEM, id: "n1", hosts: []string{"https://cp1"}, ttl: time.Hour, wantErr: pki.ErrInvalidHost},
		{name: "empty host", csr: csrPEM, id: "n1", hosts: []string{""}, ttl: time.Hour, wantErr: pki.ErrInvalidHost},
		{name: "zoned ip", csr: csrPEM, id: "n1", hosts: []string{"fe80::1%eth0"}, ttl: time.Hour, wantErr: pki.ErrInvalidHost},
		{name: "zero ttl", csr: csrPEM, id: "n1", ttl: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.SignNode(tt.csr, tt.id, tt.hosts, time.Now(), tt.ttl)
			if err == nil {
				t.Fatal("SignNode succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("SignNode error = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if _, err := ca.SignDataplane(csrPEM, "bad name", time.Now(), time.Hour); !errors.Is(err, pki.ErrInvalidName) {
		t.Errorf("SignDataplane with bad name: error = %v, want ErrInvalidName", err)
	}
}

func TestIdentityURIs(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "node", got: pki.NodeURI("n1"), want: "spiffe://portcullis.cluster/node/n1"},
		{name: "dataplane", got: pki.DataplaneURI("edge"), want: "spiffe://portcullis.cluster/dataplane/edge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
	if _, ok := pki.NodeID(nil); ok {
		t.Error("NodeID(nil) reported an identity")
	}
	if _, ok := pki.NodeID(&x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}); ok {
		t.Error("NodeID of a certificate without URIs reported an identity")
	}
}
