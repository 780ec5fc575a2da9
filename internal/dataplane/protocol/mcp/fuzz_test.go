package mcp_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// FuzzPost feeds arbitrary bodies to the endpoint: it must never panic,
// and must answer with a known status and, when it answers with a body, a
// single JSON-RPC response, or for a batch (a 2025-03-26 caller's, which a
// request without MCP-Protocol-Version is) an array of them.
func FuzzPost(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `[]`, `null`, `"x"`, `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"2025-11-25"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":null}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"x"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__weather","arguments":null}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, `{"jsonrpc":"2.0","id":1e400,"method":"ping"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"initialize"},5]`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":\xff}",
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"demo__p"},"argument":{"name":"a","value":"b"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":{}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"warning"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"demo__x://y"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/unsubscribe","params":{"uri":7}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`{"jsonrpc":"2.0","id":"pcs-1","result":{}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e := newEnv(t)
		rec := e.do(t, req{token: aliceKey, body: body})
		allowed := []int{http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge}
		if !slices.Contains(allowed, rec.Code) {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		if rec.Code == http.StatusAccepted {
			if rec.Body.Len() != 0 {
				t.Fatalf("202 with a body for %q", body)
			}
			return
		}
		one := func(b []byte) bool {
			var r rpcResp
			return json.Unmarshal(b, &r) == nil && r.JSONRPC == "2.0" && (r.Error == nil) != (r.Result == nil)
		}
		if one(rec.Body.Bytes()) {
			return
		}
		var batch []json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &batch); err != nil || rec.Code != http.StatusOK || len(batch) == 0 {
			t.Fatalf("neither one JSON-RPC response nor a batch of them for %q: %s", body, rec.Body)
		}
		for _, b := range batch {
			if !one(b) {
				t.Fatalf("batch entry %s is not a JSON-RPC response (body %q)", b, body)
			}
		}
	})
}
