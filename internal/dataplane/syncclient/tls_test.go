package syncclient_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
)

// handshake runs a TLS handshake between a server presenting served and a
// client using cfg, and returns the client's error.
func handshake(t *testing.T, served tls.Certificate, cfg *tls.Config) error {
	t.Helper()
	// Real loopback sockets: their buffers keep both sides' handshake
	// writes from blocking each other the way net.Pipe's would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		srv := tls.Server(conn, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{served}})
		_ = srv.Handshake()
		_ = srv.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cli := tls.Client(conn, cfg)
	err = cli.HandshakeContext(ctx)
	_ = cli.Close()
	<-done
	return err
}

func TestPinnedTLSConfig(t *testing.T) {
	ca := issue(t, "cluster CA", nil, certOpts{ca: true})
	other := issue(t, "other CA", nil, certOpts{ca: true})
	leaf := issue(t, "node", &ca, certOpts{})
	inter := issue(t, "intermediate", &ca, certOpts{ca: true})
	deepLeaf := issue(t, "node via intermediate", &inter, certOpts{})
	otherLeaf := issue(t, "foreign node", &other, certOpts{})
	clientOnly := issue(t, "client cert", &ca, certOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	expired := issue(t, "expired node", &ca, certOpts{notAfter: time.Now().Add(-time.Minute)})
	selfSigned := issue(t, "self-signed leaf", nil, certOpts{})

	tests := []struct {
		name   string
		pin    string
		served tls.Certificate
		ok     bool
	}{
		{name: "leaf and pinned CA", pin: ca.fingerprint(), served: chain(leaf, ca), ok: true},
		{name: "through an intermediate", pin: ca.fingerprint(), served: chain(deepLeaf, inter, ca), ok: true},
		{name: "intermediate after root", pin: ca.fingerprint(), served: chain(deepLeaf, ca, inter), ok: true},
		{name: "plain hex pin", pin: ca.fingerprint()[len("sha256:"):], served: chain(leaf, ca), ok: true},
		{name: "another cluster's CA", pin: other.fingerprint(), served: chain(leaf, ca)},
		{name: "CA not sent", pin: ca.fingerprint(), served: chain(leaf)},
		{name: "foreign leaf with pinned CA appended", pin: ca.fingerprint(), served: chain(otherLeaf, ca)},
		{name: "client-auth-only leaf", pin: ca.fingerprint(), served: chain(clientOnly, ca)},
		{name: "expired leaf", pin: ca.fingerprint(), served: chain(expired, ca)},
		{name: "pinned certificate is not a CA", pin: selfSigned.fingerprint(), served: chain(leaf, selfSigned, ca)},
		{name: "pin matches the leaf only", pin: selfSigned.fingerprint(), served: chain(selfSigned)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := syncclient.PinnedTLSConfig(tt.pin)
			if err != nil {
				t.Fatalf("PinnedTLSConfig: %v", err)
			}
			err = handshake(t, tt.served, cfg)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("handshake failed: %v", err)
			case !tt.ok && !errors.Is(err, syncclient.ErrUntrusted):
				t.Fatalf("handshake error = %v, want ErrUntrusted", err)
			}
			t.Log(err)
		})
	}
}

func TestPinnedTLSConfigRejectsBadPin(t *testing.T) {
	tests := []struct {
		name string
		pin  string
	}{
		{name: "empty", pin: ""},
		{name: "not hex", pin: "sha256:zz"},
		{name: "too short", pin: "sha256:abcd"},
		{name: "other hash", pin: "sha1:" + "00112233445566778899aabbccddeeff00112233"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := syncclient.PinnedTLSConfig(tt.pin); err == nil {
				t.Fatal("accepted, want an error")
			}
		})
	}
}

func TestPinnedTLSConfigIsTLS13(t *testing.T) {
	cfg, err := syncclient.PinnedTLSConfig(issue(t, "ca", nil, certOpts{ca: true}).fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Fatalf("MinVersion = %x, want TLS 1.3", cfg.MinVersion)
	}
}
