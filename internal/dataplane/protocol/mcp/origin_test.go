package mcp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
)

// TestOriginValidation: every method of the endpoint applies the
// mcp.allowed-origins setting. A request without Origin (an agent) goes on;
// an allowed origin goes on; any other Origin — including the DNS-rebinding
// case, whose Origin matches its own Host — is refused with 403 and a
// JSON-RPC error before anything runs. An identified caller's refusal is
// audited; an anonymous one is counted in the refusal summary.
func TestOriginValidation(t *testing.T) {
	const (
		call = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"Oslo"}}}`
		ping = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	)
	tests := []struct {
		name    string
		method  string
		token   string
		host    string
		header  map[string]string
		body    string
		allowed []string
		// want is the status; 403 means refused for its origin.
		want int
		// wantAudit: the refusal is an audit record (identified caller);
		// else it is counted as anonymous.
		wantAudit bool
	}{
		{name: "no Origin: an agent", token: aliceKey, body: call, want: 200},
		{name: "allowed origin", token: aliceKey, body: call, header: map[string]string{"Origin": "https://app.example"}, allowed: []string{"https://app.example"}, want: 200},
		{name: "allowed origin, other spelling", token: aliceKey, body: call, header: map[string]string{"Origin": "HTTPS://App.Example:443"}, allowed: []string{"https://app.example"}, want: 200},
		{name: "foreign origin", token: aliceKey, body: call, header: map[string]string{"Origin": "https://evil.example"}, allowed: []string{"https://app.example"}, want: 403, wantAudit: true},
		{name: "DNS rebinding: Origin matches Host", token: aliceKey, host: "evil.example", body: call, header: map[string]string{"Origin": "http://evil.example"}, want: 403, wantAudit: true},
		{name: "same host, other port", token: aliceKey, body: call, header: map[string]string{"Origin": "https://app.example:8443"}, allowed: []string{"https://app.example"}, want: 403, wantAudit: true},
		{name: "opaque origin", token: aliceKey, body: ping, header: map[string]string{"Origin": "null"}, want: 403, wantAudit: true},
		{name: "empty Origin header", token: aliceKey, body: ping, header: map[string]string{"Origin": ""}, want: 403, wantAudit: true},
		{name: "cross-site browser without Origin", token: aliceKey, body: ping, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403, wantAudit: true},
		{name: "foreign origin, no credential", body: call, header: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "foreign origin, wrong key", token: "pck_nope_nope", body: call, header: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "GET stream from a foreign origin", method: http.MethodGet, token: aliceKey, header: map[string]string{"Origin": "https://evil.example", "Mcp-Session-Id": "x"}, want: 403, wantAudit: true},
		{name: "DELETE from a foreign origin", method: http.MethodDelete, token: aliceKey, header: map[string]string{"Origin": "https://evil.example", "Mcp-Session-Id": "x"}, want: 403, wantAudit: true},
		// The origin decides before anything else is looked at.
		{name: "foreign origin, text/plain body", token: aliceKey, body: call, header: map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, want: 403, wantAudit: true},
		{name: "foreign origin, unsupported version", token: aliceKey, body: call, header: map[string]string{"Origin": "https://evil.example", "Mcp-Protocol-Version": "1999-01-01"}, want: 403, wantAudit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			anon := &anonCounter{}
			e := newEnv(t, mcpgw.WithAnonymousRefusals(anon))
			e.cfg.origins = tc.allowed
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			hr := httptest.NewRequestWithContext(t.Context(), method, "http://gw.example/mcp", strings.NewReader(tc.body))
			if tc.host != "" {
				hr.Host = tc.host
			}
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("Accept", "application/json, text/event-stream")
			if tc.token != "" {
				hr.Header.Set("Authorization", "Bearer "+tc.token)
			}
			for k, v := range tc.header {
				hr.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, hr)
			assertNoEcho(t, rec)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
			if tc.want != http.StatusForbidden {
				if n := len(e.b.recorded()); n != 1 {
					t.Fatalf("%d calls reached the terminal, want the one allowed", n)
				}
				return
			}
			if n := len(e.b.recorded()); n != 0 {
				t.Fatalf("a refused request reached the terminal (%d calls)", n)
			}
			var body struct {
				ID    json.RawMessage `json:"id"`
				Error struct {
					Code    int               `json:"code"`
					Message string            `json:"message"`
					Data    map[string]string `json:"data"`
				} `json:"error"`
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want a JSON-RPC error", ct)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != -32003 ||
				body.Error.Data["reason"] != "origin_not_allowed" || !strings.Contains(body.Error.Message, "gwctl settings set mcp.allowed-origins") {
				t.Fatalf("body %s: want a JSON-RPC error -32003 with reason origin_not_allowed and what to do (%v)", rec.Body, err)
			}
			records := e.b.records()
			if tc.wantAudit {
				if len(records) != 1 || records[0].GetAgent() != "alice" || records[0].GetReason() != "origin_not_allowed" ||
					records[0].GetOutcome() != "refused" || records[0].GetMethod() != method {
					t.Fatalf("audit records %v, want one refused record of alice's %s with reason origin_not_allowed", records, method)
				}
				if anon.counted("origin_not_allowed") != 0 {
					t.Error("an identified caller's refusal was also counted as anonymous")
				}
				return
			}
			if len(records) != 0 {
				t.Fatalf("an anonymous refusal was audited one by one: %v", records)
			}
			if anon.counted("origin_not_allowed") != 1 || anon.count() != 0 {
				t.Fatalf("anonymous refusals %v, want one origin_not_allowed and no unauthenticated", anon.reasons)
			}
		})
	}
}
