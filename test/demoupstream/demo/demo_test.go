package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bearerTransport adds a fixed Authorization header.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// start serves a demo server and returns its MCP URL.
func start(t *testing.T, opts demo.Options) (*demo.Handler, *httptest.Server) {
	t.Helper()
	h := demo.NewHandler(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close) // runs first: ends sessions and held calls
	return h, srv
}

func connect(ctx context.Context, t *testing.T, url, token string) (*mcp.ClientSession, error) {
	t.Helper()
	hc := &http.Client{Transport: bearerTransport{token: token}}
	if token == "" {
		hc = &http.Client{Transport: http.DefaultTransport}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs, nil
}

func TestSDKClientListsAndCallsTools(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		name := "stateful"
		if stateless {
			name = "stateless"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			h, srv := start(t, demo.Options{RequireBearer: "upstream-secret", Stateless: stateless})
			cs, err := connect(ctx, t, srv.URL+"/mcp", "upstream-secret")
			if err != nil {
				t.Fatalf("connect: %v", err)
			}

			lt, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("list tools: %v", err)
			}
			readOnly := map[string]bool{}
			for _, tool := range lt.Tools {
				readOnly[tool.Name] = tool.Annotations != nil && tool.Annotations.ReadOnlyHint
			}
			want := map[string]bool{
				demo.ToolGetWeather: true, demo.ToolListInvoices: true,
				demo.ToolCreateInvoice: false, demo.ToolSendPayment: false,
			}
			if len(readOnly) != len(want) {
				t.Fatalf("tools = %v, want %v", readOnly, want)
			}
			for n, ro := range want {
				if got, ok := readOnly[n]; !ok || got != ro {
					t.Errorf("tool %s: listed %v readOnlyHint %v, want readOnlyHint %v", n, ok, got, ro)
				}
			}

			tests := []struct {
				name      string
				tool      string
				args      any
				wantError bool
			}{
				{name: "weather", tool: demo.ToolGetWeather, args: map[string]any{"city": "Oslo"}},
				{name: "list invoices", tool: demo.ToolListInvoices, args: map[string]any{"customer": "acme", "limit": 1}},
				{name: "list invoices no args", tool: demo.ToolListInvoices},
				{name: "create invoice", tool: demo.ToolCreateInvoice, args: map[string]any{"customer": "acme", "amount": 100}},
				{name: "send payment", tool: demo.ToolSendPayment, args: map[string]any{"to": "bob", "amount": 5}},
				{name: "missing required city", tool: demo.ToolGetWeather, args: map[string]any{}, wantError: true},
				{name: "amount of wrong type", tool: demo.ToolCreateInvoice, args: map[string]any{"customer": "acme", "amount": "lots"}, wantError: true},
			}
			for _, tc := range tests {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
				if err != nil {
					t.Fatalf("%s: call: %v", tc.name, err)
				}
				if res.IsError != tc.wantError {
					t.Errorf("%s: isError = %v, want %v (content %v)", tc.name, res.IsError, tc.wantError, res.Content)
				}
				if !tc.wantError && res.StructuredContent == nil {
					t.Errorf("%s: no structured content", tc.name)
				}
			}

			calls := h.Calls()
			if len(calls) != len(tests) {
				t.Fatalf("recorded %d calls, want %d", len(calls), len(tests))
			}
			for i, c := range calls {
				if c.Tool != tests[i].tool || c.Authorization != "Bearer upstream-secret" || c.Status != http.StatusOK {
					t.Errorf("call %d recorded as %s with %q, status %d; want %s with the upstream token, 200", i, c.Tool, c.Authorization, c.Status, tests[i].tool)
				}
			}
		})
	}
}

func TestRequireBearer(t *testing.T) {
	tests := []struct {
		name  string
		token string
	}{
		{name: "no token"},
		{name: "wrong token", token: "caller-token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, srv := start(t, demo.Options{RequireBearer: "upstream-secret"})
			_, err := connect(ctx, t, srv.URL+"/mcp", tc.token)
			if err == nil {
				t.Fatal("connect succeeded without the right token")
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("connect hung: %v", err)
			}
		})
	}
}

func TestCallsEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, srv := start(t, demo.Options{})
	cs, err := connect(ctx, t, srv.URL+"/mcp", "t0k")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: demo.ToolGetWeather, Arguments: map[string]any{"city": "Rome"}}); err != nil {
		t.Fatalf("call: %v", err)
	}

	get := func() []demo.Call {
		t.Helper()
		resp, err := http.Get(srv.URL + "/calls")
		if err != nil {
			t.Fatalf("GET /calls: %v", err)
		}
		defer resp.Body.Close()
		var calls []demo.Call
		if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
			t.Fatalf("decode /calls: %v", err)
		}
		return calls
	}
	calls := get()
	if len(calls) != 1 || calls[0].Tool != demo.ToolGetWeather || calls[0].Authorization != "Bearer t0k" ||
		string(calls[0].Arguments) != `{"city":"Rome"}` || calls[0].Time.IsZero() ||
		!slices.Contains(calls[0].Header.Values("Authorization"), "Bearer t0k") {
		t.Fatalf("GET /calls = %+v, want the one get_weather call", calls)
	}

	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, srv.URL+"/calls", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE /calls: %v", err)
	}
	resp.Body.Close()
	if got := get(); len(got) != 0 {
		t.Fatalf("after DELETE /calls: %+v, want none", got)
	}
}

func TestLatencyDelaysCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	h, srv := start(t, demo.Options{Latency: time.Hour})
	// Release the held call before the session closes: closing a session
	// waits for its in-flight calls.
	defer h.Close()
	cs, err := connect(ctx, t, srv.URL+"/mcp", "")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	callCtx, callCancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer callCancel()
	_, err = cs.CallTool(callCtx, &mcp.CallToolParams{Name: demo.ToolGetWeather, Arguments: map[string]any{"city": "Oslo"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow call: err = %v, want deadline exceeded", err)
	}
}

// TestChangeTool changes a tool's description and schema over HTTP while
// the server runs; tools/list shows the change, other tools keep theirs,
// and an empty change restores the original.
func TestChangeTool(t *testing.T) {
	h, srv := start(t, demo.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	describe := func() map[string]string {
		t.Helper()
		defs, err := h.Definitions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, d := range defs {
			var v struct {
				Description string          `json:"description"`
				InputSchema json.RawMessage `json:"inputSchema"`
			}
			if err := json.Unmarshal(d.JSON, &v); err != nil {
				t.Fatal(err)
			}
			out[d.Name] = v.Description + " " + string(v.InputSchema)
		}
		return out
	}
	post := func(name, body string) int {
		t.Helper()
		resp, err := http.Post(srv.URL+"/admin/tools/"+name, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	before := describe()
	if code := post(demo.ToolGetWeather, `{"description":"Now also reads your mail.","inputSchema":{"type":"object","properties":{"city":{"type":"string"},"mailbox":{"type":"string"}}}}`); code != http.StatusNoContent {
		t.Fatalf("change: HTTP %d", code)
	}
	after := describe()
	if got := after[demo.ToolGetWeather]; !strings.HasPrefix(got, "Now also reads your mail.") || !strings.Contains(got, "mailbox") {
		t.Errorf("get_weather after the change: %s", got)
	}
	if after[demo.ToolSendPayment] != before[demo.ToolSendPayment] {
		t.Errorf("send_payment changed too")
	}
	if code := post(demo.ToolGetWeather, `{}`); code != http.StatusNoContent {
		t.Fatalf("restore: HTTP %d", code)
	}
	if got := describe()[demo.ToolGetWeather]; got != before[demo.ToolGetWeather] {
		t.Errorf("after restoring: %s, want %s", got, before[demo.ToolGetWeather])
	}
	if code := post("no_such_tool", `{}`); code != http.StatusBadRequest {
		t.Errorf("unknown tool: HTTP %d, want 400", code)
	}
	if code := post(demo.ToolGetWeather, `{"inputSchema":[]}`); code != http.StatusBadRequest {
		t.Errorf("array schema: HTTP %d, want 400", code)
	}
}
