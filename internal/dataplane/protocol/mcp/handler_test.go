package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Tools of the fake configuration. The upstream's own readOnlyHint is the
// opposite of the operator's class in both, so tests can tell which one
// tools/list shows.
var (
	weatherTool = pipeline.Tool{
		Action: "demo__weather", Upstream: "demo", Name: "get_weather", Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY,
		Definition: json.RawMessage(`{"name":"get_weather","title":"Weather","description":"Current weather",
			"inputSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},
			"outputSchema":{"type":"object"},"annotations":{"readOnlyHint":false,"openWorldHint":false},"_meta":{"x":1}}`),
	}
	payTool = pipeline.Tool{
		Action: "demo__pay", Upstream: "demo", Name: "pay", Class: configv1.ToolClass_TOOL_CLASS_MUTATING,
		Definition: json.RawMessage(`{"name":"pay","description":"Pay someone","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}}`),
	}
	bareTool   = pipeline.Tool{Action: "demo__bare", Upstream: "demo", Name: "bare", Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY}
	brokenTool = pipeline.Tool{Action: "demo__broken", Upstream: "demo", Name: "broken", Definition: json.RawMessage(`{not json`)}
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	h     http.Handler
	b     *fakeBackend
	cfg   *fakeConfig
	clock *fakeClock
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func okResult(context.Context, *pipeline.Call) (*pipeline.Result, error) {
	return &pipeline.Result{Body: json.RawMessage(`{"content":[{"type":"text","text":"sunny"}],"structuredContent":{"t":21}}`)}, nil
}

func newEnv(t *testing.T, opts ...mcpgw.Option) *env {
	t.Helper()
	cfg := newFakeConfig(bareTool, brokenTool, payTool, weatherTool)
	e := &env{
		cfg:   cfg,
		b:     &fakeBackend{cfg: cfg, mode: configsyncv1.Mode_MODE_NORMAL, terminal: okResult},
		clock: &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
	opts = append([]mcpgw.Option{mcpgw.WithClock(e.clock.Now), mcpgw.WithVersion("1.2.3")}, opts...)
	e.h = mcpgw.NewHandler(e.b, testLogger(t), opts...)
	return e
}

// req describes one HTTP request to the endpoint.
type req struct {
	method  string // default POST
	token   string // bearer token; "" sends none
	session string
	header  map[string]string
	body    string
}

func (e *env) do(t *testing.T, r req) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	hr := httptest.NewRequestWithContext(t.Context(), r.method, "http://gw.example/mcp", strings.NewReader(r.body))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json, text/event-stream")
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.session != "" {
		hr.Header.Set("Mcp-Session-Id", r.session)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	assertNoEcho(t, rec)
	return rec
}

// initialize opens a session for token and returns its id.
func (e *env) initialize(t *testing.T, token string) string {
	t.Helper()
	rec := e.do(t, req{token: token, body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`})
	sid := rec.Header().Get("Mcp-Session-Id")
	if rec.Code != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s (session %q)", rec.Code, rec.Body, sid)
	}
	return sid
}

// assertNoEcho fails when a response carries any caller's key.
func assertNoEcho(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for _, key := range []string{aliceKey, bobKey, disabledKey, "SECRET"} {
		if strings.Contains(rec.Body.String(), key) {
			t.Fatalf("response body echoes a caller credential: %s", rec.Body)
		}
		for name, vs := range rec.Header() {
			for _, v := range vs {
				if strings.Contains(v, key) {
					t.Fatalf("response header %s echoes a caller credential: %s", name, v)
				}
			}
		}
	}
}

type rpcResp struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) rpcResp {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json (body %s)", ct, rec.Body)
	}
	var r rpcResp
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.JSONRPC != "2.0" {
		t.Fatalf("not a JSON-RPC response: %s (%v)", rec.Body, err)
	}
	return r
}

func TestEnvelopeErrors(t *testing.T) {
	big := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", mcpgw.MaxBodyBytes) + `"}}`
	tests := []struct {
		name       string
		header     map[string]string
		body       string
		wantStatus int
		wantCode   int
		wantID     string
		wantMsg    string
	}{
		// Batches are 2025-03-26 only (see TestBatches).
		{name: "batch from a 2025-06-18 caller", header: map[string]string{"Mcp-Protocol-Version": "2025-06-18"}, body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
			wantStatus: 400, wantCode: -32600, wantID: "null", wantMsg: "batches are part of MCP 2025-03-26 only"},
		{name: "malformed batch", body: `[{"jsonrpc":`, wantStatus: 400, wantCode: -32700, wantID: "null"},
		{name: "empty batch", body: `[]`, wantStatus: 400, wantCode: -32600, wantID: "null", wantMsg: "empty batch"},
		{name: "malformed JSON", body: `{"jsonrpc":"2.0",`, wantStatus: 400, wantCode: -32700, wantID: "null"},
		{name: "empty body", body: ``, wantStatus: 400, wantCode: -32700, wantID: "null"},
		{name: "not an object", body: `"ping"`, wantStatus: 400, wantCode: -32600, wantID: "null"},
		{name: "trailing garbage", body: `{"jsonrpc":"2.0","id":1,"method":"ping"} x`, wantStatus: 400, wantCode: -32700, wantID: "null"},
		{name: "too large", body: big, wantStatus: 413, wantCode: -32600, wantID: "null", wantMsg: "1 MiB"},
		{name: "missing method", body: `{"jsonrpc":"2.0","id":7}`, wantStatus: 400, wantCode: -32600, wantID: "7", wantMsg: "method is required"},
		{name: "wrong jsonrpc version", body: `{"jsonrpc":"1.0","id":"a","method":"ping"}`, wantStatus: 400, wantCode: -32600, wantID: `"a"`},
		{name: "null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, wantStatus: 400, wantCode: -32600, wantID: "null"},
		{name: "object id", body: `{"jsonrpc":"2.0","id":{},"method":"ping"}`, wantStatus: 400, wantCode: -32600, wantID: "null"},
		{name: "method of wrong type", body: `{"jsonrpc":"2.0","id":1,"method":5}`, wantStatus: 400, wantCode: -32600, wantID: "1"},
		{name: "params not an object", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}`, wantStatus: 400, wantCode: -32602, wantID: "1"},
		{name: "unknown method", body: `{"jsonrpc":"2.0","id":1,"method":"foo/bar"}`, wantStatus: 200, wantCode: -32601, wantID: "1", wantMsg: "foo/bar"},
		{name: "modern discover", body: `{"jsonrpc":"2.0","id":1,"method":"server/discover"}`, wantStatus: 200, wantCode: -32601, wantID: "1"},
		{name: "tools/call without name", body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}}`, wantStatus: 200, wantCode: -32602, wantID: "2", wantMsg: "name is required"},
		{name: "tools/call arguments not an object", body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo__weather","arguments":[1]}}`, wantStatus: 200, wantCode: -32602, wantID: "2", wantMsg: "arguments must be an object"},
		{name: "tools/call name of wrong type", body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":5}}`, wantStatus: 200, wantCode: -32602, wantID: "2"},
		{name: "tools/list with a cursor", body: `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"abc"}}`, wantStatus: 200, wantCode: -32602, wantID: "3", wantMsg: "cursor"},
		{name: "initialize params of wrong type", body: `{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":5}}`, wantStatus: 200, wantCode: -32602, wantID: "4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(t, req{token: aliceKey, header: tc.header, body: tc.body})
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, tc.wantStatus, rec.Body)
			}
			r := decode(t, rec)
			if r.Error == nil || r.Error.Code != tc.wantCode || !strings.Contains(r.Error.Message, tc.wantMsg) {
				t.Fatalf("response %s, want error %d mentioning %q", rec.Body, tc.wantCode, tc.wantMsg)
			}
			if string(r.ID) != tc.wantID {
				t.Fatalf("id %s, want %s", r.ID, tc.wantID)
			}
			if len(e.b.recorded()) != 0 {
				t.Fatal("a malformed request reached the backend")
			}
		})
	}
}

func TestNotificationsAccepted(t *testing.T) {
	for _, method := range []string{"notifications/initialized", "notifications/cancelled", "notifications/whatever", "tools/call"} {
		t.Run(method, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(t, req{token: aliceKey, body: `{"jsonrpc":"2.0","method":"` + method + `","params":{"name":"demo__weather"}}`})
			if rec.Code != http.StatusAccepted || rec.Body.Len() != 0 {
				t.Fatalf("got %d %q, want 202 and no body", rec.Code, rec.Body)
			}
			if len(e.b.recorded()) != 0 {
				t.Fatal("a notification reached the backend")
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	const (
		initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`
		list       = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
		ping       = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
		notify     = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
		call       = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"Oslo"}}}`
	)
	tests := []struct {
		name        string
		body        string
		header      map[string]string
		wantInvalid bool // RFC 6750 error="invalid_token"
		wantBackend bool // tools/call: the pipeline decides (and audits)
	}{
		{name: "initialize without a key", body: initialize},
		{name: "initialize with a wrong key", body: initialize, header: map[string]string{"Authorization": "Bearer pck_nope_nope"}, wantInvalid: true},
		{name: "initialize with a disabled agent", body: initialize, header: map[string]string{"Authorization": "Bearer " + disabledKey}, wantInvalid: true},
		{name: "initialize with basic auth", body: initialize, header: map[string]string{"Authorization": "Basic YTpi"}},
		{name: "tools/list with a wrong key", body: list, header: map[string]string{"Authorization": "Bearer pck_nope_nope"}, wantInvalid: true},
		{name: "ping without a key", body: ping},
		{name: "notification with a wrong key", body: notify, header: map[string]string{"Authorization": "Bearer x"}, wantInvalid: true},
		{name: "tools/call without a key", body: call},
		{name: "tools/call with a wrong key", body: call, header: map[string]string{"Authorization": "Bearer pck_nope_nope"}, wantInvalid: true},
		{name: "garbage without a key", body: `{{{`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			anon := &anonCounter{}
			e := newEnv(t, mcpgw.WithAnonymousRefusals(anon))
			rec := e.do(t, req{body: tc.body, header: tc.header})
			// Refused at the edge: counted here; refused by the pipeline:
			// counted there (its Audit stage), never twice.
			if want := !tc.wantBackend; (anon.count() == 1) != want || anon.count() > 1 {
				t.Errorf("anonymous refusals counted at the edge: %d, want %v", anon.count(), want)
			}
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (body %s)", rec.Code, rec.Body)
			}
			want := `Bearer resource_metadata="http://gw.example/.well-known/oauth-protected-resource"`
			if tc.wantInvalid {
				want += `, error="invalid_token"`
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, want)
			}
			if r := decode(t, rec); r.Error == nil || !strings.Contains(string(r.Error.Data), `"unauthenticated"`) {
				t.Fatalf("body %s, want a JSON-RPC error with reason unauthenticated", rec.Body)
			}
			if rec.Header().Get("Mcp-Session-Id") != "" {
				t.Fatal("a session was minted for an unauthenticated caller")
			}
			if got := len(e.b.recorded()) > 0; got != tc.wantBackend {
				t.Fatalf("backend called: %v, want %v", got, tc.wantBackend)
			}
		})
	}
}

func TestPublicURLInChallenge(t *testing.T) {
	e := newEnv(t, mcpgw.WithPublicURL("https://gw.example.com/"))
	rec := e.do(t, req{body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
	want := `Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource"`
	if got := rec.Header().Get("WWW-Authenticate"); got != want {
		t.Fatalf("WWW-Authenticate %q, want %q", got, want)
	}
}

func TestInitialize(t *testing.T) {
	tests := []struct {
		name, params, want string
	}{
		{name: "2025-11-25", params: `{"protocolVersion":"2025-11-25"}`, want: "2025-11-25"},
		{name: "2025-06-18", params: `{"protocolVersion":"2025-06-18"}`, want: "2025-06-18"},
		{name: "2025-03-26", params: `{"protocolVersion":"2025-03-26"}`, want: "2025-03-26"},
		// A version this endpoint does not speak: the latest legacy one.
		{name: "older", params: `{"protocolVersion":"2024-11-05"}`, want: "2025-11-25"},
		{name: "newer", params: `{"protocolVersion":"2026-07-28"}`, want: "2025-11-25"},
		{name: "no params", params: `null`, want: "2025-11-25"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(t, req{token: aliceKey, session: "stale-ignored", body: `{"jsonrpc":"2.0","id":"init","method":"initialize","params":` + tc.params + `}`})
			r := decode(t, rec)
			if rec.Code != http.StatusOK || r.Error != nil || string(r.ID) != `"init"` {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
			var res struct {
				ProtocolVersion string                     `json:"protocolVersion"`
				Capabilities    map[string]json.RawMessage `json:"capabilities"`
				ServerInfo      struct{ Name, Version string }
			}
			if err := json.Unmarshal(r.Result, &res); err != nil {
				t.Fatalf("result %s: %v", r.Result, err)
			}
			// The gateway sends tools/list_changed on the session's GET
			// stream, and no resources or prompts notification.
			if res.ProtocolVersion != tc.want || string(res.Capabilities["tools"]) != `{"listChanged":true}` || string(res.Capabilities["resources"]) != "{}" ||
				string(res.Capabilities["prompts"]) != "{}" || len(res.Capabilities) != 3 ||
				res.ServerInfo.Name != "portcullis" || res.ServerInfo.Version != "1.2.3" {
				t.Fatalf("result %s, want version %s, tools (listChanged), resources and prompts capabilities, serverInfo portcullis 1.2.3", r.Result, tc.want)
			}
			sid := rec.Header().Get("Mcp-Session-Id")
			if len(sid) < 22 || sid == "stale-ignored" {
				t.Fatalf("session id %q, want a fresh 128-bit id", sid)
			}
		})
	}
}

func TestPing(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, req{token: aliceKey, body: `{"jsonrpc":"2.0","id":-3,"method":"ping"}`})
	if r := decode(t, rec); rec.Code != 200 || string(r.Result) != "{}" || string(r.ID) != "-3" {
		t.Fatalf("ping: %d %s", rec.Code, rec.Body)
	}
}

func TestProtocolVersionHeader(t *testing.T) {
	tests := []struct {
		version    string
		wantStatus int
	}{
		{version: "2025-03-26", wantStatus: 200},
		{version: "2025-06-18", wantStatus: 200},
		{version: "2025-11-25", wantStatus: 200},
		// The modern version needs the per-request _meta too.
		{version: "2026-07-28", wantStatus: 400},
		{version: "2024-11-05", wantStatus: 400},
		{version: "bogus", wantStatus: 400},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(t, req{token: aliceKey, header: map[string]string{"Mcp-Protocol-Version": tc.version}, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.wantStatus, rec.Body)
			}
			if r := decode(t, rec); tc.wantStatus == 400 && (r.Error == nil || r.Error.Code != -32022 || !strings.Contains(string(r.Error.Data), `"supported":["2026-07-28","2025-11-25","2025-06-18","2025-03-26"]`)) {
				t.Fatalf("body %s, want -32022 with the supported versions", rec.Body)
			}
		})
	}
}

type listedTool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema"`
	Annotations  map[string]any  `json:"annotations"`
	Meta         json.RawMessage `json:"_meta"`
}

// listTools lists the tools as a 2025-06-18 caller.
func listTools(t *testing.T, e *env) []listedTool {
	t.Helper()
	return listToolsAs(t, e, "2025-06-18")
}

// listToolsAs lists the tools as a caller sending MCP-Protocol-Version
// version ("" sends none).
func listToolsAs(t *testing.T, e *env, version string) []listedTool {
	t.Helper()
	h := map[string]string{}
	if version != "" {
		h["Mcp-Protocol-Version"] = version
	}
	rec := e.do(t, req{token: aliceKey, header: h, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`})
	r := decode(t, rec)
	if rec.Code != 200 || r.Error != nil {
		t.Fatalf("tools/list: %d %s", rec.Code, rec.Body)
	}
	var res struct {
		Tools []listedTool `json:"tools"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil || res.Tools == nil {
		t.Fatalf("tools/list result %s: want a tools array (%v)", r.Result, err)
	}
	return res.Tools
}

func TestToolsListByMode(t *testing.T) {
	tests := []struct {
		name   string
		mode   configsyncv1.Mode
		frozen bool
		want   []string
	}{
		{name: "normal", mode: configsyncv1.Mode_MODE_NORMAL, want: []string{"demo__bare", "demo__pay", "demo__weather"}},
		{name: "degraded", mode: configsyncv1.Mode_MODE_DEGRADED, want: []string{"demo__bare", "demo__weather"}},
		{name: "frozen", mode: configsyncv1.Mode_MODE_NORMAL, frozen: true, want: []string{"demo__bare", "demo__weather"}},
		{name: "stale", mode: configsyncv1.Mode_MODE_STALE, want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.b.mode, e.cfg.frozen = tc.mode, tc.frozen
			got := []string{}
			for _, tool := range listTools(t, e) {
				got = append(got, tool.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("listed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestToolsListPresentation(t *testing.T) {
	e := newEnv(t)
	tools := map[string]listedTool{}
	for _, tool := range listTools(t, e) {
		tools[tool.Name] = tool
	}
	w := tools["demo__weather"]
	if w.Title != "Weather" || w.Description != "Current weather" || !strings.Contains(string(w.InputSchema), `"required":["city"]`) ||
		string(w.OutputSchema) != `{"type":"object"}` || w.Meta != nil {
		t.Errorf("weather presented as %+v", w)
	}
	// The operator's class decides readOnlyHint; other hints are the pin's.
	if w.Annotations["readOnlyHint"] != true || w.Annotations["openWorldHint"] != false {
		t.Errorf("weather annotations %v, want readOnlyHint true (operator) and openWorldHint false (pin)", w.Annotations)
	}
	if p := tools["demo__pay"]; p.Annotations["readOnlyHint"] != false || p.Description != "Pay someone" {
		t.Errorf("pay presented as %+v, want readOnlyHint false", p)
	}
	if b := tools["demo__bare"]; string(b.InputSchema) != `{"type":"object"}` {
		t.Errorf("a tool without a definition has inputSchema %s, want an empty object schema", b.InputSchema)
	}
	if _, ok := tools["demo__broken"]; ok {
		t.Error("a tool with an unreadable definition was listed")
	}
}

func TestToolsCall(t *testing.T) {
	internalErr := errors.New("database password=hunter2 unreachable")
	tests := []struct {
		name       string
		params     string
		terminal   func(context.Context, *pipeline.Call) (*pipeline.Result, error)
		wantStatus int
		wantCode   int             // JSON-RPC error code, 0 for a result
		wantReason pipeline.Reason // _meta or data reason; "" for a plain result
		wantText   string          // substring of the text content or error message
		wantNot    string          // must not appear in the body
		wantArgs   string          // arguments the backend saw
		check      func(rpcResp) error
	}{
		{
			name: "success passes the upstream result through", params: `{"name":"demo__weather","arguments":{"city":"Oslo"}}`,
			terminal: okResult, wantStatus: 200, wantText: "sunny", wantArgs: `{"city":"Oslo"}`,
			check: func(r rpcResp) error {
				if string(r.Result) != `{"content":[{"type":"text","text":"sunny"}],"structuredContent":{"t":21}}` {
					return errors.New("result changed on the way: " + string(r.Result))
				}
				return nil
			},
		},
		{
			name: "missing arguments become an empty object", params: `{"name":"demo__bare"}`,
			terminal: okResult, wantStatus: 200, wantText: "sunny", wantArgs: `{}`,
		},
		{
			name: "upstream isError result passes through", params: `{"name":"demo__weather","arguments":{"city":"x"}}`,
			terminal: func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return &pipeline.Result{Body: json.RawMessage(`{"content":[{"type":"text","text":"boom"}],"isError":true}`), IsError: true}, nil
			},
			wantStatus: 200, wantText: "boom",
		},
		{
			name: "invalid arguments are a tool result", params: `{"name":"demo__weather","arguments":{"city":1}}`,
			terminal: func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return nil, pipeline.Refuse(pipeline.ReasonInvalidArguments, "city must be a string")
			},
			wantStatus: 200, wantReason: pipeline.ReasonInvalidArguments, wantText: "city must be a string",
		},
		{
			name: "unknown tool is -32602", params: `{"name":"demo__nope","arguments":{}}`,
			wantStatus: 200, wantCode: -32602, wantReason: pipeline.ReasonUnknownTool, wantText: "demo__nope",
		},
		{
			name: "denied", params: `{"name":"demo__pay","arguments":{"amount":900}}`,
			terminal: func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return nil, pipeline.Refuse(pipeline.ReasonDenied, "policy payments/policy1 forbids this call")
			},
			wantStatus: 200, wantReason: pipeline.ReasonDenied, wantText: "policy payments/policy1",
		},
		{
			name: "upstream timeout", params: `{"name":"demo__weather","arguments":{"city":"x"}}`,
			terminal: func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return nil, pipeline.Refuse(pipeline.ReasonUpstreamTimeout, `upstream "demo" did not answer within 30s`)
			},
			wantStatus: 200, wantReason: pipeline.ReasonUpstreamTimeout, wantText: "did not answer",
		},
		{
			name: "internal errors stay in the logs", params: `{"name":"demo__weather","arguments":{"city":"x"}}`,
			terminal: func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return nil, internalErr
			},
			wantStatus: 200, wantReason: pipeline.ReasonInternal, wantText: "it has been logged", wantNot: "hunter2",
		},
		{
			name: "invalid backend result", params: `{"name":"demo__weather","arguments":{"city":"x"}}`,
			terminal: func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return &pipeline.Result{Body: json.RawMessage(`[1,2`)}, nil
			},
			wantStatus: 200, wantReason: pipeline.ReasonInternal, wantNot: "[1,2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.b.terminal = tc.terminal
			sid := e.initialize(t, aliceKey)
			rec := e.do(t, req{token: aliceKey, session: sid, body: `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":` + tc.params + `}`})
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantNot != "" && strings.Contains(rec.Body.String(), tc.wantNot) {
				t.Fatalf("body leaks %q: %s", tc.wantNot, rec.Body)
			}
			r := decode(t, rec)
			if string(r.ID) != "9" {
				t.Fatalf("id %s, want 9", r.ID)
			}
			if tc.wantCode != 0 {
				if r.Error == nil || r.Error.Code != tc.wantCode || !strings.Contains(r.Error.Message, tc.wantText) ||
					!strings.Contains(string(r.Error.Data), string(tc.wantReason)) {
					t.Fatalf("body %s, want error %d with reason %s", rec.Body, tc.wantCode, tc.wantReason)
				}
				return
			}
			var res struct {
				Content []struct{ Type, Text string } `json:"content"`
				IsError bool                          `json:"isError"`
				Meta    map[string]struct {
					Reason string `json:"reason"`
				} `json:"_meta"`
			}
			if r.Error != nil || json.Unmarshal(r.Result, &res) != nil || len(res.Content) == 0 || !strings.Contains(res.Content[0].Text, tc.wantText) {
				t.Fatalf("body %s, want a result with text %q", rec.Body, tc.wantText)
			}
			if tc.wantReason != "" {
				if !res.IsError || res.Meta["io.portcullis/refusal"].Reason != string(tc.wantReason) {
					t.Fatalf("result %s, want isError with _meta reason %s", r.Result, tc.wantReason)
				}
			} else if res.Meta["io.portcullis/refusal"].Reason != "" {
				t.Fatalf("result %s carries a refusal reason", r.Result)
			}
			if tc.check != nil {
				if err := tc.check(r); err != nil {
					t.Fatal(err)
				}
			}
			calls := e.b.recorded()
			if len(calls) != 1 {
				t.Fatalf("backend saw %d calls, want 1", len(calls))
			}
			c := calls[0]
			if c.Protocol != "mcp" || c.Method != "tools/call" || c.Credential != aliceKey || c.Start.IsZero() || c.Config == nil {
				t.Fatalf("backend got call %+v", c)
			}
			if tc.wantArgs != "" && string(c.Arguments) != tc.wantArgs {
				t.Fatalf("backend got arguments %s, want %s", c.Arguments, tc.wantArgs)
			}
		})
	}
}

func TestNoConfiguration(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantReason string
	}{
		{name: "initialize", body: `{"jsonrpc":"2.0","id":1,"method":"initialize"}`, wantStatus: 503, wantReason: "no_config"},
		{name: "tools/list", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, wantStatus: 503, wantReason: "no_config"},
		{name: "tools/call is refused by the pipeline", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__weather"}}`, wantStatus: 200, wantReason: "no_config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.b.cfg, e.b.mode = nil, configsyncv1.Mode_MODE_STARTING
			rec := e.do(t, req{token: aliceKey, body: tc.body})
			if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), `"reason":"`+tc.wantReason+`"`) {
				t.Fatalf("got %d %s, want %d with reason %s", rec.Code, rec.Body, tc.wantStatus, tc.wantReason)
			}
			if tc.wantStatus == 503 && rec.Header().Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}
}

func TestSessions(t *testing.T) {
	const list = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	const call = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__weather","arguments":{"city":"x"}}}`
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`
	tests := []struct {
		name string
		opts []mcpgw.Option
		run  func(t *testing.T, e *env) *httptest.ResponseRecorder
		want int
	}{
		{name: "no session is allowed", want: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{token: aliceKey, body: list})
		}},
		{name: "own session", want: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{token: aliceKey, session: e.initialize(t, aliceKey), body: call})
		}},
		{name: "unknown session", want: 404, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{token: aliceKey, session: "AAAAAAAAAAAAAAAAAAAAAAAAAA", body: list})
		}},
		{name: "unknown session on tools/call", want: 404, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{token: aliceKey, session: "AAAAAAAAAAAAAAAAAAAAAAAAAA", body: call})
		}},
		{name: "another agent's session", want: 404, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{token: bobKey, session: e.initialize(t, aliceKey), body: list})
		}},
		{name: "another agent's session on tools/call", want: 404, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{token: bobKey, session: e.initialize(t, aliceKey), body: call})
		}},
		{name: "expired session", want: 404, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			sid := e.initialize(t, aliceKey)
			e.clock.Advance(mcpgw.DefaultSessionTTL)
			return e.do(t, req{token: aliceKey, session: sid, body: list})
		}},
		{name: "use extends a session", want: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			sid := e.initialize(t, aliceKey)
			e.clock.Advance(mcpgw.DefaultSessionTTL - time.Second)
			if rec := e.do(t, req{token: aliceKey, session: sid, body: list}); rec.Code != 200 {
				t.Fatalf("session died early: %d", rec.Code)
			}
			e.clock.Advance(mcpgw.DefaultSessionTTL - time.Second)
			return e.do(t, req{token: aliceKey, session: sid, body: list})
		}},
		{name: "delete ends a session", want: 404, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			sid := e.initialize(t, aliceKey)
			if rec := e.do(t, req{method: http.MethodDelete, token: aliceKey, session: sid}); rec.Code != http.StatusNoContent {
				t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
			}
			return e.do(t, req{token: aliceKey, session: sid, body: list})
		}},
		{name: "delete of another agent's session", want: 404, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			sid := e.initialize(t, aliceKey)
			rec := e.do(t, req{method: http.MethodDelete, token: bobKey, session: sid})
			if live := e.do(t, req{token: aliceKey, session: sid, body: list}); live.Code != 200 {
				t.Fatalf("another agent's DELETE ended the session: %d", live.Code)
			}
			return rec
		}},
		{name: "delete without a session", want: 400, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{method: http.MethodDelete, token: aliceKey})
		}},
		{name: "delete without a key", want: 401, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{method: http.MethodDelete, session: e.initialize(t, aliceKey)})
		}},
		{name: "delete with a wrong key", want: 401, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, req{method: http.MethodDelete, token: "pck_x_y", session: e.initialize(t, aliceKey)})
		}},
		{name: "an agent at its quota evicts its own oldest session", opts: []mcpgw.Option{mcpgw.WithMaxSessionsPerAgent(2)}, want: 404,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				first := e.initialize(t, aliceKey)
				second := e.initialize(t, aliceKey)
				e.initialize(t, aliceKey)
				if rec := e.do(t, req{token: aliceKey, session: second, body: list}); rec.Code != http.StatusOK {
					t.Fatalf("alice's second session: status %d, want 200", rec.Code)
				}
				return e.do(t, req{token: aliceKey, session: first, body: list})
			}},
		{name: "another agent's sessions cannot evict one", opts: []mcpgw.Option{mcpgw.WithMaxSessions(1)}, want: 200,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				first := e.initialize(t, aliceKey)
				for range 3 {
					rec := e.do(t, req{token: bobKey, body: initialize})
					if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Mcp-Session-Id") != "" {
						t.Fatalf("bob's initialize with the store full: status %d, session %q; want 503 and none",
							rec.Code, rec.Header().Get("Mcp-Session-Id"))
					}
				}
				return e.do(t, req{token: aliceKey, session: first, body: list})
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			rec := tc.run(t, e)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
			if tc.want == 404 {
				if strings.HasPrefix(strings.TrimSpace(rec.Body.String()), "{") {
					t.Fatalf("404 body %s: must not be a JSON-RPC error, or clients miss that the session is gone", rec.Body)
				}
				if n := len(e.b.recorded()); n != 0 {
					t.Fatalf("a call with a foreign or unknown session reached the backend (%d)", n)
				}
			}
		})
	}
}

func TestHTTPMethods(t *testing.T) {
	tests := []struct {
		method    string
		header    map[string]string
		want      int
		wantAllow string
	}{
		// GET without a session (there is no standalone stream to open).
		{method: http.MethodGet, want: http.StatusMethodNotAllowed, wantAllow: "POST, DELETE"},
		// An unsupported protocol version is a 400 whatever the method.
		{method: http.MethodGet, header: map[string]string{"Mcp-Protocol-Version": "2024-11-05"}, want: http.StatusBadRequest},
		{method: http.MethodDelete, header: map[string]string{"Mcp-Protocol-Version": "bogus"}, want: http.StatusBadRequest},
		{method: http.MethodPut, want: http.StatusMethodNotAllowed, wantAllow: "GET, POST, DELETE"},
		// A browser page on another origin cannot drive the endpoint.
		{method: http.MethodPost, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: http.StatusForbidden},
		{method: http.MethodPost, header: map[string]string{"Origin": "https://evil.example"}, want: http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+strings.Join(slices.Collect(mapsKeys(tc.header)), ","), func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(t, req{method: tc.method, token: aliceKey, header: tc.header, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if tc.want == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != tc.wantAllow {
				t.Fatalf("Allow %q", rec.Header().Get("Allow"))
			}
		})
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestOverRealHTTP drives the handler through a real server so the body
// limit, status codes and headers are seen as a client sees them.
func TestOverRealHTTP(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	body := strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("y", 2*mcpgw.MaxBodyBytes) + `"}}`)
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, body)
	hr.Header.Set("Authorization", "Bearer "+aliceKey)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(hr)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "-32600") {
		t.Fatalf("got %d %s, want 413 with a JSON-RPC error", resp.StatusCode, b)
	}
}

// anonCounter counts the endpoint's anonymous refusals.
type anonCounter struct {
	mu sync.Mutex
	n  int
	// reasons counts every refusal by reason.
	reasons map[string]int
}

func (a *anonCounter) Refused(_ netip.Addr, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if reason == "unauthenticated" {
		a.n++
	}
	if a.reasons == nil {
		a.reasons = map[string]int{}
	}
	a.reasons[reason]++
}

func (a *anonCounter) counted(reason string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reasons[reason]
}

func (a *anonCounter) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// TestToolsListWithoutAMode: an adapter that failed to set the mode is
// refused (fail closed), never shown tools.
func TestToolsListWithoutAMode(t *testing.T) {
	e := newEnv(t)
	e.b.mode = configsyncv1.Mode_MODE_UNSPECIFIED
	rec := e.do(t, req{token: aliceKey, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	if r := decode(t, rec); r.Error == nil || !strings.Contains(string(r.Error.Data), "internal") {
		t.Fatalf("tools/list without a mode: %s, want an internal error", rec.Body)
	}
}
