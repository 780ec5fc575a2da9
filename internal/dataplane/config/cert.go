package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/clusterpin"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// maxCertChain bounds the chain a client may present (leaf included).
const maxCertChain = 8

// Refusals of a client certificate. The messages are safe for the caller:
// they name no CA, agent or identity.
var (
	errCertNone         = errors.New("no client certificate was presented")
	errCertUntrusted    = errors.New("the client certificate is not trusted: it does not chain to a trusted CA for client authentication")
	errCertExpired      = errors.New("the client certificate is not trusted: it has expired or is not yet valid")
	errCertUsage        = errors.New("the client certificate is not trusted: it is not valid for client authentication")
	errCertUnregistered = errors.New("the client certificate is not registered to any enabled agent")
	errCertAmbiguous    = errors.New("the client certificate is registered to more than one agent")
)

// AgentByCert authenticates a client certificate chain (leaf first, as the
// TLS handshake presented it). The leaf must verify, at now and for client
// authentication, against the snapshot's trust anchors: the cluster CA and
// every mtls_authority identity source's CA certificates, with the rest of
// the chain as intermediates. Then the leaf must be registered to exactly
// one agent: one of its URI SANs equals one of the agent's spiffe_ids, or
// its fingerprint ("sha256:<hex of the DER>") is one of the agent's
// cert_fingerprints. A registered fingerprint does not stand in for the
// chain: a self-signed certificate is refused unless its own certificate is
// configured as a CA. A certificate matching two agents is refused, and so
// is a disabled agent. The error's message is safe for the caller.
func (c *Compiled) AgentByCert(chain []*x509.Certificate, now time.Time) (*configv1.Agent, error) {
	if len(chain) == 0 || chain[0] == nil {
		return nil, errCertNone
	}
	// Without anchors Verify would fall back to the system roots: never.
	if c.certRoots == nil || len(chain) > maxCertChain {
		return nil, errCertUntrusted
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		if ic != nil {
			inter.AddCert(ic)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         c.certRoots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, certRefusal(err)
	}

	var agent *configv1.Agent
	match := func(key string) error {
		a, ok := c.certAgents[key]
		switch {
		case !ok:
			return nil
		case a == nil || (agent != nil && agent != a):
			return errCertAmbiguous
		}
		agent = a
		return nil
	}
	for _, u := range leaf.URIs {
		if err := match(u.String()); err != nil {
			return nil, err
		}
	}
	if err := match(Fingerprint(leaf)); err != nil {
		return nil, err
	}
	if agent == nil || agent.GetDisabled() {
		return nil, errCertUnregistered
	}
	return agent, nil
}

// Fingerprint is a certificate's registered form: "sha256:" and the
// lowercase hex SHA-256 of its DER.
func Fingerprint(cert *x509.Certificate) string { return clusterpin.Fingerprint(cert.Raw) }

// certRefusal turns a verification error into a refusal safe for the
// caller.
func certRefusal(err error) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			return errCertExpired
		case x509.IncompatibleUsage:
			return errCertUsage
		}
	}
	return errCertUntrusted
}

// indexCerts builds the client-certificate trust anchors and indexes
// agents' SPIFFE IDs and certificate fingerprints. A CA that does not parse
// refuses the snapshot (the control plane validates them, so it is
// corruption). An identity registered to two agents is ambiguous: it
// authenticates neither (nil in the index) rather than refusing the whole
// snapshot, as for JWT subjects.
func (b *builder) indexCerts() {
	pool := x509.NewCertPool()
	anchors := 0
	if p := b.snap.GetClusterCaPem(); p != "" {
		certs, err := parseCerts([]byte(p))
		if err != nil {
			b.problems.add("cluster_ca_pem: %v", err)
		}
		for _, ca := range certs {
			pool.AddCert(ca)
			anchors++
		}
	}
	for _, s := range b.snap.GetIdentitySources() {
		m := s.GetMtlsAuthority()
		if m == nil {
			continue
		}
		certs, err := parseCerts([]byte(m.GetCaPem()))
		if err != nil {
			b.problems.add("identity source %q: mtls_authority.ca_pem: %v", s.GetMeta().GetName(), err)
			continue
		}
		for _, ca := range certs {
			pool.AddCert(ca)
			anchors++
		}
	}
	if anchors > 0 {
		b.c.certRoots = pool
	}

	b.c.certAgents = map[string]*configv1.Agent{}
	add := func(a *configv1.Agent, key string) {
		if prev, dup := b.c.certAgents[key]; dup && prev != a {
			b.c.certAgents[key] = nil
			return
		}
		b.c.certAgents[key] = a
	}
	for _, a := range b.snap.GetAgents() {
		for _, id := range a.GetSpiffeIds() {
			if id != "" {
				add(a, id)
			}
		}
		for _, fp := range a.GetCertFingerprints() {
			// SPIFFE IDs start "spiffe://", fingerprints "sha256:": one
			// index holds both without collisions.
			if fp = strings.ToLower(fp); strings.HasPrefix(fp, "sha256:") {
				add(a, fp)
			}
		}
	}
}

// parseCerts parses every CERTIFICATE block of a PEM bundle, skipping other
// blocks and text around them exactly as the control plane's validation
// does (so a bundle it accepted is never refused here); a certificate that
// does not parse, or none at all, is an error.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}
