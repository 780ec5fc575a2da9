package mcpclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

type echoArgs struct {
	Text string `json:"text"`
}

type slowArgs struct {
	Steps int `json:"steps"`
}

// newServer is an official-SDK MCP server with an echo tool and a tool
// that reports progress before answering.
func newServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test-upstream", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo text."},
		func(_ context.Context, _ *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Report progress, then answer."},
		func(ctx context.Context, req *mcp.CallToolRequest, a slowArgs) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			for i := range a.Steps {
				if token != nil {
					_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(i + 1), Total: float64(a.Steps)})
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
		})
	return s
}

// swappable lets a test replace the server behind one URL (a restart that
// forgets every session) and counts requests by method.
type swappable struct {
	mu      sync.Mutex
	h       http.Handler
	methods map[string]int
	headers []http.Header
}

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.methods[r.Header.Get("Mcp-Method")+"|"+r.Method]++
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

func (s *swappable) set(h http.Handler) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func start(t *testing.T, stateless bool) (*httptest.Server, *swappable) {
	t.Helper()
	handler := func() http.Handler {
		srv := newServer()
		return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: stateless})
	}
	sw := &swappable{h: handler(), methods: map[string]int{}}
	ts := httptest.NewServer(sw)
	t.Cleanup(ts.Close)
	return ts, sw
}

func newClient(t *testing.T, url string, era mcpclient.Era) *mcpclient.Client {
	t.Helper()
	c, err := mcpclient.New(mcpclient.Config{URL: url, Era: era, Name: "portcullis-test", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func text(t *testing.T, m *mcpwire.Message) string {
	t.Helper()
	if m.Kind() != mcpwire.KindResult {
		t.Fatalf("response is a %v: %s", m.Kind(), m.Raw)
	}
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(m.Result, &res); err != nil || len(res.Content) == 0 {
		t.Fatalf("result %s: %v", m.Result, err)
	}
	return res.Content[0].Text
}

func TestBothErasCallToolsAndRelayProgress(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		stateless bool
		era       mcpclient.Era
		want      mcpclient.Era
	}{
		{"stateful server, legacy", false, mcpclient.EraLegacy, mcpclient.EraLegacy},
		{"stateless server, auto detects modern", true, mcpclient.EraAuto, mcpclient.EraModern},
		{"stateless server, modern", true, mcpclient.EraModern, mcpclient.EraModern},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts, sw := start(t, tt.stateless)
			c := newClient(t, ts.URL, tt.era)
			era, err := c.Era(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if era != tt.want {
				t.Fatalf("era = %v, want %v", era, tt.want)
			}
			m, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo","arguments":{"text":"hi"}}`), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := text(t, m); got != "hi" {
				t.Errorf("echo = %q", got)
			}

			var progress []string
			m, err = c.Call(ctx, "tools/call", json.RawMessage(`{"name":"slow","arguments":{"steps":3},"_meta":{"progressToken":"tok-1"}}`),
				func(n *mcpwire.Message) {
					if n.Method == "notifications/progress" {
						progress = append(progress, string(n.Params))
					}
				})
			if err != nil {
				t.Fatal(err)
			}
			if got := text(t, m); got != "done" {
				t.Errorf("slow = %q", got)
			}
			if len(progress) != 3 || !strings.Contains(progress[0], `"progressToken":"tok-1"`) {
				t.Errorf("progress = %v, want 3 notifications for tok-1", progress)
			}

			// Unknown tool: a JSON-RPC error (or an isError result), never a Go error.
			m, err = c.Call(ctx, "tools/call", json.RawMessage(`{"name":"nope","arguments":{}}`), nil)
			if err != nil {
				t.Fatalf("unknown tool: %v", err)
			}
			if m.Kind() != mcpwire.KindError && !strings.Contains(string(m.Result), `"isError":true`) {
				t.Errorf("unknown tool answered %s", m.Raw)
			}

			sw.mu.Lock()
			defer sw.mu.Unlock()
			for _, h := range sw.headers[len(sw.headers)-1:] {
				if tt.want == mcpclient.EraModern {
					if h.Get("Mcp-Method") != "tools/call" || h.Get("Mcp-Name") != "nope" || h.Get("Mcp-Protocol-Version") != mcpwire.VersionModern {
						t.Errorf("modern request headers: %v", h)
					}
					if h.Get("Mcp-Session-Id") != "" {
						t.Errorf("modern request carried a session id")
					}
				} else if h.Get("Mcp-Session-Id") == "" || h.Get("Mcp-Protocol-Version") != mcpwire.VersionLegacy {
					t.Errorf("legacy request headers: %v", h)
				}
			}
		})
	}
}

func TestForgottenSessionIsRecreated(t *testing.T) {
	ctx := context.Background()
	ts, sw := start(t, false)
	c := newClient(t, ts.URL, mcpclient.EraLegacy)
	if _, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo","arguments":{"text":"a"}}`), nil); err != nil {
		t.Fatal(err)
	}
	// The upstream restarts: every session it knew is gone.
	srv := newServer()
	sw.set(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	m, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo","arguments":{"text":"b"}}`), nil)
	if err != nil {
		t.Fatalf("after the upstream forgot the session: %v", err)
	}
	if got := text(t, m); got != "b" {
		t.Errorf("echo = %q", got)
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	initializes := 0
	for _, h := range sw.headers {
		if h.Get("Mcp-Session-Id") == "" {
			initializes++
		}
	}
	if initializes != 2 {
		t.Errorf("%d requests without a session (initialize), want 2", initializes)
	}
}

func TestConcurrentCallsShareOneConnection(t *testing.T) {
	ctx := context.Background()
	ts, sw := start(t, false)
	c := newClient(t, ts.URL, mcpclient.EraLegacy)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			m, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo","arguments":{"text":"x`+string(rune('a'+i))+`"}}`), nil)
			if err != nil || m.Kind() != mcpwire.KindResult {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d concurrent calls failed", failed.Load())
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sessions := map[string]bool{}
	for _, h := range sw.headers {
		if id := h.Get("Mcp-Session-Id"); id != "" {
			sessions[id] = true
		}
	}
	if len(sessions) != 1 {
		t.Errorf("%d sessions for 20 concurrent calls, want 1", len(sessions))
	}
}

func TestFailuresAreClassified(t *testing.T) {
	ctx := context.Background()
	// Nothing listens: not delivered, safe to retry.
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	c := newClient(t, url, mcpclient.EraAuto)
	_, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo"}`), nil)
	if err == nil || !mcpclient.NotDelivered(err) {
		t.Errorf("dead server: err = %v, want a not-delivered error", err)
	}

	// A server that refuses the credential: an HTTP error, no fallback.
	var hits atomic.Int32
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer deny.Close()
	c = newClient(t, deny.URL, mcpclient.EraAuto)
	_, err = c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo"}`), nil)
	var he *mcpclient.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Errorf("401 server: err = %v", err)
	}
	if hits.Load() != 1 {
		t.Errorf("401 server got %d requests, want 1 (no initialize after a refused credential)", hits.Load())
	}

	// A stream that ends without the response: may have been processed.
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if discover(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n"))
	}))
	defer cut.Close()
	c = newClient(t, cut.URL, mcpclient.EraModern)
	_, err = c.Call(ctx, "tools/call", json.RawMessage(`{"name":"x"}`), nil)
	if !errors.Is(err, mcpclient.ErrNoResponse) || mcpclient.NotDelivered(err) {
		t.Errorf("cut stream: err = %v, want ErrNoResponse (delivered)", err)
	}

	// A slow server and a deadline.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if discover(w, r) {
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	c = newClient(t, slow.URL, mcpclient.EraModern)
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Call(tctx, "tools/call", json.RawMessage(`{"name":"x"}`), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v", err)
	}
}

// discover answers server/discover for the modern era (reading the body,
// so that the server notices a client that goes away); false for any
// other method.
func discover(w http.ResponseWriter, r *http.Request) bool {
	body, _ := io.ReadAll(r.Body)
	m, err := mcpwire.Parse(body)
	if err != nil || m.Method != "server/discover" {
		return false
	}
	res, _ := mcpwire.NewResult(m.ID, json.RawMessage(`{"supportedVersions":["2026-07-28"],"capabilities":{}}`))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(res)
	return true
}

func TestListToolsReturnsDefinitionsAsSent(t *testing.T) {
	ctx := context.Background()
	for _, stateless := range []bool{false, true} {
		ts, _ := start(t, stateless)
		c := newClient(t, ts.URL, mcpclient.EraAuto)
		tools, err := c.ListTools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, raw := range tools {
			var tool struct {
				Name        string          `json:"name"`
				InputSchema json.RawMessage `json:"inputSchema"`
			}
			if err := json.Unmarshal(raw, &tool); err != nil || tool.InputSchema == nil {
				t.Fatalf("tool %s: %v", raw, err)
			}
			names[tool.Name] = true
		}
		if len(tools) != 2 || !names["echo"] || !names["slow"] {
			t.Errorf("stateless=%v: tools %v", stateless, names)
		}
	}
}

// TestErrorsQuoteOnlyAnExcerpt: what a failing server says reaches an
// error only as a short excerpt of printable ASCII, without the values the
// client hides (its credential) and without credential-looking values,
// whether it came as an error page or as a JSON-RPC error message.
func TestErrorsQuoteOnlyAnExcerpt(t *testing.T) {
	const cred = "s3cr3t-cred-value"
	long := strings.Repeat("internal detail ", 100)
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"error page", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "upstream says: got "+cred+" and Authorization: Bearer other-token-123\x1b[31m "+long, http.StatusBadGateway)
		}},
		{"json-rpc error", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "pc-1", "error": map[string]any{"code": -32000, "message": "denied " + cred + " api_key=k-999 " + long}})
			_, _ = w.Write(b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c, err := mcpclient.New(mcpclient.Config{URL: srv.URL, Era: mcpclient.EraModern, Hide: []string{cred}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListTools(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			t.Log(msg)
			for _, bad := range []string{cred, "other-token-123", "k-999", "\x1b"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error %q shows %q", msg, bad)
				}
			}
			if strings.Count(msg, "internal detail") > 10 {
				t.Errorf("error quotes the answer at length: %d bytes", len(msg))
			}
		})
	}
}
