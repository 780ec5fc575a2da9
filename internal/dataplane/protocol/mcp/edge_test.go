package mcp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
)

// TestEdgeRules: requests the endpoint refuses before it reads or judges
// them, and that never reach the pipeline or an upstream.
func TestEdgeRules(t *testing.T) {
	const call = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"%s"}}}`
	withCity := func(city string) string { return strings.Replace(call, "%s", city, 1) }
	for _, tc := range []struct {
		name    string
		body    string
		headers http.Header
		want    int
		wantMsg string
	}{
		{name: "two Authorization headers", body: withCity("Oslo"),
			headers: http.Header{"Authorization": {"Bearer " + aliceKey, "Bearer " + bobKey}}, want: 400, wantMsg: "Authorization appears more than once"},
		{name: "two Mcp-Name headers", body: withCity("Oslo"),
			headers: http.Header{"Mcp-Name": {"demo__weather", "demo__pay"}}, want: 400, wantMsg: "Mcp-Name appears more than once"},
		{name: "two user tokens", body: withCity("Oslo"),
			headers: http.Header{"Portcullis-User-Token": {"a", "b"}}, want: 400, wantMsg: "Portcullis-User-Token appears more than once"},
		{name: "text/plain body", body: withCity("Oslo"),
			headers: http.Header{"Content-Type": {"text/plain"}}, want: 415, wantMsg: "application/json"},
		{name: "form body", body: withCity("Oslo"),
			headers: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, want: 415},
		{name: "latin-1 JSON", body: withCity("Oslo"),
			headers: http.Header{"Content-Type": {"application/json; charset=iso-8859-1"}}, want: 415},
		{name: "no content type", body: withCity("Oslo"),
			headers: http.Header{"Content-Type": {""}}, want: 415},
		{name: "forwarding loop", body: withCity("Oslo"),
			headers: http.Header{"Portcullis-Hop": {"dp-x, dp-self"}}, want: http.StatusLoopDetected, wantMsg: "forwarding loop"},
		{name: "too many hops", body: withCity("Oslo"),
			headers: http.Header{"Portcullis-Hop": {"a,b,c,d,e,f,g,h,i"}}, want: 400},
		{name: "invalid UTF-8 in an argument", body: withCity("Os\xfflo"), want: 400, wantMsg: "not valid UTF-8"},
		{name: "lone surrogate in an argument", body: withCity(`Os\ud800lo`), want: 400, wantMsg: "lone surrogate"},
		{name: "deeply nested arguments", body: strings.Replace(call, `"%s"`, strings.Repeat("[", 100)+strings.Repeat("]", 100), 1), want: 400, wantMsg: "deeper than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, mcpgw.WithHopID("dp-self"))
			hr := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "http://gw.example/mcp", strings.NewReader(tc.body))
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("Accept", "application/json, text/event-stream")
			hr.Header.Set("Authorization", "Bearer "+aliceKey)
			for k, vs := range tc.headers {
				hr.Header.Del(k)
				for _, v := range vs {
					hr.Header.Add(k, v)
				}
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, hr)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
			r := decode(t, rec)
			if r.Error == nil || !strings.Contains(r.Error.Message, tc.wantMsg) {
				t.Fatalf("body %s, want a JSON-RPC error saying %q", rec.Body, tc.wantMsg)
			}
			if n := len(e.b.recorded()); n != 0 {
				t.Fatalf("the refused request reached the backend (%d calls)", n)
			}
		})
	}

	// Accepted: a chain of other gateways, and escaped surrogate pairs.
	e := newEnv(t, mcpgw.WithHopID("dp-self"))
	rec := e.do(t, req{token: aliceKey, body: withCity(`Oslo \ud83d\ude42`), header: map[string]string{"Portcullis-Hop": "dp-a, dp-b"}})
	if rec.Code != http.StatusOK || len(e.b.recorded()) != 1 {
		t.Fatalf("a clean call: status %d (%s), %d backend calls", rec.Code, rec.Body, len(e.b.recorded()))
	}
	if got := e.b.recorded()[0].Hops; strings.Join(got, ",") != "dp-a,dp-b" {
		t.Fatalf("call hops %q, want the incoming chain", got)
	}
}
