package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestProtocol20250326OverRawHTTP: a client speaking 2025-03-26 over plain
// HTTP, as deployed clients still do: it negotiates 2025-03-26, sends no
// MCP-Protocol-Version header, and POSTs a JSON-RPC batch, which that
// version allows. Each message runs through the pipeline on its own (and
// is audited on its own); the answer is the array of the requests'
// responses. A batch from a later version is refused with a clear error.
func TestProtocol20250326OverRawHTTP(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	post := func(header map[string]string, body string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, dp.URL+"/mcp", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+g.opsKey)
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
		return resp.StatusCode, resp.Header, string(b)
	}

	status, h, body := post(nil, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	session := h.Get("Mcp-Session-Id")
	if status != http.StatusOK || session == "" || !strings.Contains(body, `"protocolVersion":"2025-03-26"`) {
		t.Fatalf("initialize: HTTP %d %s (session %q)", status, body, session)
	}
	inSession := map[string]string{"Mcp-Session-Id": session}
	if status, _, body := post(inSession, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: HTTP %d %s", status, body)
	}

	before, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	batch := `[
		{"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"demo__get_weather","arguments":{"city":"Oslo"}}},
		{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x","progress":1}},
		{"jsonrpc":"2.0","id":"l","method":"tools/list"},
		{"jsonrpc":"2.0","id":"p","method":"ping"}
	]`
	status, h, body = post(inSession, batch)
	if status != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("batch: HTTP %d %s %s", status, h.Get("Content-Type"), body)
	}
	var answers []struct {
		ID     string          `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &answers); err != nil {
		t.Fatalf("batch answer %s is not an array of responses: %v", body, err)
	}
	var ids []string
	for _, a := range answers {
		ids = append(ids, a.ID)
		if a.Error != nil {
			t.Errorf("response %s: error %s", a.ID, a.Error)
		}
	}
	if fmt.Sprint(ids) != "[w l p]" {
		t.Fatalf("batch answered ids %v, want [w l p] (the notification gets none): %s", ids, body)
	}
	if !strings.Contains(string(answers[0].Result), "Oslo") {
		t.Errorf("weather: %s", answers[0].Result)
	}
	// 2025-03-26 has no outputSchema or tool titles.
	if strings.Contains(string(answers[1].Result), "outputSchema") || !strings.Contains(string(answers[1].Result), actionWeather) {
		t.Errorf("tools/list in 2025-03-26's shape: %s", answers[1].Result)
	}
	after, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, r := range after[len(before):] {
		if r.Agent == "ops-agent" {
			methods = append(methods, r.Method)
		}
	}
	if fmt.Sprint(methods) != "[tools/call tools/list ping]" {
		t.Errorf("audited %v, want one record per request of the batch", methods)
	}

	// A caller of a later version cannot batch.
	calls, err := g.up.Calls()
	if err != nil {
		t.Fatal(err)
	}
	status, _, body = post(map[string]string{"Mcp-Protocol-Version": "2025-06-18"}, batch)
	if status != http.StatusBadRequest || !strings.Contains(body, "batches are part of MCP 2025-03-26 only") {
		t.Errorf("a 2025-06-18 batch: HTTP %d %s, want 400 saying batches are 2025-03-26 only", status, body)
	}
	if again, _ := g.up.Calls(); len(again) != len(calls) {
		t.Error("a refused batch reached the upstream")
	}
}
