package mcp_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// certConfig is the fake configuration trusting client certificates by
// common name: "alice" is alice's, anything else is refused.
type certConfig struct{ *fakeConfig }

var _ pipeline.Config = certConfig{}

func (c certConfig) AgentByCert(chain []*x509.Certificate, _ time.Time) (*configv1.Agent, error) {
	if len(chain) > 0 && chain[0].Subject.CommonName == "alice" {
		return c.agents[aliceKey], nil
	}
	return nil, errors.New("the client certificate is not registered to any enabled agent")
}

// certBackend is fakeBackend whose Begin carries the connection's client
// certificates, as the data plane's does.
type certBackend struct{ *fakeBackend }

func (b certBackend) Begin(r *http.Request) *pipeline.Call {
	c := b.fakeBackend.Begin(r)
	if r.TLS != nil {
		c.PeerCertificates = r.TLS.PeerCertificates
	}
	return c
}

func TestClientCertificateAtTheEdge(t *testing.T) {
	cfg := certConfig{newFakeConfig(weatherTool)}
	b := certBackend{&fakeBackend{cfg: cfg, mode: configsyncv1.Mode_MODE_NORMAL, terminal: okResult}}
	h := mcpgw.NewHandler(b, testLogger(t))
	send := func(method, cn, session, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequestWithContext(t.Context(), method, "https://gw.example/mcp", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			r.Header.Set("Mcp-Session-Id", session)
		}
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
		if cn != "" {
			r.TLS.PeerCertificates = []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	rec := send(http.MethodPost, "alice", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`)
	sid := rec.Header().Get("Mcp-Session-Id")
	if rec.Code != http.StatusOK || sid == "" {
		t.Fatalf("initialize with alice's certificate: %d %s (session %q)", rec.Code, rec.Body, sid)
	}
	if rec := send(http.MethodPost, "alice", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "demo__weather") {
		t.Fatalf("tools/list with alice's certificate: %d %s", rec.Code, rec.Body)
	}
	for _, cn := range []string{"mallory", ""} {
		if rec := send(http.MethodPost, cn, "", `{"jsonrpc":"2.0","id":3,"method":"ping"}`); rec.Code != http.StatusUnauthorized {
			t.Fatalf("ping with certificate %q: %d %s, want 401", cn, rec.Code, rec.Body)
		}
	}
	if rec := send(http.MethodPost, "mallory", sid, `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`); rec.Code != http.StatusUnauthorized {
		t.Fatalf("another certificate on alice's session: %d %s, want 401", rec.Code, rec.Body)
	}
	rec = send(http.MethodPost, "alice", sid, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"demo__weather","arguments":{}}}`)
	calls := b.recorded()
	if len(calls) != 1 || len(calls[0].PeerCertificates) != 1 || calls[0].Credential != "" {
		t.Fatalf("tools/call reached the pipeline %d times, want once with the certificate and no bearer (%d %s)", len(calls), rec.Code, rec.Body)
	}
	if rec := send(http.MethodDelete, "alice", sid, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE with alice's certificate: %d %s, want 204", rec.Code, rec.Body)
	}
}
