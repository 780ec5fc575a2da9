package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/pki"
)

// handshakeResult is the outcome of one TLS connection over loopback.
type handshakeResult struct {
	serverErr error
	clientErr error
	// serverPeer is the client certificate the server saw, if any.
	serverPeer *x509.Certificate
	// clientState is the client's view of the connection.
	clientState tls.ConnectionState
}

// handshake runs a TLS handshake between serverCfg and clientCfg over a
// loopback TCP connection. After the handshake the server writes one byte
// that the client reads, so that a TLS 1.3 client learns about the server
// rejecting its certificate.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)

	type serverOut struct {
		err  error
		peer *x509.Certificate
	}
	done := make(chan serverOut, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverOut{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		tc := tls.Server(conn, serverCfg)
		if err := tc.Handshake(); err != nil {
			done <- serverOut{err: err}
			return
		}
		var peer *x509.Certificate
		if pcs := tc.ConnectionState().PeerCertificates; len(pcs) > 0 {
			peer = pcs[0]
		}
		_, err = tc.Write([]byte{1})
		done <- serverOut{err: err, peer: peer}
	}()

	var res handshakeResult
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = conn.SetDeadline(deadline)
	tc := tls.Client(conn, clientCfg)
	res.clientErr = tc.Handshake()
	if res.clientErr == nil {
		res.clientState = tc.ConnectionState()
		_, res.clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	tc.Close()
	out := <-done
	res.serverErr, res.serverPeer = out.err, out.peer
	return res
}

// configMaker returns a helper that unwraps a (*tls.Config, error) pair,
// failing the test on error.
func configMaker(t *testing.T) func(*tls.Config, error) *tls.Config {
	return func(cfg *tls.Config, err error) *tls.Config {
		t.Helper()
		if err != nil {
			t.Fatalf("build TLS config: %v", err)
		}
		return cfg
	}
}

func TestPeerMTLS(t *testing.T) {
	conf := configMaker(t)
	caA, _ := newCA(t, "Portcullis Cluster CA")
	caB, _ := newCA(t, "Portcullis Cluster CA") // same name, different key
	now := time.Now()
	n1 := issueNode(t, caA, "node-1", now, time.Hour)
	n2 := issueNode(t, caA, "node-2", now, time.Hour)
	foreign := issueNode(t, caB, "node-x", now, time.Hour)
	dp := issueDataplane(t, caA, "edge-1")
	expired := issueNode(t, caA, "node-old", now.Add(-3*time.Hour), time.Hour)

	tests := []struct {
		name          string
		server        *tls.Config
		client        *tls.Config
		wantServerErr error // nil: no error; errAny: any error
		wantClientErr error
		wantPeerID    string
	}{
		{
			name:       "node to node",
			server:     conf(pki.PeerServerConfig(n1.cert, n1.key, caA.CertPEM)),
			client:     conf(pki.PeerClientConfig(n2.cert, n2.key, caA.CertPEM)),
			wantPeerID: "node-2",
		},
		{
			name:          "server refuses client cert from another CA",
			server:        conf(pki.PeerServerConfig(n1.cert, n1.key, caA.CertPEM)),
			client:        conf(pki.PeerClientConfig(foreign.cert, foreign.key, caA.CertPEM)),
			wantServerErr: errAny,
			wantClientErr: errAny,
		},
		{
			name:          "client refuses server cert from another CA",
			server:        conf(pki.PeerServerConfig(foreign.cert, foreign.key, caA.CertPEM)),
			client:        conf(pki.PeerClientConfig(n2.cert, n2.key, caA.CertPEM)),
			wantServerErr: errAny,
			wantClientErr: pki.ErrUntrusted,
		},
		{
			name:          "server refuses data-plane client cert",
			server:        conf(pki.PeerServerConfig(n1.cert, n1.key, caA.CertPEM)),
			client:        conf(pki.PeerClientConfig(dp.cert, dp.key, caA.CertPEM)),
			wantServerErr: pki.ErrNotNode,
			wantClientErr: errAny,
		},
		{
			name:          "server refuses missing client cert",
			server:        conf(pki.PeerServerConfig(n1.cert, n1.key, caA.CertPEM)),
			client:        conf(pki.ClientConfig(nil, caA.Fingerprint(), "")),
			wantServerErr: errAny,
			wantClientErr: errAny,
		},
		{
			name:          "client refuses data-plane server cert",
			server:        conf(pki.PeerServerConfig(dp.cert, dp.key, caA.CertPEM)),
			client:        conf(pki.PeerClientConfig(n2.cert, n2.key, caA.CertPEM)),
			wantServerErr: errAny,
			wantClientErr: pki.ErrUntrusted,
		},
		{
			name:          "server refuses expired client cert",
			server:        conf(pki.PeerServerConfig(n1.cert, n1.key, caA.CertPEM)),
			client:        conf(pki.PeerClientConfig(expired.cert, expired.key, caA.CertPEM)),
			wantServerErr: errAny,
			wantClientErr: errAny,
		},
		{
			name:          "client refuses expired server cert",
			server:        conf(pki.PeerServerConfig(expired.cert, expired.key, caA.CertPEM)),
			client:        conf(pki.PeerClientConfig(n2.cert, n2.key, caA.CertPEM)),
			wantServerErr: errAny,
			wantClientErr: pki.ErrUntrusted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, tt.server, tt.client)
			checkErr(t, "server", res.serverErr, tt.wantServerErr)
			checkErr(t, "client", res.clientErr, tt.wantClientErr)
			if tt.wantPeerID != "" {
				id, ok := pki.NodeID(res.serverPeer)
				if !ok || id != tt.wantPeerID {
					t.Errorf("server saw peer %q (%v), want %q", id, ok, tt.wantPeerID)
				}
				if n := len(res.clientState.PeerCertificates); n != 2 {
					t.Errorf("server sent %d certificates, want 2 (leaf and CA)", n)
				}
				if p := res.clientState.NegotiatedProtocol; p != "" {
					t.Errorf("negotiated protocol %q without client ALPN", p)
				}
			}
		})
	}
}

func TestServerAndClientConfig(t *testing.T) {
	conf := configMaker(t)
	caA, _ := newCA(t, "A")
	caB, _ := newCA(t, "B")
	now := time.Now()
	n1 := issueNode(t, caA, "node-1", now, time.Hour)
	foreignNode := issueNode(t, caB, "node-x", now, time.Hour)
	dp := issueDataplane(t, caA, "edge-1")
	foreignDP := issueDataplane(t, caB, "edge-x")
	expired := issueNode(t, caA, "node-old", now.Add(-3*time.Hour), time.Hour)

	server := conf(pki.ServerConfig(n1.cert, n1.key, caA.CertPEM))
	withCert := func(cfg *tls.Config, kp keyPair) *tls.Config {
		// GetClientCertificate presents the certificate even when its issuer
		// is not among the CAs the server asks for, so that the server's
		// verification is what gets tested.
		cfg = cfg.Clone()
		cert := keyPairOf(t, kp)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}
		return cfg
	}
	tests := []struct {
		name          string
		server        *tls.Config
		client        *tls.Config
		wantServerErr error
		wantClientErr error
		wantDataplane string
	}{
		{name: "CA trust and IP server name", server: server, client: conf(pki.ClientConfig(caA.CertPEM, "", "127.0.0.1"))},
		{name: "CA trust and DNS server name", server: server, client: conf(pki.ClientConfig(caA.CertPEM, "", "node.example"))},
		{name: "CA trust wrong server name", server: server, client: conf(pki.ClientConfig(caA.CertPEM, "", "evil.example")), wantServerErr: errAny, wantClientErr: errAny},
		{name: "wrong CA", server: server, client: conf(pki.ClientConfig(caB.CertPEM, "", "127.0.0.1")), wantServerErr: errAny, wantClientErr: errAny},
		{name: "pinned fingerprint", server: server, client: conf(pki.ClientConfig(nil, caA.Fingerprint(), ""))},
		{name: "pinned fingerprint colon form", server: server, client: conf(pki.ClientConfig(nil, colonForm(caA.Fingerprint()), "ignored.example"))},
		{name: "wrong pinned fingerprint", server: server, client: conf(pki.ClientConfig(nil, caB.Fingerprint(), "")), wantServerErr: errAny, wantClientErr: pki.ErrUntrusted},
		{name: "pin matches leaf not CA", server: server, client: conf(pki.ClientConfig(nil, pki.Fingerprint(parseCertPEM(t, n1.cert).Raw), "")), wantServerErr: errAny, wantClientErr: pki.ErrUntrusted},
		{
			name:          "pinned CA but server cert from another CA",
			server:        conf(pki.ServerConfig(foreignNode.cert, foreignNode.key, caA.CertPEM)),
			client:        conf(pki.ClientConfig(nil, caA.Fingerprint(), "")),
			wantServerErr: errAny,
			wantClientErr: pki.ErrUntrusted,
		},
		{name: "CA and matching pin", server: server, client: conf(pki.ClientConfig(caA.CertPEM, caA.Fingerprint(), "127.0.0.1"))},
		{name: "CA and mismatching pin", server: server, client: conf(pki.ClientConfig(caA.CertPEM, caB.Fingerprint(), "127.0.0.1")), wantServerErr: errAny, wantClientErr: pki.ErrUntrusted},
		{
			name:          "pinned CA refuses expired server cert",
			server:        conf(pki.ServerConfig(expired.cert, expired.key, caA.CertPEM)),
			client:        conf(pki.ClientConfig(nil, caA.Fingerprint(), "")),
			wantServerErr: errAny,
			wantClientErr: pki.ErrUntrusted,
		},
		{
			name:          "CA trust refuses expired server cert",
			server:        conf(pki.ServerConfig(expired.cert, expired.key, caA.CertPEM)),
			client:        conf(pki.ClientConfig(caA.CertPEM, "", "127.0.0.1")),
			wantServerErr: errAny,
			wantClientErr: errAny,
		},
		{name: "data-plane client cert accepted", server: server, client: withCert(conf(pki.ClientConfig(nil, caA.Fingerprint(), "")), dp), wantDataplane: "edge-1"},
		{name: "foreign client cert refused", server: server, client: withCert(conf(pki.ClientConfig(nil, caA.Fingerprint(), "")), foreignDP), wantServerErr: errAny, wantClientErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, tt.server, tt.client)
			checkErr(t, "server", res.serverErr, tt.wantServerErr)
			checkErr(t, "client", res.clientErr, tt.wantClientErr)
			if tt.wantDataplane != "" {
				name, ok := pki.DataplaneName(res.serverPeer)
				if !ok || name != tt.wantDataplane {
					t.Errorf("server saw data plane %q (%v), want %q", name, ok, tt.wantDataplane)
				}
			}
		})
	}
}

func TestServerConfigALPN(t *testing.T) {
	conf := configMaker(t)
	caA, _ := newCA(t, "A")
	n1 := issueNode(t, caA, "node-1", time.Now(), time.Hour)
	client := conf(pki.ClientConfig(caA.CertPEM, "", "localhost"))
	client.NextProtos = []string{"h2", "http/1.1"}
	res := handshake(t, conf(pki.ServerConfig(n1.cert, n1.key, caA.CertPEM)), client)
	checkErr(t, "server", res.serverErr, nil)
	checkErr(t, "client", res.clientErr, nil)
	if p := res.clientState.NegotiatedProtocol; p != "h2" {
		t.Errorf("negotiated %q, want h2", p)
	}
	if v := res.clientState.Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want TLS 1.3", v)
	}
}

func TestConfigErrors(t *testing.T) {
	caA, _ := newCA(t, "A")
	n1 := issueNode(t, caA, "node-1", time.Now(), time.Hour)
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{name: "client without trust anchor", err: second(pki.ClientConfig(nil, "", "x")), wantErr: pki.ErrNoTrustAnchor},
		{name: "client bad pin", err: second(pki.ClientConfig(nil, "sha256:zz", "")), wantErr: pki.ErrInvalidFingerprint},
		{name: "client bad CA PEM", err: second(pki.ClientConfig([]byte("junk"), "", "x")), wantErr: pki.ErrInvalidPEM},
		{name: "server bad CA PEM", err: second(pki.ServerConfig(n1.cert, n1.key, nil)), wantErr: pki.ErrInvalidPEM},
		{name: "peer server mismatched key", err: second(pki.PeerServerConfig(n1.cert, issueNode(t, caA, "n2", time.Now(), time.Hour).key, caA.CertPEM)), wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, "config", tt.err, tt.wantErr)
		})
	}
}

// errAny in a test table means any non-nil error is expected.
var errAny = errors.New("any error")

func checkErr(t *testing.T, side string, got, want error) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s: unexpected error: %v", side, got)
	case want != nil && got == nil:
		t.Errorf("%s: no error, want %v", side, want)
	case want != nil && !errors.Is(want, errAny) && !errors.Is(got, want):
		t.Errorf("%s: error = %v, want %v", side, got, want)
	}
}

func second[T any](_ T, err error) error { return err }

func colonForm(fp string) string {
	hx := fp[len("sha256:"):]
	out := make([]byte, 0, len(hx)*3/2)
	for i := 0; i < len(hx); i += 2 {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hx[i], hx[i+1])
	}
	return string(out)
}

func keyPairOf(t *testing.T, kp keyPair) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(kp.cert, kp.key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
