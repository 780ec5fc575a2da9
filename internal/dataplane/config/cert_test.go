package config_test

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
)

const (
	payerSPIFFE   = "spiffe://test-cluster/agent/payer"
	retiredSPIFFE = "spiffe://test-cluster/agent/retired"
	sharedSPIFFE  = "spiffe://test-cluster/agent/shared"
)

// certFixture is the configtest snapshot with mTLS identity: the cluster CA
// in cluster_ca_pem and "corp-pki" as an mtls_authority source. payer holds
// payerSPIFFE and sharedSPIFFE, marketer holds sharedSPIFFE and the
// fingerprints of corpMarketer and selfSigned, the disabled retired holds
// retiredSPIFFE.
type certFixture struct {
	cluster, corp, unknown *configtest.CA
	corpMarketer           configtest.Issued
	selfSigned             configtest.Issued
	compiled               *config.Compiled
}

func newCertFixture(t *testing.T) *certFixture {
	t.Helper()
	f := &certFixture{
		cluster: configtest.NewCA(t, "cluster CA"),
		corp:    configtest.NewCA(t, "corp CA"),
		unknown: configtest.NewCA(t, "unknown CA"),
	}
	f.corpMarketer = f.corp.Issue(t, configtest.Leaf{Name: "marketer"})
	f.selfSigned = (*configtest.CA)(nil).Issue(t, configtest.Leaf{Name: "self"})

	s := configtest.Snapshot()
	s.ClusterCaPem = f.cluster.PEM
	s.IdentitySources = append(s.IdentitySources, configtest.MTLSAuthoritySource("corp-pki", f.corp.PEM))
	payer := configtest.Agent(t, s, "payer")
	payer.SpiffeIds = []string{payerSPIFFE, sharedSPIFFE}
	marketer := configtest.Agent(t, s, "marketer")
	marketer.SpiffeIds = []string{sharedSPIFFE}
	marketer.CertFingerprints = []string{config.Fingerprint(f.corpMarketer.Cert), config.Fingerprint(f.selfSigned.Cert)}
	configtest.Agent(t, s, "retired").SpiffeIds = []string{retiredSPIFFE}
	f.compiled = configtest.Compile(t, s)
	return f
}

func chain(certs ...configtest.Issued) []*x509.Certificate {
	out := make([]*x509.Certificate, len(certs))
	for i, c := range certs {
		out[i] = c.Cert
	}
	return out
}

func TestAgentByCert(t *testing.T) {
	f := newCertFixture(t)
	inter := f.cluster.Issue(t, configtest.Leaf{Name: "intermediate", CA: true})
	tests := []struct {
		name    string
		chain   []*x509.Certificate
		at      time.Time
		want    string // agent name; "" for a refusal
		wantErr string
	}{
		{name: "SPIFFE ID from the cluster CA", chain: chain(f.cluster.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})), want: "payer"},
		{name: "SPIFFE ID from an mtls_authority CA", chain: chain(f.corp.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})), want: "payer"},
		{name: "registered fingerprint", chain: chain(f.corpMarketer), want: "marketer"},
		{name: "through an intermediate", chain: chain(inter.AsCA().Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE}), inter), want: "payer"},
		{name: "intermediate missing from the chain", chain: chain(inter.AsCA().Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})), wantErr: "not trusted"},
		{name: "unknown CA", chain: chain(f.unknown.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})), wantErr: "does not chain to a trusted CA"},
		{name: "self-signed with a registered fingerprint", chain: chain(f.selfSigned), wantErr: "not trusted"},
		{name: "expired", chain: chain(f.cluster.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE,
			NotBefore: configtest.VersionTime.Add(-48 * time.Hour), NotAfter: configtest.VersionTime.Add(-time.Hour)})), wantErr: "expired"},
		{name: "not yet valid", chain: chain(f.cluster.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})),
			at: configtest.VersionTime.Add(-24 * time.Hour), wantErr: "expired or is not yet valid"},
		{name: "server auth only", chain: chain(f.cluster.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE,
			Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})), wantErr: "not valid for client authentication"},
		{name: "trusted but not registered", chain: chain(f.cluster.Issue(t, configtest.Leaf{SPIFFEID: "spiffe://test-cluster/agent/nobody"})), wantErr: "not registered to any enabled agent"},
		{name: "trusted without any identity", chain: chain(f.corp.Issue(t, configtest.Leaf{Name: "anonymous"})), wantErr: "not registered to any enabled agent"},
		{name: "disabled agent", chain: chain(f.cluster.Issue(t, configtest.Leaf{SPIFFEID: retiredSPIFFE})), wantErr: "not registered to any enabled agent"},
		{name: "SPIFFE ID of two agents", chain: chain(f.cluster.Issue(t, configtest.Leaf{SPIFFEID: sharedSPIFFE})), wantErr: "more than one agent"},
		{name: "no certificate", chain: nil, wantErr: "no client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.at
			if at.IsZero() {
				at = callAt
			}
			agent, err := f.compiled.AgentByCert(tt.chain, at)
			if tt.want != "" {
				if err != nil || agent.GetMeta().GetName() != tt.want {
					t.Fatalf("AgentByCert = %v, %v; want %s", agent.GetMeta().GetName(), err, tt.want)
				}
				return
			}
			if err == nil || agent != nil {
				t.Fatalf("AgentByCert = %v, nil; want a refusal", agent.GetMeta().GetName())
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q, want it to say %q", err, tt.wantErr)
			}
		})
	}
}

func TestAgentByCertMatchingTwoAgentsByDifferentIdentities(t *testing.T) {
	f := newCertFixture(t)
	s := configtest.Snapshot()
	s.ClusterCaPem = f.cluster.PEM
	leaf := f.cluster.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})
	configtest.Agent(t, s, "payer").SpiffeIds = []string{payerSPIFFE}
	configtest.Agent(t, s, "marketer").CertFingerprints = []string{config.Fingerprint(leaf.Cert)}
	c := configtest.Compile(t, s)
	if a, err := c.AgentByCert(chain(leaf), callAt); err == nil || !strings.Contains(err.Error(), "more than one agent") {
		t.Fatalf("AgentByCert = %v, %v; want refused as ambiguous", a.GetMeta().GetName(), err)
	}
}

func TestAgentByCertWithoutTrustAnchors(t *testing.T) {
	ca := configtest.NewCA(t, "cluster CA")
	s := configtest.Snapshot()
	configtest.Agent(t, s, "payer").SpiffeIds = []string{payerSPIFFE}
	c := configtest.Compile(t, s)
	leaf := ca.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE})
	if a, err := c.AgentByCert(chain(leaf), callAt); err == nil {
		t.Fatalf("AgentByCert = %v without any trusted CA; want a refusal", a.GetMeta().GetName())
	}
}

func TestCompileRefusesABadCA(t *testing.T) {
	s := configtest.Snapshot()
	s.ClusterCaPem = "not a certificate"
	s.IdentitySources = append(s.IdentitySources, configtest.MTLSAuthoritySource("corp-pki",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	_, err := config.Compile(configtest.Marshal(t, s))
	if err == nil {
		t.Fatal("a snapshot with unparseable CAs compiled")
	}
	for _, want := range []string{"cluster_ca_pem", `identity source "corp-pki": mtls_authority.ca_pem`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
