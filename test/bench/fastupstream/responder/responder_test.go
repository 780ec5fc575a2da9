package responder_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
	"github.com/portcullis-gw/portcullis/test/bench/fastupstream/responder"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T, opts responder.Options) (*responder.Handler, string) {
	t.Helper()
	h, err := responder.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/mcp"
}

func serveDemo(t *testing.T) string {
	t.Helper()
	h := demo.NewHandler(demo.Options{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	return srv.URL + "/mcp"
}

// client is the data plane's own MCP client (the one that will talk to
// the responder in a benchmark), negotiating the era as the data plane
// does by default.
func client(t *testing.T, url string) *mcpclient.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := mcpclient.New(mcpclient.Config{URL: url, HTTP: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// result calls tool and returns its result decoded (any), or the error
// message's code.
func result(ctx context.Context, t *testing.T, c *mcpclient.Client, tool, args string) (any, int) {
	t.Helper()
	m, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"`+tool+`","arguments":`+args+`}`), nil)
	if err != nil {
		t.Fatalf("tools/call %s: %v", tool, err)
	}
	if m.Kind() == mcpwire.KindError {
		e, err := m.ErrorObject()
		if err != nil {
			t.Fatal(err)
		}
		return nil, e.Code
	}
	var v any
	if err := json.Unmarshal(m.Result, &v); err != nil {
		t.Fatal(err)
	}
	return v, 0
}

// TestAnswersAsTheDemo holds the responder to the demo upstream it stands
// in for: the same tool definitions byte for byte (so a pin taken from
// either stays valid on both) and the same answers, in both answer modes,
// through the data plane's client.
func TestAnswersAsTheDemo(t *testing.T) {
	for _, jsonMode := range []bool{false, true} {
		name := "event stream"
		if jsonMode {
			name = "json"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, url := serve(t, responder.Options{JSON: jsonMode})
			fast, ref := client(t, url), client(t, serveDemo(t))

			era, err := fast.Era(ctx)
			if err != nil || era != mcpclient.EraLegacy {
				t.Fatalf("era %v, %v; want legacy (after server/discover lists no modern version)", era, err)
			}
			gotDefs, err := fast.ListTools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantDefs, err := ref.ListTools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotDefs, wantDefs) {
				t.Fatalf("tools/list differs from the demo's:\n got %s\nwant %s", gotDefs, wantDefs)
			}

			tests := []struct {
				name, tool, args string
			}{
				{name: "weather", tool: demo.ToolGetWeather, args: `{"city":"Oslo"}`},
				{name: "weather, escaped city", tool: demo.ToolGetWeather, args: `{"city":"Zü\"rich\\n"}`},
				{name: "weather, empty city", tool: demo.ToolGetWeather, args: `{"city":""}`},
				{name: "invoices", tool: demo.ToolListInvoices, args: `{}`},
				{name: "unknown tool", tool: "no_such_tool", args: `{}`},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, gotCode := result(ctx, t, fast, tt.tool, tt.args)
					want, wantCode := result(ctx, t, ref, tt.tool, tt.args)
					if gotCode != wantCode || !reflect.DeepEqual(got, want) {
						t.Fatalf("got %v (code %d), the demo answers %v (code %d)", got, gotCode, want, wantCode)
					}
				})
			}

			// Where the demo keeps state or validates with the SDK's own
			// words, only the kind of answer must agree.
			kinds := []struct {
				name, tool, args string
				isError          bool
			}{
				{name: "weather without city", tool: demo.ToolGetWeather, args: `{}`, isError: true},
				{name: "create invoice", tool: demo.ToolCreateInvoice, args: `{"customer":"acme","amount":5}`},
				{name: "create invoice, bad amount", tool: demo.ToolCreateInvoice, args: `{"customer":"acme","amount":0}`, isError: true},
				{name: "send payment", tool: demo.ToolSendPayment, args: `{"to":"bob","amount":5}`},
			}
			for _, tt := range kinds {
				t.Run(tt.name, func(t *testing.T) {
					for _, c := range []*mcpclient.Client{fast, ref} {
						got, code := result(ctx, t, c, tt.tool, tt.args)
						res, _ := got.(map[string]any)
						if code != 0 || (res["isError"] == true) != tt.isError {
							t.Fatalf("got %v (code %d), want isError %v", got, code, tt.isError)
						}
					}
				})
			}
		})
	}
}

// TestSDKClient: the Go SDK's client connects, lists and calls.
func TestSDKClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	h, url := serve(t, responder.Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: tr}, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: demo.ToolGetWeather, Arguments: map[string]any{"city": "Oslo"}})
	if err != nil {
		t.Fatal(err)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; text != "Oslo: sunny, 14°C" {
		t.Fatalf("text %q", text)
	}
	if n := h.OpenSessions(); n != 1 {
		t.Fatalf("%d open sessions, want 1", n)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.OpenSessions(); n != 0 {
		t.Fatalf("%d open sessions after the client closed its session, want 0", n)
	}
}

// do sends one request and returns the status and body.
func do(t *testing.T, method, url, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// TestTransport holds the session and header rules of the 2025-11-25
// transport that the responder keeps.
func TestTransport(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	_, url := serve(t, responder.Options{JSON: true})
	status, hdr, body := do(t, http.MethodPost, url, initialize, nil)
	session := hdr.Get("Mcp-Session-Id")
	if status != http.StatusOK || session == "" || !strings.Contains(body, `"protocolVersion":"2025-06-18"`) {
		t.Fatalf("initialize: %d %q %s", status, session, body)
	}
	ping := `{"jsonrpc":"2.0","id":7,"method":"ping"}`
	tests := []struct {
		name   string
		method string
		body   string
		header map[string]string
		status int
		want   string // in the body
	}{
		{name: "request in the session", method: http.MethodPost, body: ping, header: map[string]string{"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18"}, status: 200, want: `{"jsonrpc":"2.0","id":7,"result":{}}`},
		{name: "without a session", method: http.MethodPost, body: ping, status: 400},
		{name: "unknown session", method: http.MethodPost, body: ping, header: map[string]string{"Mcp-Session-Id": "nope"}, status: 404},
		{name: "unsupported protocol version", method: http.MethodPost, body: ping, header: map[string]string{"Mcp-Session-Id": session, "Mcp-Protocol-Version": "1999-01-01"}, status: 400},
		{name: "notification", method: http.MethodPost, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, header: map[string]string{"Mcp-Session-Id": session}, status: 202},
		{name: "response", method: http.MethodPost, body: `{"jsonrpc":"2.0","id":"s1","result":{}}`, header: map[string]string{"Mcp-Session-Id": session}, status: 202},
		{name: "batch", method: http.MethodPost, body: `[` + ping + `]`, header: map[string]string{"Mcp-Session-Id": session}, status: 400, want: `-32700`},
		{name: "not JSON-RPC 2.0", method: http.MethodPost, body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, header: map[string]string{"Mcp-Session-Id": session}, status: 400, want: `-32600`},
		{name: "unknown method", method: http.MethodPost, body: `{"jsonrpc":"2.0","id":2,"method":"resources/list"}`, header: map[string]string{"Mcp-Session-Id": session}, status: 200, want: `-32601`},
		{name: "foreign origin", method: http.MethodPost, body: ping, header: map[string]string{"Mcp-Session-Id": session, "Origin": "https://evil.example"}, status: 403},
		{name: "loopback origin", method: http.MethodPost, body: ping, header: map[string]string{"Mcp-Session-Id": session, "Origin": "http://localhost:3000"}, status: 200},
		{name: "no GET stream", method: http.MethodGet, header: map[string]string{"Mcp-Session-Id": session}, status: 405},
		{name: "discover", method: http.MethodPost, body: `{"jsonrpc":"2.0","id":3,"method":"server/discover","params":{}}`, status: 200, want: `"supportedVersions":["2025-11-25"`},
		{name: "health", method: http.MethodGet, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := url
			if tt.name == "health" {
				u = strings.TrimSuffix(url, "/mcp") + "/healthz"
			}
			status, _, body := do(t, tt.method, u, tt.body, tt.header)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %q, want %d with %q", status, body, tt.status, tt.want)
			}
		})
	}

	// DELETE ends the session: later requests in it are 404.
	if status, _, _ := do(t, http.MethodDelete, url, "", map[string]string{"Mcp-Session-Id": session}); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", status)
	}
	if status, _, _ := do(t, http.MethodPost, url, ping, map[string]string{"Mcp-Session-Id": session}); status != http.StatusNotFound {
		t.Fatalf("after DELETE: %d, want 404", status)
	}
}

// TestEventStream: the default answer is one message event, as the Go
// SDK sends it.
func TestEventStream(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	_, url := serve(t, responder.Options{})
	status, hdr, _ := do(t, http.MethodPost, url, initialize, nil)
	if status != 200 || hdr.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("initialize: %d %s", status, hdr.Get("Content-Type"))
	}
	_, _, body := do(t, http.MethodPost, url, `{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Oslo"}}}`,
		map[string]string{"Mcp-Session-Id": hdr.Get("Mcp-Session-Id")})
	want := "event: message\ndata: " + `{"jsonrpc":"2.0","id":"a","result":{"content":[{"type":"text","text":"Oslo: sunny, 14°C"}],"structuredContent":{"city":"Oslo","forecast":"sunny","temp_c":14}}}` + "\n\n"
	if body != want {
		t.Fatalf("body %q\nwant %q", body, want)
	}
}

func TestSessionLimit(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	h, url := serve(t, responder.Options{JSON: true, MaxSessions: 2})
	for i, want := range []int{200, 200, 503} {
		if status, _, body := do(t, http.MethodPost, url, initialize, nil); status != want {
			t.Fatalf("initialize %d: %d %s, want %d", i, status, body, want)
		}
	}
	if n := h.OpenSessions(); n != 2 {
		t.Fatalf("%d open sessions, want 2", n)
	}
}

// FuzzPost: no body makes the responder panic, and every answer to a POST
// is either an HTTP error, 202, or exactly one JSON-RPC message.
func FuzzPost(f *testing.F) {
	for _, s := range []string{initialize, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"x"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_invoice","arguments":{"amount":"x"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`, `[1]`, `{"id":null}`, ``} {
		f.Add(s, true)
	}
	h, err := responder.New(context.Background(), responder.Options{JSON: true})
	if err != nil {
		f.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(initialize))
	h.ServeHTTP(rec, req)
	session := rec.Header().Get("Mcp-Session-Id")
	f.Fuzz(func(t *testing.T, body string, inSession bool) {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		if inSession {
			req.Header.Set("Mcp-Session-Id", session)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusAccepted:
		case strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json"):
			if _, err := mcpwire.Parse(bytes.TrimSpace(rec.Body.Bytes())); err != nil {
				t.Fatalf("answer %d %q is not one JSON-RPC message: %v", rec.Code, rec.Body, err)
			}
		case rec.Code < 400:
			t.Fatalf("answer %d %q: a success without a JSON-RPC message", rec.Code, rec.Body)
		}
	})
}
