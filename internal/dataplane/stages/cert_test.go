package stages_test

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
)

const payerSPIFFE = "spiffe://test-cluster/agent/payer"

func TestAuthenticateByClientCertificate(t *testing.T) {
	cluster, unknown := configtest.NewCA(t, "cluster CA"), configtest.NewCA(t, "unknown CA")
	s := configtest.Snapshot()
	s.ClusterCaPem = cluster.PEM
	configtest.Agent(t, s, "payer").SpiffeIds = []string{payerSPIFFE}
	cfg := configtest.Compile(t, s)

	payerCert := []*x509.Certificate{cluster.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE}).Cert}
	tests := []struct {
		name       string
		config     pipeline.Config
		credential string
		certs      []*x509.Certificate
		wantAgent  string
		wantReason pipeline.Reason
		wantMsg    string
	}{
		{name: "registered certificate", config: cfg, certs: payerCert, wantAgent: "payer"},
		{name: "untrusted certificate", config: cfg,
			certs:      []*x509.Certificate{unknown.Issue(t, configtest.Leaf{SPIFFEID: payerSPIFFE}).Cert},
			wantReason: pipeline.ReasonUnauthenticated, wantMsg: "the client certificate was refused: the client certificate is not trusted"},
		{name: "unregistered certificate", config: cfg,
			certs:      []*x509.Certificate{cluster.Issue(t, configtest.Leaf{SPIFFEID: "spiffe://test-cluster/agent/nobody"}).Cert},
			wantReason: pipeline.ReasonUnauthenticated, wantMsg: "the client certificate was refused: the client certificate is not registered to any enabled agent"},
		{name: "the bearer decides over a certificate", config: cfg, credential: configtest.MarketerKey, certs: payerCert, wantAgent: "marketer"},
		{name: "a refused bearer is not rescued by a certificate", config: cfg, credential: "pck_0123456789abcdef_wrong", certs: payerCert,
			wantReason: pipeline.ReasonUnauthenticated, wantMsg: "a valid API key is required"},
		{name: "configuration without certificate trust", config: newFake(), certs: payerCert,
			wantReason: pipeline.ReasonUnauthenticated, wantMsg: "the client certificate was refused: the client certificate is not trusted"},
		{name: "neither bearer nor certificate", config: cfg,
			wantReason: pipeline.ReasonUnauthenticated, wantMsg: "a valid API key is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := fakeCall(tt.config, configtest.BalanceAction)
			call.Start = configtest.VersionTime
			call.Credential, call.PeerCertificates = tt.credential, tt.certs
			term := &terminal{}
			_, err := stages.Authenticate{}.Handle(context.Background(), call, term.handle)
			msg := wantRefusal(t, err, tt.wantReason)
			if term.reached != (tt.wantReason == "") {
				t.Errorf("next reached = %v", term.reached)
			}
			if got := call.Agent.GetMeta().GetName(); got != tt.wantAgent {
				t.Errorf("call.Agent = %q, want %q", got, tt.wantAgent)
			}
			if !strings.HasPrefix(msg, tt.wantMsg) {
				t.Errorf("message = %q, want it to start %q", msg, tt.wantMsg)
			}
		})
	}
}
