package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// TestBatches: a 2025-03-26 caller may POST a JSON array; each message is
// handled (and audited) on its own, and the answer is an array of the
// responses to its requests, in order. Later versions are refused with a
// clear error.
func TestBatches(t *testing.T) {
	const (
		ping     = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
		call     = `{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"Oslo"}}}`
		unknown  = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo__nope","arguments":{}}}`
		notify   = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
		init     = `{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}`
		modern   = `{"jsonrpc":"2.0","id":5,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
		badParse = `{"jsonrpc":"1.0","id":6,"method":"ping"}`
	)
	type entry struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	tests := []struct {
		name       string
		token      string
		header     map[string]string
		session    string // "2025-03-26" or "2025-06-18": open one of that version
		body       string
		wantStatus int
		// want are the entries' ids and what each holds: "result", or an
		// error message fragment.
		want      [][2]string
		wantCalls int
		// wantAudited are the methods of the audit records, in order.
		wantAudited string
	}{
		{name: "requests, a notification and refused members", body: "[" + strings.Join([]string{ping, call, notify, unknown, init, modern, badParse}, ",") + "]",
			wantStatus: 200, wantCalls: 2, wantAudited: "[ping tools/call tools/call]", want: [][2]string{
				{"1", "result"}, {`"c"`, "result"}, {"3", "no tool"}, {"4", "initialize cannot be part of a batch"},
				{"5", "2025-03-26 only"}, {"6", "jsonrpc must be"},
			}},
		{name: "explicit 2025-03-26 header", header: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, body: "[" + ping + "]",
			wantStatus: 200, wantAudited: "[ping]", want: [][2]string{{"1", "result"}}},
		{name: "in a 2025-03-26 session", session: "2025-03-26", body: "[" + ping + "," + call + "]",
			wantStatus: 200, wantCalls: 1, wantAudited: "[ping tools/call]", want: [][2]string{{"1", "result"}, {`"c"`, "result"}}},
		{name: "only notifications", body: "[" + notify + "," + notify + "]", wantStatus: 202},
		{name: "a 2025-06-18 caller", header: map[string]string{"Mcp-Protocol-Version": "2025-06-18"}, body: "[" + ping + "]", wantStatus: 400},
		{name: "in a 2025-06-18 session", session: "2025-06-18", body: "[" + ping + "]", wantStatus: 400},
		{name: "a 2025-11-25 caller", header: map[string]string{"Mcp-Protocol-Version": "2025-11-25"}, body: "[" + ping + "]", wantStatus: 400},
		{name: "too many", body: "[" + strings.Repeat(ping+",", 32) + ping + "]", wantStatus: 400},
		{name: "anonymous", token: "-", body: "[" + ping + "]", wantStatus: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			token := aliceKey
			if tc.token == "-" {
				token = "pck_nope_nope"
			}
			sid := ""
			if tc.session != "" {
				rec := e.do(t, req{token: aliceKey, body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + tc.session + `"}}`})
				sid = rec.Header().Get("Mcp-Session-Id")
			}
			before := len(e.b.records())
			rec := e.do(t, req{token: token, session: sid, header: tc.header, body: tc.body})
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.wantStatus, rec.Body)
			}
			switch tc.wantStatus {
			case http.StatusAccepted:
				if rec.Body.Len() != 0 {
					t.Fatalf("202 with a body: %s", rec.Body)
				}
				return
			case http.StatusBadRequest:
				r := decode(t, rec)
				if r.Error == nil || r.Error.Code != -32600 || len(e.b.recorded()) != 0 {
					t.Fatalf("body %s, want one -32600 error and nothing run", rec.Body)
				}
				if strings.HasPrefix(tc.name, "too") {
					return
				}
				if !strings.Contains(r.Error.Message, "send one JSON-RPC message per POST") {
					t.Fatalf("message %q does not say what to do", r.Error.Message)
				}
				return
			case http.StatusUnauthorized:
				return
			}
			var entries []entry
			if err := json.Unmarshal(rec.Body.Bytes(), &entries); err != nil {
				t.Fatalf("body %s is not an array of responses: %v", rec.Body, err)
			}
			if len(entries) != len(tc.want) {
				t.Fatalf("%d entries, want %d: %s", len(entries), len(tc.want), rec.Body)
			}
			for i, w := range tc.want {
				got := entries[i]
				if string(got.ID) != w[0] {
					t.Errorf("entry %d has id %s, want %s", i, got.ID, w[0])
				}
				if w[1] == "result" {
					if got.Result == nil || got.Error != nil {
						t.Errorf("entry %d: %+v, want a result", i, got)
					}
				} else if got.Error == nil || !strings.Contains(got.Error.Message, w[1]) {
					t.Errorf("entry %d: %+v, want an error about %q", i, got, w[1])
				}
			}
			if n := len(e.b.recorded()); n != tc.wantCalls {
				t.Errorf("%d tool calls reached the terminal, want %d", n, tc.wantCalls)
			}
			// Each request that ran is audited on its own.
			var methods []string
			for _, r := range e.b.records()[before:] {
				methods = append(methods, r.GetMethod())
			}
			if got := fmt.Sprint(methods); got != tc.wantAudited {
				t.Errorf("audited %s, want %s", got, tc.wantAudited)
			}
		})
	}
}

// TestShapeOf20250326: a caller speaking 2025-03-26 (no
// MCP-Protocol-Version header and no session, or a session that negotiated
// it) gets tools without outputSchema and title, and tool results without
// structuredContent; a later version's caller gets them as the upstream
// sent them.
func TestShapeOf20250326(t *testing.T) {
	results := map[string]string{
		"structured and content": `{"content":[{"type":"text","text":"sunny"}],"structuredContent":{"t":21}}`,
		"structured only":        `{"content":[],"structuredContent":{"t":21}}`,
		"resource link":          `{"content":[{"type":"resource_link","uri":"file:///r.txt","name":"r.txt"}]}`,
	}
	want20250326 := map[string]string{
		"structured and content": `{"content":[{"type":"text","text":"sunny"}]}`,
		"structured only":        `{"content":[{"text":"{\"t\":21}","type":"text"}]}`,
		"resource link":          `{"content":[{"text":"resource r.txt: file:///r.txt","type":"text"}]}`,
	}
	for _, version := range []string{"2025-03-26", "2025-06-18"} {
		for _, how := range []string{"header", "session"} {
			t.Run(version+" by "+how, func(t *testing.T) {
				e := newEnv(t)
				r := req{token: aliceKey}
				switch how {
				case "header":
					if version != "2025-03-26" { // 2025-03-26 predates the header
						r.header = map[string]string{"Mcp-Protocol-Version": version}
					}
				case "session":
					rec := e.do(t, req{token: aliceKey, body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + version + `"}}`})
					r.session = rec.Header().Get("Mcp-Session-Id")
				}
				r.body = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
				var listed struct {
					Tools []listedTool `json:"tools"`
				}
				if err := json.Unmarshal(decode(t, e.do(t, r)).Result, &listed); err != nil {
					t.Fatal(err)
				}
				for _, tool := range listed.Tools {
					if tool.Name != "demo__weather" {
						continue
					}
					hasNew := tool.OutputSchema != nil || tool.Title != ""
					if hasNew != (version != "2025-03-26") {
						t.Errorf("weather listed as %+v: outputSchema/title present %v for %s", tool, hasNew, version)
					}
				}
				for name, body := range results {
					e.b.terminal = func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
						return &pipeline.Result{Body: json.RawMessage(body)}, nil
					}
					r.body = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"Oslo"}}}`
					got := string(decode(t, e.do(t, r)).Result)
					want := body
					if version == "2025-03-26" {
						want = want20250326[name]
					}
					if got != want {
						t.Errorf("%s: result %s, want %s", name, got, want)
					}
				}
			})
		}
	}
}

// TestDiscoverCapabilities: a 2026-07-28 caller is promised
// tools/list_changed (on a subscriptions/listen stream), and, when no
// upstream it may use offers more, nothing more.
func TestDiscoverCapabilities(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, req{token: aliceKey, header: modernHeaders("server/discover", ""),
		body: `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{` + modernMeta + `}}`})
	var res struct {
		SupportedVersions []string                   `json:"supportedVersions"`
		Capabilities      map[string]json.RawMessage `json:"capabilities"`
	}
	if err := json.Unmarshal(decode(t, rec).Result, &res); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.SupportedVersions); got != "[2026-07-28 2025-11-25 2025-06-18 2025-03-26]" {
		t.Errorf("supportedVersions %s", got)
	}
	if string(res.Capabilities["tools"]) != `{"listChanged":true}` || string(res.Capabilities["resources"]) != "{}" ||
		string(res.Capabilities["prompts"]) != "{}" || len(res.Capabilities) != 3 {
		t.Errorf("capabilities %v", res.Capabilities)
	}
}
