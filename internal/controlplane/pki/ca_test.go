package pki_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
)

func TestNewCA(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ca, keyPEM, err := pki.NewCA("Portcullis Cluster CA", now, 10*365*24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	c := ca.Cert
	checks := []struct {
		name string
		ok   bool
	}{
		{name: "common name", ok: c.Subject.CommonName == "Portcullis Cluster CA"},
		{name: "is CA", ok: c.IsCA && c.BasicConstraintsValid},
		{name: "max path len zero", ok: c.MaxPathLen == 0 && c.MaxPathLenZero},
		{name: "key usage", ok: c.KeyUsage == x509.KeyUsageCertSign|x509.KeyUsageCRLSign},
		{name: "ecdsa p-256", ok: c.PublicKeyAlgorithm == x509.ECDSA},
		{name: "not before", ok: c.NotBefore.Equal(now.Add(-time.Minute))},
		{name: "not after", ok: c.NotAfter.Equal(now.Add(10 * 365 * 24 * time.Hour))},
		{name: "serial positive and at most 128 bits", ok: c.SerialNumber.Sign() > 0 && c.SerialNumber.Cmp(new(big.Int).Lsh(big.NewInt(1), 128)) < 0},
		{name: "self signed", ok: c.CheckSignatureFrom(c) == nil},
		{name: "cert PEM matches", ok: bytes.Equal(parseCertPEM(t, ca.CertPEM).Raw, c.Raw)},
		{name: "key PEM returned", ok: bytes.Contains(keyPEM, []byte("PRIVATE KEY"))},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("%s: check failed", ck.name)
		}
	}
	other, _, err := pki.NewCA("Portcullis Cluster CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if other.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Error("two CAs have the same serial")
	}
}

func TestNewCAInvalid(t *testing.T) {
	tests := []struct {
		name string
		cn   string
		ttl  time.Duration
	}{
		{name: "empty common name", cn: "", ttl: time.Hour},
		{name: "zero ttl", cn: "ca", ttl: 0},
		{name: "negative ttl", cn: "ca", ttl: -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := pki.NewCA(tt.cn, time.Now(), tt.ttl); err == nil {
				t.Fatal("NewCA succeeded")
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	ca, keyPEM := newCA(t, "A")
	_, otherKeyPEM := newCA(t, "B")
	node := issueNode(t, ca, "n1", time.Now(), time.Hour)
	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr error
	}{
		{name: "ok", cert: ca.CertPEM, key: keyPEM},
		{name: "key mismatch", cert: ca.CertPEM, key: otherKeyPEM, wantErr: pki.ErrKeyMismatch},
		{name: "not a CA", cert: node.cert, key: node.key, wantErr: pki.ErrNotCA},
		{name: "no cert", cert: []byte("garbage"), key: keyPEM, wantErr: pki.ErrInvalidPEM},
		{name: "no key", cert: ca.CertPEM, key: ca.CertPEM, wantErr: pki.ErrInvalidPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loaded, err := pki.LoadCA(tt.cert, tt.key)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("LoadCA error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCA: %v", err)
			}
			if loaded.Fingerprint() != ca.Fingerprint() {
				t.Errorf("fingerprint changed on reload")
			}
			// The loaded CA can sign certificates that chain to the original.
			n := issueNode(t, loaded, "n2", time.Now(), time.Hour)
			if err := parseCertPEM(t, n.cert).CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("certificate from loaded CA does not verify: %v", err)
			}
		})
	}
}
