package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// flaky is a demo upstream behind a switch: it can fail tools/call
// requests with an HTTP status before they reach the demo server, or hold
// them until released. Everything else (initialize, …) goes through.
type flaky struct {
	demo *demo.Handler
	srv  *httptest.Server

	failNext atomic.Int64 // tools/call requests still to fail
	failAll  atomic.Bool  // fail every tools/call
	garble   atomic.Bool  // answer every tools/call with an HTML page and 200
	status   int          // the failure's HTTP status

	calls    atomic.Int64 // tools/call requests received
	inFlight atomic.Int64 // tools/call requests being served

	holdMu sync.Mutex
	hold   chan struct{} // non-nil: tools/call waits until it is closed
}

func startFlaky(t *testing.T, status int) *flaky {
	t.Helper()
	f := &flaky{demo: demo.NewHandler(demo.Options{}), status: status}
	f.srv = httptest.NewServer(f)
	t.Cleanup(func() {
		f.release()
		f.demo.Close()
		f.srv.Close()
	})
	return f
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"tools/call"`)) {
			f.calls.Add(1)
			if f.failAll.Load() || f.failNext.Add(-1) >= 0 {
				http.Error(w, "induced failure", f.status)
				return
			}
			if f.garble.Load() {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html><h1>Maintenance</h1></html>"))
				return
			}
			f.inFlight.Add(1)
			defer f.inFlight.Add(-1)
			f.holdMu.Lock()
			hold := f.hold
			f.holdMu.Unlock()
			if hold != nil {
				<-hold
			}
		}
	}
	f.demo.ServeHTTP(w, r)
}

// holdCalls makes tools/call requests wait until release.
func (f *flaky) holdCalls() {
	f.holdMu.Lock()
	defer f.holdMu.Unlock()
	f.hold = make(chan struct{})
}

func (f *flaky) release() {
	f.holdMu.Lock()
	defer f.holdMu.Unlock()
	if f.hold != nil {
		close(f.hold)
		f.hold = nil
	}
}

func (f *flaky) url() string { return f.srv.URL + "/mcp" }

// recorder is a resilience.Observer that counts events.
type recorder struct {
	mu     sync.Mutex
	events map[string]int
}

var _ resilience.Observer = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{events: map[string]int{}} }

func (r *recorder) add(k string) {
	r.mu.Lock()
	r.events[k]++
	r.mu.Unlock()
}

func (r *recorder) count(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[k]
}

func (r *recorder) UpstreamRetry(u string)          { r.add("retry " + u) }
func (r *recorder) UpstreamBreaker(u, state string) { r.add("breaker " + u + " " + state) }
func (r *recorder) UpstreamRejected(u, why string)  { r.add("rejected " + u + " " + why) }

func resilientPool(t *testing.T, rec *recorder, opts ...upstream.Option) *mcpgw.Pool {
	t.Helper()
	opts = append([]upstream.Option{upstream.WithObserver(rec), upstream.WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)
	p := mcpgw.NewPool(testLogger(t), opts...)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// resilientUpstream is demo at url with resilience settings.
func resilientUpstream(url string, maxRetries, breakerFailures int32, breakerOpen time.Duration) *configv1.Upstream {
	u := upstreamtest.MCP("demo", url, "tok")
	u.Resilience = &configv1.Resilience{
		Timeout:         durationpb.New(10 * time.Second),
		MaxRetries:      proto.Int32(maxRetries),
		BreakerFailures: breakerFailures,
		BreakerOpen:     durationpb.New(breakerOpen),
	}
	return u
}

func call(ctx context.Context, p *mcpgw.Pool, r upstream.Resolver, tool string, class configv1.ToolClass, args string) (json.RawMessage, bool, error) {
	return p.CallTool(ctx, r, mcpgw.ToolCall{Upstream: "demo", Tool: tool, Class: class, Arguments: json.RawMessage(args)})
}

const (
	readOnly   = configv1.ToolClass_TOOL_CLASS_READ_ONLY
	idempotent = configv1.ToolClass_TOOL_CLASS_IDEMPOTENT
	mutating   = configv1.ToolClass_TOOL_CLASS_MUTATING
)

// TestRetriesOnlyForReadOnlyAndIdempotent: two induced failures are
// retried away for read-only and idempotent tools; a mutating or
// unclassified tool is sent once and the failure reported; the demo's call
// log shows what ran.
func TestRetriesOnlyForReadOnlyAndIdempotent(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		class     configv1.ToolClass
		tool      string
		args      string
		wantOK    bool
		wantSent  int64 // tools/call requests the upstream received
		wantRan   int   // of which reached the tool
		wantRetry int
	}{
		{name: "read-only 503", status: 503, class: readOnly, tool: demo.ToolGetWeather, args: `{"city":"Oslo"}`, wantOK: true, wantSent: 3, wantRan: 1, wantRetry: 2},
		{name: "read-only 429", status: 429, class: readOnly, tool: demo.ToolGetWeather, args: `{"city":"Oslo"}`, wantOK: true, wantSent: 3, wantRan: 1, wantRetry: 2},
		{name: "idempotent 502", status: 502, class: idempotent, tool: demo.ToolListInvoices, args: `{}`, wantOK: true, wantSent: 3, wantRan: 1, wantRetry: 2},
		{name: "mutating 503", status: 503, class: mutating, tool: demo.ToolSendPayment, args: `{"to":"bob","amount":5}`, wantSent: 1},
		{name: "unclassified 503", status: 503, tool: demo.ToolSendPayment, args: `{"to":"bob","amount":5}`, wantSent: 1},
		{name: "read-only 400", status: 400, class: readOnly, tool: demo.ToolGetWeather, args: `{"city":"Oslo"}`, wantSent: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f := startFlaky(t, tc.status)
			f.failNext.Store(2)
			rec := newRecorder()
			p := resilientPool(t, rec)
			r := resolverFor(resilientUpstream(f.url(), 2, 100, time.Minute))

			_, isErr, err := call(ctx, p, r, tc.tool, tc.class, tc.args)
			if tc.wantOK && (err != nil || isErr) {
				t.Fatalf("isError %v, err %v; want success after retries", isErr, err)
			}
			if !tc.wantOK {
				msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable, secret)
				if !strings.Contains(msg, fmt.Sprintf("HTTP %d", tc.status)) {
					t.Errorf("message %q does not name HTTP %d", msg, tc.status)
				}
			}
			if n := f.calls.Load(); n != tc.wantSent {
				t.Errorf("upstream received %d tools/call requests, want %d", n, tc.wantSent)
			}
			if n := len(f.demo.Calls()); n != tc.wantRan {
				t.Errorf("the tool ran %d times, want %d", n, tc.wantRan)
			}
			if n := rec.count("retry demo"); n != tc.wantRetry {
				t.Errorf("observer saw %d retries, want %d", n, tc.wantRetry)
			}
		})
	}
}

// TestNoRetryAfterAnAnswer: an isError result is the upstream answering;
// it is never retried, and never trips the breaker.
func TestNoRetryAfterAnAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f := startFlaky(t, 503)
	p := resilientPool(t, newRecorder())
	r := resolverFor(resilientUpstream(f.url(), 2, 2, time.Minute))

	for i := range 3 {
		if _, isErr, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{}`); err != nil || !isErr {
			t.Fatalf("schema violation: isError %v, err %v; want an isError result", isErr, err)
		}
		if n := f.calls.Load(); n != int64(i+1) {
			t.Fatalf("after %d calls the upstream received %d, want %d (no retries)", i+1, n, i+1)
		}
	}
	if ok, why := p.Healthy("demo"); !ok {
		t.Fatalf("answers tripped the breaker: %s", why)
	}
}

// TestProtocolErrors: an upstream that answers but breaks the protocol —
// a JSON-RPC error where a tools/call result was due (the real SDK's
// answer for a tool it does not have), an HTML page with 200 — is refused
// with upstream_protocol_error quoting a sanitised excerpt of its words,
// never retried, and counted by the breaker as a failure; an HTTP 503 is
// upstream_unavailable.
func TestProtocolErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f := startFlaky(t, 503)
	p := resilientPool(t, newRecorder())
	r := resolverFor(resilientUpstream(f.url(), 2, 2, time.Minute))

	_, _, err := call(ctx, p, r, "no_such_tool", readOnly, `{}`)
	msg := wantReason(t, err, pipeline.ReasonUpstreamProtocolError)
	if !strings.Contains(msg, "JSON-RPC error -32602") || !strings.Contains(msg, "no_such_tool") {
		t.Errorf("refusal %q, want the code and the upstream's words", msg)
	}
	if _, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`); err != nil {
		t.Fatalf("a good call between: %v", err)
	}

	f.garble.Store(true)
	_, _, err = call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`)
	msg = wantReason(t, err, pipeline.ReasonUpstreamProtocolError)
	if !strings.Contains(msg, "text/html") || !strings.Contains(msg, "<h1>Maintenance</h1>") || strings.Contains(msg, "tok") {
		t.Errorf("refusal %q, want the content type and an excerpt of the page", msg)
	}
	if n := f.calls.Load(); n != 3 {
		t.Errorf("the upstream received %d calls, want 3 (no retries after an answer)", n)
	}
	// The second protocol error in a row opens the breaker (2 failures).
	_, _, _ = call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`)
	if ok, _ := p.Healthy("demo"); ok {
		t.Error("two protocol errors in a row did not open the breaker")
	}

	f503 := startFlaky(t, 503)
	f503.failAll.Store(true)
	r = resolverFor(resilientUpstream(f503.url(), 0, 5, time.Minute))
	_, _, err = call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`)
	if msg := wantReason(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "HTTP 503") {
		t.Errorf("refusal %q, want HTTP 503", msg)
	}
}

func wantReason(t *testing.T, err error, reason pipeline.Reason) string {
	t.Helper()
	var ref *pipeline.Refusal
	if !errors.As(err, &ref) || ref.Reason != reason {
		t.Fatalf("err = %v, want a refusal with reason %s", err, reason)
	}
	return ref.Message
}

// TestBreaker: consecutive failures open the breaker; calls then fail at
// once without reaching the upstream, and Healthy says why; after
// breaker_open a trial call goes through and, the upstream having
// recovered, closes it again.
func TestBreaker(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	f := startFlaky(t, 503)
	rec := newRecorder()
	p := resilientPool(t, rec)
	const open = 500 * time.Millisecond
	u := resilientUpstream(f.url(), 0, 3, open)
	r := resolverFor(u)

	if _, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`); err != nil {
		t.Fatalf("first call: %v", err)
	}
	f.failAll.Store(true)
	for i := range 3 {
		_, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`)
		if msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "HTTP 503") {
			t.Fatalf("failure %d: %q, want the upstream's HTTP 503", i+1, msg)
		}
	}
	ok, why := p.Healthy("demo")
	if ok || !strings.Contains(why, "3 consecutive failures") {
		t.Fatalf("Healthy after 3 failures = %v %q, want unhealthy naming 3 consecutive failures", ok, why)
	}
	sent := f.calls.Load()

	// Open: refused fast, the upstream never sees it. A configuration swap
	// that leaves the upstream's settings alone keeps the breaker.
	r2 := resolverFor(proto.CloneOf(u))
	for _, res := range []upstream.Resolver{r, r2} {
		start := time.Now()
		_, _, err := call(ctx, p, res, demo.ToolSendPayment, mutating, `{"to":"bob","amount":5}`)
		msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable)
		if !strings.Contains(msg, `upstream "demo" is failing (3 consecutive failures); calls are refused for up to`) {
			t.Errorf("open-breaker message %q", msg)
		}
		if d := time.Since(start); d > open/2 {
			t.Errorf("refusal took %s; want it at once", d)
		}
	}
	if n := f.calls.Load(); n != sent {
		t.Fatalf("the upstream received %d calls while the breaker was open", n-sent)
	}
	// Other requests go through the same guard.
	_, err := p.Request(ctx, r, "demo", "resources/list", json.RawMessage(`{}`))
	if msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "consecutive failures") {
		t.Errorf("resources/list while the breaker is open: %q", msg)
	}
	if rec.count("rejected demo "+resilience.RejectedBreakerOpen) < 2 {
		t.Errorf("observer saw %d breaker rejections, want ≥ 2", rec.count("rejected demo "+resilience.RejectedBreakerOpen))
	}

	// Half-open: one trial call; it fails, so the breaker opens again.
	harness.Await(t, 10*time.Second, "breaker half-open", func() error {
		if ok, why := p.Healthy("demo"); !ok {
			return errors.New(why)
		}
		return nil
	})
	if _, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`); err == nil {
		t.Fatal("trial call against a failing upstream succeeded")
	}
	if ok, _ := p.Healthy("demo"); ok {
		t.Fatal("a failed trial call left the breaker closed")
	}

	// The upstream recovers: the next trial closes the breaker.
	f.failAll.Store(false)
	harness.Await(t, 10*time.Second, "call after recovery", func() error {
		_, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`)
		return err
	})
	if ok, why := p.Healthy("demo"); !ok {
		t.Fatalf("after recovery Healthy = false: %s", why)
	}
	for _, state := range []string{"open", "half-open", "closed"} {
		if rec.count("breaker demo "+state) == 0 {
			t.Errorf("observer saw no change to %s", state)
		}
	}
}

// TestConcurrencyLimit: with max_concurrency 2 and both slots held, a
// third call waits the queue wait and is refused without reaching the
// upstream; once a slot frees up, calls go through again.
func TestConcurrencyLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f := startFlaky(t, 503)
	rec := newRecorder()
	const queueWait = 200 * time.Millisecond
	p := resilientPool(t, rec, upstream.WithQueueWait(queueWait))
	u := resilientUpstream(f.url(), 2, 100, time.Minute)
	u.Limits = &configv1.UpstreamLimits{MaxConcurrency: 2}
	r := resolverFor(u)
	// Connect first, so the held calls are the only requests in flight.
	if _, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`); err != nil {
		t.Fatalf("first call: %v", err)
	}

	f.holdCalls()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			if _, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`); err != nil {
				errs <- err
			}
		})
	}
	harness.Await(t, 10*time.Second, "two calls held upstream", func() error {
		if n := f.inFlight.Load(); n != 2 {
			return fmt.Errorf("%d in flight", n)
		}
		return nil
	})
	sent := f.calls.Load()
	start := time.Now()
	_, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`)
	waited := time.Since(start)
	msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable)
	if !strings.Contains(msg, "already has 2 calls in flight") {
		t.Errorf("message %q does not name the limit", msg)
	}
	if waited < queueWait {
		t.Errorf("refused after %s, before the %s queue wait", waited, queueWait)
	}
	if n := f.calls.Load(); n != sent {
		t.Errorf("the refused call reached the upstream")
	}
	if rec.count("rejected demo "+resilience.RejectedConcurrencyLimit) != 1 {
		t.Errorf("observer saw %d concurrency rejections, want 1", rec.count("rejected demo "+resilience.RejectedConcurrencyLimit))
	}
	// Other requests count against the same limit.
	_, err = p.Request(ctx, r, "demo", "resources/list", json.RawMessage(`{}`))
	if msg := wantRefusal(t, err, pipeline.ReasonUpstreamUnavailable); !strings.Contains(msg, "already has 2 calls in flight") {
		t.Errorf("resources/list with every slot taken: %q", msg)
	}

	f.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("held call: %v", err)
	}
	if _, _, err := call(ctx, p, r, demo.ToolGetWeather, readOnly, `{"city":"Oslo"}`); err != nil {
		t.Fatalf("call after the slots freed: %v", err)
	}
	// A limit refusal is the gateway's own doing: the breaker stays shut.
	if ok, why := p.Healthy("demo"); !ok {
		t.Fatalf("Healthy = false: %s", why)
	}
}
