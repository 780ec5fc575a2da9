package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestOriginAllowlist: through a real control plane and data plane, the
// MCP endpoint validates Origin on every method against the replicated
// setting mcp.allowed-origins, set with gwctl. A DNS-rebinding page (Host
// evil.example, Origin http://evil.example) gets 403 with a JSON-RPC
// error and nothing reaches the upstream; its refusal is audited for an
// identified agent and counted for an anonymous caller; an allowed origin
// and agents that send no Origin are served.
func TestOriginAllowlist(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__get_weather","arguments":{"city":"Oslo"}}}`
	type answer struct {
		status  int
		body    string
		session string
	}
	do := func(method, key, host string, header map[string]string, body string) answer {
		t.Helper()
		req, err := http.NewRequest(method, dp.URL+"/mcp", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		client := &http.Client{Timeout: harness.MCPTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return answer{resp.StatusCode, string(b), resp.Header.Get("Mcp-Session-Id")}
	}
	refused := func(what string, a answer) {
		t.Helper()
		var e struct {
			Error struct {
				Code    int               `json:"code"`
				Message string            `json:"message"`
				Data    map[string]string `json:"data"`
			} `json:"error"`
		}
		if a.status != http.StatusForbidden || json.Unmarshal([]byte(a.body), &e) != nil || e.Error.Data["reason"] != "origin_not_allowed" ||
			!strings.Contains(e.Error.Message, "gwctl settings set mcp.allowed-origins") {
			t.Errorf("%s: HTTP %d %s, want 403 with a JSON-RPC error, reason origin_not_allowed, saying what to do", what, a.status, a.body)
		}
	}
	upstreamCalls := func() int {
		t.Helper()
		calls, err := g.up.Calls()
		if err != nil {
			t.Fatal(err)
		}
		return len(calls)
	}

	// The default allows no browser origin; agents send none.
	refused("an origin before any is allowed", do(http.MethodPost, g.opsKey, "", map[string]string{"Origin": "https://app.example"}, call))
	if a := do(http.MethodPost, g.opsKey, "", nil, call); a.status != http.StatusOK || !strings.Contains(a.body, "Oslo") {
		t.Fatalf("an agent without Origin: HTTP %d %s", a.status, a.body)
	}

	// The operator allows one origin; it reaches the data plane with the
	// next snapshot.
	var set struct {
		Setting struct {
			Meta struct {
				Revision harness.Int64 `json:"revision"`
			} `json:"meta"`
		} `json:"setting"`
		Values []string `json:"values"`
	}
	if err := g.gwctl(t, "settings", "set", "mcp.allowed-origins", "HTTPS://App.Example,http://localhost:3000", "-o", "json").JSON(&set); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(set.Values) != "[http://localhost:3000 https://app.example]" {
		t.Errorf("stored values %v, want them canonical and sorted", set.Values)
	}
	if out := g.gwctl(t, "settings", "get").Stdout; !strings.Contains(out, "mcp.allowed-origins") || !strings.Contains(out, "https://app.example") {
		t.Errorf("settings get:\n%s", out)
	}
	awaitVersion(t, dp, uint64(set.Setting.Meta.Revision), 20*time.Second)

	if a := do(http.MethodPost, g.opsKey, "", map[string]string{"Origin": "https://app.example"}, call); a.status != http.StatusOK || !strings.Contains(a.body, "Oslo") {
		t.Fatalf("the allowed origin: HTTP %d %s", a.status, a.body)
	}
	init := do(http.MethodPost, g.opsKey, "", nil, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`)
	if init.session == "" {
		t.Fatalf("initialize: HTTP %d %s", init.status, init.body)
	}

	before := upstreamCalls()
	rebinding := map[string]string{"Origin": "http://evil.example"}
	refused("DNS rebinding: Origin matches Host", do(http.MethodPost, g.opsKey, "evil.example", rebinding, call))
	refused("a foreign origin without a credential", do(http.MethodPost, "", "evil.example", rebinding, call))
	refused("GET stream from a foreign origin", do(http.MethodGet, g.opsKey, "", map[string]string{"Origin": "https://evil.example", "Mcp-Session-Id": init.session}, ""))
	refused("DELETE from a foreign origin", do(http.MethodDelete, g.opsKey, "", map[string]string{"Origin": "https://evil.example", "Mcp-Session-Id": init.session}, ""))
	if after := upstreamCalls(); after != before {
		t.Errorf("%d refused requests reached the upstream", after-before)
	}
	// The session survived the foreign DELETE.
	if a := do(http.MethodPost, g.opsKey, "", map[string]string{"Mcp-Session-Id": init.session}, `{"jsonrpc":"2.0","id":2,"method":"ping"}`); a.status != http.StatusOK {
		t.Errorf("ping in the session after a foreign DELETE: HTTP %d %s", a.status, a.body)
	}

	// On the record: the identified agent's refusals one by one, the
	// anonymous one in metrics (and the refusal summary).
	records, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, r := range records {
		if r.Reason == "origin_not_allowed" {
			if r.Agent != "ops-agent" || r.Outcome != "refused" {
				t.Errorf("origin refusal recorded as %+v", r)
			}
			methods = append(methods, r.Method)
		}
	}
	if got := fmt.Sprint(methods); got != "[POST POST GET DELETE]" {
		t.Errorf("audited origin refusals %s, want the agent's four (the first before the setting)", got)
	}
	m, err := dp.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := m[`portcullis_dataplane_refusals_total{reason="origin_not_allowed"}`]; got != 5 {
		t.Errorf("origin refusals counted: %v, want 5 (four identified, one anonymous)", got)
	}
}
