package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/clusterpin"
)

// Sentinel errors reported by TLS verification callbacks and config
// builders.
var (
	// ErrNotNode reports a verified peer certificate without a node URI SAN.
	ErrNotNode = errors.New("peer certificate does not carry a control-plane node identity")
	// ErrUntrusted reports a peer chain that does not lead to a trusted CA.
	ErrUntrusted = errors.New("peer certificate is not issued by the trusted cluster CA")
	// ErrNoTrustAnchor reports a ClientConfig call with neither a CA
	// certificate nor a pinned fingerprint.
	ErrNoTrustAnchor = errors.New("no CA certificate or pinned CA fingerprint given")
)

// serverProtos are the ALPN protocols offered by server configurations.
var serverProtos = []string{"h2", "http/1.1"}

// keyPair builds a tls.Certificate whose chain is [leaf, CA] and the pool of
// the CA certificates in caPEM.
func keyPair(certPEM, keyPEM, caPEM []byte) (tls.Certificate, *x509.CertPool, error) {
	cas, err := parseCertificates(caPEM, "CA certificate")
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse certificate: %w", err)
	}
	pair.Leaf = leaf
	// Append the issuing CA unless certPEM already carried it.
	for _, c := range cas {
		if !bytes.Equal(leaf.RawIssuer, c.RawSubject) || leaf.CheckSignatureFrom(c) != nil {
			continue
		}
		present := false
		for _, der := range pair.Certificate[1:] {
			if bytes.Equal(der, c.Raw) {
				present = true
			}
		}
		if !present {
			pair.Certificate = append(pair.Certificate, c.Raw)
		}
		break
	}
	return pair, pool, nil
}

// ServerConfig returns a TLS 1.3 server configuration presenting the node
// certificate (chain [leaf, CA]). Client certificates are requested and,
// when given, must chain to caPEM; clients without one are let through so
// API callers can authenticate with bearer tokens instead.
func ServerConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pair, pool, err := keyPair(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("server TLS config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		NextProtos:   serverProtos,
	}, nil
}

// PeerServerConfig returns a TLS 1.3 server configuration for Raft and
// node-to-node calls: the client must present a certificate that chains to
// caPEM and carries a node URI SAN.
func PeerServerConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pair, pool, err := keyPair(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("peer server TLS config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   serverProtos,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 {
				return ErrUntrusted
			}
			return requireNode(cs.PeerCertificates[0])
		},
	}, nil
}

// PeerClientConfig returns a TLS 1.3 client configuration for dialing
// another control-plane node by address. It presents the node certificate
// and accepts a server whose certificate chains to caPEM, is valid for
// server auth and carries a node URI SAN. Host names are not checked.
func PeerClientConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pair, pool, err := keyPair(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("peer client TLS config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		// The standard verification is replaced by VerifyConnection, which
		// checks the chain against pool without a host name.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf, err := verifyChain(cs.PeerCertificates, pool)
			if err != nil {
				return err
			}
			return requireNode(leaf)
		},
	}, nil
}

// ClientConfig returns a TLS 1.3 client configuration for gwctl and data
// planes talking to the control-plane API.
//
// With caPEM and no pin, the server is verified normally against caPEM only
// (not the system roots), including its host name against serverName.
//
// With pinnedFingerprint and no caPEM, the rule is: among the certificates
// the server sends after its leaf, there must be one, C, whose SHA-256
// fingerprint equals the pin and which is a CA certificate; the leaf must
// verify, for server auth at the current time, with C as the only root and
// the other sent certificates as intermediates; and the leaf must carry a
// node URI SAN. The host name is not checked in this mode: the pin, not a
// name, identifies the cluster, and every server certificate the cluster
// CA issues is a node certificate.
//
// With both, the server is verified normally against caPEM with host name
// check, and additionally the root of a verified chain must have the pinned
// fingerprint.
func ClientConfig(caPEM []byte, pinnedFingerprint string, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: serverName}
	var pin []byte
	if pinnedFingerprint != "" {
		p, err := ParseFingerprint(pinnedFingerprint)
		if err != nil {
			return nil, fmt.Errorf("client TLS config: pinned fingerprint: %w", err)
		}
		pin = p
	}
	switch {
	case len(caPEM) > 0:
		cas, err := parseCertificates(caPEM, "CA certificate")
		if err != nil {
			return nil, fmt.Errorf("client TLS config: %w", err)
		}
		pool := x509.NewCertPool()
		for _, c := range cas {
			pool.AddCert(c)
		}
		cfg.RootCAs = pool
		if pin != nil {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				for _, chain := range cs.VerifiedChains {
					if clusterpin.Matches(chain[len(chain)-1], pin) {
						return nil
					}
				}
				return fmt.Errorf("%w: server chain root does not match pinned fingerprint", ErrUntrusted)
			}
		}
	case pin != nil:
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, pin)
		}
	default:
		return nil, fmt.Errorf("client TLS config: %w", ErrNoTrustAnchor)
	}
	return cfg, nil
}

// verifyPinned implements the pinned-fingerprint rule of ClientConfig:
// clusterpin's chain check, and the leaf must be a node certificate.
func verifyPinned(peer []*x509.Certificate, pin []byte) error {
	leaf, err := clusterpin.VerifyPinned(peer, pin)
	if err != nil {
		return fmt.Errorf("%w (%w)", ErrUntrusted, err)
	}
	return requireNode(leaf)
}

// verifyChain verifies peer[0] for server auth against roots, using the
// remaining certificates as intermediates, and returns the leaf.
func verifyChain(peer []*x509.Certificate, roots *x509.CertPool) (*x509.Certificate, error) {
	if len(peer) == 0 {
		return nil, fmt.Errorf("%w: no certificate presented", ErrUntrusted)
	}
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	_, err := peer[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   time.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return peer[0], nil
}

func requireNode(leaf *x509.Certificate) error {
	if _, ok := NodeID(leaf); !ok {
		return ErrNotNode
	}
	return nil
}
