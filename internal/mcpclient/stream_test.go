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

// liveServer is an official-SDK server with the tools these tests need:
// ping (the server pings the client from within the call), wait (blocks
// until cancelled and records it) and chatty (logs at two levels), plus
// a subscribable resource.
type liveServer struct {
	srv       *mcp.Server
	cancelled chan struct{}
	ts        *httptest.Server
	posts     *postLog
}

// postLog keeps the bodies POSTed to the server.
type postLog struct {
	mu     sync.Mutex
	bodies []string
	next   http.Handler
}

func (p *postLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.bodies = append(p.bodies, string(b))
		p.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
	}
	p.next.ServeHTTP(w, r)
}

// count is the number of POSTed bodies containing every part.
func (p *postLog) count(parts ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, b := range p.bodies {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(b, part)
		}
		if all {
			n++
		}
	}
	return n
}

func startLive(t *testing.T, stateless bool, opts *mcp.ServerOptions) *liveServer {
	t.Helper()
	if opts == nil {
		opts = &mcp.ServerOptions{}
	}
	opts.SubscribeHandler = func(context.Context, *mcp.SubscribeRequest) error { return nil }
	opts.UnsubscribeHandler = func(context.Context, *mcp.UnsubscribeRequest) error { return nil }
	ls := &liveServer{srv: mcp.NewServer(&mcp.Implementation{Name: "live", Version: "1"}, opts), cancelled: make(chan struct{}, 1)}
	mcp.AddTool(ls.srv, &mcp.Tool{Name: "ping"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if err := req.Session.Ping(ctx, nil); err != nil {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil, nil //nolint:nilerr // a failed ping is the tool's result
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "pong"}}}, nil, nil
	})
	mcp.AddTool(ls.srv, &mcp.Tool{Name: "wait"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case <-ctx.Done():
			ls.cancelled <- struct{}{}
			return nil, nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "waited"}}}, nil, nil
		}
	})
	mcp.AddTool(ls.srv, &mcp.Tool{Name: "chatty"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		for _, level := range []mcp.LoggingLevel{"debug", "warning"} {
			_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: level, Data: "at " + string(level)})
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "said"}}}, nil, nil
	})
	ls.srv.AddResource(&mcp.Resource{URI: "live://status", Name: "status"}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "ok"}}}, nil
	})
	ls.posts = &postLog{next: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return ls.srv }, &mcp.StreamableHTTPOptions{Stateless: stateless})}
	ls.ts = httptest.NewServer(ls.posts)
	t.Cleanup(ls.ts.Close)
	return ls
}

func liveClient(t *testing.T, url string, era mcpclient.Era, logLevel string) *mcpclient.Client {
	t.Helper()
	c, err := mcpclient.New(mcpclient.Config{URL: url, Era: era, Name: "portcullis-test", Version: "1", LogLevel: logLevel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// TestServerPingsAreAnswered: a server that pings the client in the
// middle of a call gets its answer from the client itself, and the call
// goes on; the handler never sees the ping.
func TestServerPingsAreAnswered(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ls := startLive(t, false, nil)
	c := liveClient(t, ls.ts.URL, mcpclient.EraLegacy, "")
	var seen []string
	m, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"ping","arguments":{}}`), func(m *mcpwire.Message) { seen = append(seen, m.Method) })
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, m); got != "pong" {
		t.Errorf("ping tool answered %q, want pong", got)
	}
	if len(seen) != 0 {
		t.Errorf("the handler saw %v; pings are the client's business", seen)
	}
}

// TestAbandonedLegacyCallIsCancelledUpstream: in the legacy era a call
// whose context ends is cancelled at the server with
// notifications/cancelled (a dropped connection would not stop it).
func TestAbandonedLegacyCallIsCancelledUpstream(t *testing.T) {
	ls := startLive(t, false, nil)
	c := liveClient(t, ls.ts.URL, mcpclient.EraLegacy, "")
	if _, err := c.Era(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"wait","arguments":{}}`), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	select {
	case <-ls.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's tool was never cancelled")
	}
	if n := ls.posts.count(`"notifications/cancelled"`, `"requestId":"pc-`); n != 1 {
		t.Errorf("%d notifications/cancelled sent, want 1", n)
	}
}

// TestLogLevel: with Config.LogLevel the server's log messages at or
// above it arrive, in both eras (logging/setLevel after the legacy
// handshake, _meta in every modern request); without it none do.
func TestLogLevel(t *testing.T) {
	for _, tt := range []struct {
		name      string
		stateless bool
		era       mcpclient.Era
		level     string
		want      []string
	}{
		{"legacy debug", false, mcpclient.EraLegacy, "debug", []string{"debug", "warning"}},
		{"legacy warning", false, mcpclient.EraLegacy, "warning", []string{"warning"}},
		{"legacy none", false, mcpclient.EraLegacy, "", nil},
		{"modern debug", true, mcpclient.EraModern, "debug", []string{"debug", "warning"}},
		{"modern none", true, mcpclient.EraModern, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			ls := startLive(t, tt.stateless, nil)
			c := liveClient(t, ls.ts.URL, tt.era, tt.level)
			var got []string
			_, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"chatty","arguments":{}}`), func(m *mcpwire.Message) {
				if m.Method == "notifications/message" {
					var p struct {
						Level string `json:"level"`
					}
					_ = json.Unmarshal(m.Params, &p)
					got = append(got, p.Level)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("log levels received %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStandaloneStream: the legacy session's GET stream carries a
// subscribed resource's updates and the server's keep-alive pings, which
// the client answers.
func TestStandaloneStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ls := startLive(t, false, &mcp.ServerOptions{KeepAlive: 30 * time.Millisecond})
	c := liveClient(t, ls.ts.URL, mcpclient.EraLegacy, "")
	sid, err := c.Session(ctx)
	if err != nil || sid == "" {
		t.Fatalf("session %q: %v", sid, err)
	}
	m, err := c.Call(ctx, "resources/subscribe", json.RawMessage(`{"uri":"live://status"}`), nil)
	if err != nil || m.Kind() != mcpwire.KindResult {
		t.Fatalf("subscribe: %v %v", m, err)
	}
	updates := make(chan string, 4)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var opened atomic.Bool
	go func() {
		done <- c.Stream(sctx, func(m *mcpwire.Message) {
			if m.Method == "notifications/resources/updated" {
				if !opened.Load() {
					t.Error("a message before the stream was reported open")
				}
				updates <- string(m.Params)
			}
		}, func() { opened.Store(true) })
	}()
	// The stream is open once the server delivers to it; keep updating
	// until an update arrives.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var got string
	for got == "" {
		select {
		case got = <-updates:
		case <-tick.C:
			_ = ls.srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "live://status"})
		case <-ctx.Done():
			t.Fatal("no update arrived on the standalone stream")
		}
	}
	if !strings.Contains(got, `"uri":"live://status"`) {
		t.Errorf("update %s", got)
	}
	for ls.posts.count(`"result":{}`) < 2 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the server's keep-alive pings were not answered")
		}
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("stream ended with %v", err)
	}
	if sid2, _ := c.Session(ctx); sid2 != sid {
		t.Errorf("session changed from %s to %s: the pings went unanswered", sid, sid2)
	}

	// A modern server has no standalone stream.
	modern := startLive(t, true, nil)
	if err := liveClient(t, modern.ts.URL, mcpclient.EraModern, "").Stream(ctx, nil, nil); !errors.Is(err, mcpclient.ErrNoStream) {
		t.Errorf("modern Stream: %v, want ErrNoStream", err)
	}
}

// TestProtocolErrors: a server that answers but breaks the protocol gets
// a ProtocolError quoting a sanitised excerpt of what it said, distinct
// from one that cannot be reached or fails in HTTP's terms.
func TestProtocolErrors(t *testing.T) {
	const cred = "hidden-credential-value"
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, m *mcpwire.Message)
		quote   string
		code    int
	}{
		{"html page with 200", func(w http.ResponseWriter, _ *mcpwire.Message) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>login with " + cred + "</html>"))
		}, "<html>login with [masked]</html>", 0},
		{"not JSON-RPC", func(w http.ResponseWriter, _ *mcpwire.Message) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"hello":"world"}`))
		}, `{"hello":"world"}`, 0},
		{"another id", func(w http.ResponseWriter, _ *mcpwire.Message) {
			res, _ := mcpwire.NewResult(json.RawMessage(`"other-7"`), json.RawMessage(`{}`))
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(res)
		}, `"other-7"`, 0},
		{"malformed event", func(w http.ResponseWriter, _ *mcpwire.Message) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("data: {not json\n\n"))
		}, "{not json", 0},
		{"json-rpc error to the handshake", func(w http.ResponseWriter, m *mcpwire.Message) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(mcpwire.NewError(m.ID, &mcpwire.Error{Code: -32603, Message: "boom " + cred}))
		}, "boom [masked]", -32603},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				m, err := mcpwire.Parse(body)
				if err != nil {
					http.Error(w, "bad", http.StatusBadRequest)
					return
				}
				tt.handler(w, m)
			}))
			defer srv.Close()
			c, err := mcpclient.New(mcpclient.Config{URL: srv.URL, Era: mcpclient.EraLegacy, Hide: []string{cred}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Call(t.Context(), "tools/call", json.RawMessage(`{"name":"x"}`), nil)
			var pe *mcpclient.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want a ProtocolError", err, err)
			}
			if pe.Excerpt != tt.quote || pe.Code != tt.code {
				t.Errorf("excerpt %q code %d, want %q and %d", pe.Excerpt, pe.Code, tt.quote, tt.code)
			}
			if strings.Contains(err.Error(), cred) {
				t.Errorf("error %q shows the credential", err)
			}
		})
	}
}
