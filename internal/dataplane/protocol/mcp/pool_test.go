package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
	"github.com/portcullis-gw/portcullis/test/harness"
	"google.golang.org/protobuf/types/known/durationpb"
)

const secret = "upstream-secret-value"

// upstreamServer is a demo upstream on a fixed address that a test can
// restart.
type upstreamServer struct {
	t    *testing.T
	addr string
	opts demo.Options
	h    *demo.Handler
	srv  *httptest.Server

	mu      sync.Mutex
	current *demo.Handler // what the server delegates to (forget swaps it)
}

func (u *upstreamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	h := u.current
	u.mu.Unlock()
	h.ServeHTTP(w, r)
}

// forget swaps in a fresh demo server, knowing no session, behind the same
// running listener: the upstream forgot its sessions, but the gateway's
// pooled connections stay valid (unlike restart, where one call may race a
// connection to the old process).
func (u *upstreamServer) forget() {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := u.h
	u.h = demo.NewHandler(u.opts)
	u.current = u.h
	old.Close()
}

func startUpstream(t *testing.T, opts demo.Options) *upstreamServer {
	t.Helper()
	u := &upstreamServer{t: t, addr: "127.0.0.1:0", opts: opts}
	u.start()
	t.Cleanup(u.stop)
	return u
}

func (u *upstreamServer) start() {
	u.t.Helper()
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		u.t.Fatalf("listen: %v", err)
	}
	u.addr = ln.Addr().String()
	u.h = demo.NewHandler(u.opts)
	u.mu.Lock()
	u.current = u.h
	u.mu.Unlock()
	u.srv = httptest.NewUnstartedServer(u)
	u.srv.Listener = ln
	u.srv.Start()
}

func (u *upstreamServer) stop() {
	if u.srv == nil {
		return
	}
	u.h.Close()
	u.srv.Close()
	u.srv = nil
}

// restart stops the upstream and starts a fresh one, knowing no session,
// on the same address.
func (u *upstreamServer) restart() {
	u.t.Helper()
	u.stop()
	u.start()
}

func (u *upstreamServer) url() string { return "http://" + u.addr + "/mcp" }

// servedCalls keeps the calls the upstream answered with 200.
func servedCalls(calls []demo.Call) []demo.Call {
	var out []demo.Call
	for _, c := range calls {
		if c.Status == http.StatusOK {
			out = append(out, c)
		}
	}
	return out
}

func newPool(t *testing.T) *mcpgw.Pool {
	t.Helper()
	p := mcpgw.NewPool(testLogger(t))
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close pool: %v", err)
		}
	})
	return p
}

func resolverFor(u *configv1.Upstream) *upstreamtest.Resolver {
	r := upstreamtest.NewResolver()
	r.SetUpstream(u)
	r.SetSecret("tok", []byte(secret), "127.0.0.1")
	return r
}

func callWeather(ctx context.Context, p *mcpgw.Pool, r upstream.Resolver) (json.RawMessage, bool, error) {
	return p.CallTool(ctx, r, mcpgw.ToolCall{Upstream: "demo", Tool: demo.ToolGetWeather,
		Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY, Arguments: json.RawMessage(`{"city":"Oslo"}`)})
}

// wantRefusal asserts err is a Refusal with reason and a message that
// carries none of the given secrets, and returns the message.
func wantRefusal(t *testing.T, err error, reason pipeline.Reason, secrets ...string) string {
	t.Helper()
	var ref *pipeline.Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("err = %v, want a %s refusal", err, reason)
	}
	if ref.Reason != reason {
		t.Fatalf("refusal = %v, want reason %s", ref, reason)
	}
	for _, s := range secrets {
		if strings.Contains(ref.Message, s) {
			t.Fatalf("refusal message %q leaks %q", ref.Message, s)
		}
	}
	return ref.Message
}

func TestIsErrorResult(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	up := startUpstream(t, demo.Options{})
	p := newPool(t)
	r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))

	tests := []struct {
		name string
		tool string
		args string
	}{
		{name: "schema violation upstream", tool: demo.ToolGetWeather, args: `{}`},
		{name: "tool failure", tool: demo.ToolCreateInvoice, args: `{"customer":"acme","amount":-1}`},
	}
	for _, tc := range tests {
		body, isErr, err := p.CallTool(ctx, r, mcpgw.ToolCall{Upstream: "demo", Tool: tc.tool, Arguments: json.RawMessage(tc.args)})
		if err != nil || !isErr || !strings.Contains(string(body), `"isError":true`) {
			t.Errorf("%s: got %s isError %v err %v, want an isError result", tc.name, body, isErr, err)
		}
	}
}

func TestSessionRecreatedAfterRestart(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		t.Run(map[bool]string{false: "stateful", true: "stateless"}[stateless], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			up := startUpstream(t, demo.Options{Stateless: stateless})
			p := newPool(t)
			r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))

			if _, _, err := callWeather(ctx, p, r); err != nil {
				t.Fatalf("first call: %v", err)
			}
			first := up.h.Calls()[0].Header.Get("Mcp-Session-Id")
			if !stateless && first == "" {
				t.Fatal("stateful upstream: the call carried no session id")
			}

			up.restart() // the new server knows no session
			// The first call may still race a pooled connection to the old
			// process (EOF before the transport noticed the close); that one
			// fails cleanly and is never re-sent, since it may have been
			// delivered. The next one must work without any client action.
			var err error
			var isErr bool
			for attempt := 0; attempt < 2; attempt++ {
				if _, isErr, err = callWeather(ctx, p, r); err == nil && !isErr {
					break
				}
				t.Logf("call %d after restart: isError %v, err %v", attempt+1, isErr, err)
			}
			if err != nil || isErr {
				t.Fatalf("calls after restart keep failing: isError %v, err %v", isErr, err)
			}
			served := servedCalls(up.h.Calls())
			if len(served) != 1 {
				t.Fatalf("restarted upstream served %d calls, want 1", len(served))
			}
			if second := served[0].Header.Get("Mcp-Session-Id"); !stateless && (second == "" || second == first) {
				t.Fatalf("call after restart used session %q, want a new one (first %q)", second, first)
			}
		})
	}
}

// TestForgottenSessionDeliveredOnce: a mutating call whose session the
// upstream forgot runs exactly once, in the new session.
func TestForgottenSessionDeliveredOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	up := startUpstream(t, demo.Options{})
	p := newPool(t)
	r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))
	if _, _, err := callWeather(ctx, p, r); err != nil {
		t.Fatalf("first call: %v", err)
	}
	up.forget()
	body, isErr, err := p.CallTool(ctx, r, mcpgw.ToolCall{Upstream: "demo", Tool: demo.ToolSendPayment,
		Class: configv1.ToolClass_TOOL_CLASS_MUTATING, Arguments: json.RawMessage(`{"to":"bob","amount":5}`)})
	if err != nil || isErr {
		t.Fatalf("payment: isError %v, err %v", isErr, err)
	}
	// Either the first attempt was refused with 404 before the tool ran
	// and the second ran it, or the pool's listener found the session
	// forgotten first and the one attempt ran in the new session. The
	// restarted server's first payment is pay-1.
	calls := up.h.Calls()
	switch {
	case len(calls) == 2 && calls[0].Status == http.StatusNotFound && calls[1].Status == http.StatusOK:
	case len(calls) == 1 && calls[0].Status == http.StatusOK:
	default:
		t.Fatalf("upstream calls %+v, want a 404 then a 200, or one 200", calls)
	}
	if !strings.Contains(string(body), `"id":"pay-1"`) {
		t.Fatalf("payment result %s, want pay-1", body)
	}
}

func TestConfigChangeRecreatesSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	up := startUpstream(t, demo.Options{})
	p := newPool(t)
	r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))

	if _, _, err := callWeather(ctx, p, r); err != nil {
		t.Fatalf("first call: %v", err)
	}
	r.SetSecret("tok", []byte("rotated-secret"), "127.0.0.1")
	if _, _, err := callWeather(ctx, p, r); err != nil {
		t.Fatalf("call after rotation: %v", err)
	}
	calls := up.h.Calls()
	if len(calls) != 2 {
		t.Fatalf("upstream saw %d calls, want 2", len(calls))
	}
	if calls[1].Authorization != "Bearer rotated-secret" {
		t.Errorf("after rotation the upstream got %q, want the rotated secret", calls[1].Authorization)
	}
	if a, b := calls[0].Header.Get("Mcp-Session-Id"), calls[1].Header.Get("Mcp-Session-Id"); a == b {
		t.Errorf("both calls used session %q; a credential change must re-create it", a)
	}
	// The replaced session is closed once no call uses it.
	harness.Await(t, 10*time.Second, "old session closed", func() error {
		if n := up.h.OpenSessions(); n != 1 {
			return fmt.Errorf("the upstream holds %d sessions", n)
		}
		return nil
	})
}

func TestConcurrentCallsShareOneSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	up := startUpstream(t, demo.Options{})
	p := newPool(t)
	r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))

	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, _, err := callWeather(ctx, p, r); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	sessions := map[string]bool{}
	for _, c := range up.h.Calls() {
		sessions[c.Header.Get("Mcp-Session-Id")] = true
	}
	if len(sessions) != 1 {
		t.Fatalf("%d concurrent calls used %d sessions, want 1", n, len(sessions))
	}
}

func TestDeadUpstreamUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	u := upstreamtest.MCP("demo", "http://"+addr+"/mcp", "tok")
	u.Resilience = &configv1.Resilience{Timeout: durationpb.New(20 * time.Second)}
	p := newPool(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, _, err = callWeather(ctx, p, resolverFor(u))
	// Unavailable rather than timeout: the refusal came from the failed
	// dial, not from waiting out the 20s.
	wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret, addr)
}

func TestSlowUpstreamTimesOut(t *testing.T) {
	up := startUpstream(t, demo.Options{Latency: time.Hour})
	defer up.stop() // release the held call before the pool closes
	u := upstreamtest.MCP("demo", up.url(), "tok")
	const timeout = 300 * time.Millisecond
	u.Resilience = &configv1.Resilience{Timeout: durationpb.New(timeout)}
	p := newPool(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	start := time.Now()
	_, _, err := callWeather(ctx, p, resolverFor(u))
	elapsed := time.Since(start)
	msg := wantRefusal(t, err, pipeline.ReasonUpstreamTimeout, secret)
	if !strings.Contains(msg, timeout.String()) {
		t.Errorf("message %q does not name the timeout", msg)
	}
	// The bound is the configured timeout, not the upstream's hour; the
	// slack only absorbs a loaded test machine.
	if elapsed < timeout || elapsed > timeout+10*time.Second {
		t.Fatalf("timed out after %s, want about %s", elapsed, timeout)
	}
}

func TestCallerCancellation(t *testing.T) {
	up := startUpstream(t, demo.Options{Latency: time.Hour})
	defer up.stop() // release the held call before the pool closes
	p := newPool(t)
	ctx, cancel := context.WithCancel(t.Context())
	r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))
	done := make(chan error, 1)
	go func() {
		_, _, err := callWeather(ctx, p, r)
		done <- err
	}()
	harness.Await(t, 10*time.Second, "call reached the upstream", func() error {
		if len(up.h.Calls()) == 0 {
			return errors.New("no call yet")
		}
		return nil
	})
	cancel()
	err := <-done
	var ref *pipeline.Refusal
	if !errors.Is(err, context.Canceled) || errors.As(err, &ref) {
		t.Fatalf("err = %v, want context.Canceled and no refusal", err)
	}
}

func TestClosedPoolRefuses(t *testing.T) {
	up := startUpstream(t, demo.Options{})
	p := mcpgw.NewPool(testLogger(t))
	r := resolverFor(upstreamtest.MCP("demo", up.url(), "tok"))
	if _, _, err := callWeather(t.Context(), p, r); err != nil {
		t.Fatalf("call: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if n := up.h.OpenSessions(); n != 0 {
		t.Errorf("after Close the upstream holds %d sessions, want 0", n)
	}
	_, _, err := callWeather(t.Context(), p, r)
	wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable)
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestBothEras: a stateless (2026-07-28) upstream is detected and called
// without a session, a stateful one over a legacy session; forcing the
// era works too.
func TestBothEras(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name      string
		stateless bool
		era       configv1.McpEra
	}{
		{"stateful, detected", false, configv1.McpEra_MCP_ERA_UNSPECIFIED},
		{"stateless, detected", true, configv1.McpEra_MCP_ERA_UNSPECIFIED},
		{"stateful, legacy", false, configv1.McpEra_MCP_ERA_LEGACY},
		{"stateless, modern", true, configv1.McpEra_MCP_ERA_MODERN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, demo.Options{Stateless: tc.stateless})
			u := upstreamtest.MCP("demo", up.url(), "tok")
			u.McpEra = tc.era
			p := newPool(t)
			body, isErr, err := callWeather(ctx, p, resolverFor(u))
			if err != nil || isErr || !strings.Contains(string(body), "Oslo") {
				t.Fatalf("got %s isError %v err %v", body, isErr, err)
			}
			calls := servedCalls(up.h.Calls())
			if len(calls) != 1 {
				t.Fatalf("%d calls served, want 1", len(calls))
			}
			h := calls[0].Header
			if tc.stateless {
				if h.Get("Mcp-Session-Id") != "" || h.Get("Mcp-Method") != "tools/call" || h.Get("Mcp-Name") != demo.ToolGetWeather {
					t.Errorf("modern call headers: %v", h)
				}
			} else if h.Get("Mcp-Session-Id") == "" {
				t.Errorf("legacy call without a session: %v", h)
			}
		})
	}
}

// TestResultForwardedAsSent: fields the gateway does not know, and the
// upstream's own spelling, reach the caller byte for byte.
func TestResultForwardedAsSent(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	const result = `{"content":[{"type":"text","text":"ok","x-vendor":{"score":0.50}}],"x-extra":[1, 2],"isError":false}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "application/json")
		switch req.Method {
		case "server/discover":
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}}}}`, req.ID)
		default:
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, result)
		}
	}))
	defer srv.Close()
	p := newPool(t)
	body, _, err := callWeather(ctx, p, resolverFor(upstreamtest.MCP("demo", srv.URL, "tok")))
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != result {
		t.Errorf("result forwarded as\n%s\nwant\n%s", body, result)
	}
}

// TestUnusableUpstreams: what MCP adds to the generic checks (package
// upstream tests the rest): only MCP upstreams are called, a header
// credential may not take one of MCP's own headers, and an upstream that
// refuses the credential is named; the tool never runs.
func TestUnusableUpstreams(t *testing.T) {
	up := startUpstream(t, demo.Options{RequireBearer: "the-right-token"})
	tests := []struct {
		name    string
		mutate  func(u *configv1.Upstream)
		wantMsg string
	}{
		{name: "not MCP", mutate: func(u *configv1.Upstream) { u.Protocol = configv1.Protocol_PROTOCOL_A2A },
			wantMsg: "does not speak MCP"},
		{name: "MCP's session header", mutate: func(u *configv1.Upstream) {
			u.Credential = &configv1.UpstreamCredential{Kind: &configv1.UpstreamCredential_Header{
				Header: &configv1.HeaderCredential{Header: "mcp-session-id", Secret: "tok"}}}
		}, wantMsg: "header name is not allowed"},
		{name: "wrong credential", mutate: func(*configv1.Upstream) {}, wantMsg: "refused the gateway's credential"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			u := upstreamtest.MCP("demo", up.url(), "tok")
			tc.mutate(u)
			_, _, err := callWeather(ctx, newPool(t), resolverFor(u))
			msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret, "the-right-token")
			if !strings.Contains(msg, tc.wantMsg) || !strings.Contains(msg, `"demo"`) {
				t.Fatalf("message %q, want it to name the upstream and say %q", msg, tc.wantMsg)
			}
		})
	}
	if n := len(up.h.Calls()); n != 0 {
		t.Fatalf("the upstream saw %d tools/call requests, want none", n)
	}
}
