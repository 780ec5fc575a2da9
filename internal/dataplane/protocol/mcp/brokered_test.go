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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	mcpgw "github.com/portcullis-gw/portcullis/internal/dataplane/protocol/mcp"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/upstreamtest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/test/demoupstream/demo"
)

// brokerConfig is the fake configuration that also resolves upstreams,
// as the data plane's does, so that the real Forwarder can run.
type brokerConfig struct {
	*fakeConfig
	*upstreamtest.Resolver
}

// forwarding runs every operation through the default stages into the
// real Forwarder, keeping the audit records.
type forwarding struct {
	cfg pipeline.Config
	fwd *mcpgw.Forwarder

	mu      sync.Mutex
	audited []*auditv1.Record
}

func (b *forwarding) Begin(*http.Request) *pipeline.Call {
	return &pipeline.Call{Config: b.cfg, Mode: configsyncv1.Mode_MODE_NORMAL}
}

func (b *forwarding) Run(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	chain := pipeline.Chain(b.fwd.Forward, stages.Default(stages.Options{Audit: stages.Audit{Writer: b}})...)
	return chain(ctx, c)
}

func (b *forwarding) Write(_ context.Context, r *auditv1.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.audited = append(b.audited, r)
	return nil
}

// brokerEnv is the gateway endpoint, with the real pool and forwarder,
// in front of the demo upstream with its streaming tools and content.
type brokerEnv struct {
	up      *demo.Handler
	upURL   string
	backend *forwarding
	gwURL   string
}

func newBrokerEnv(t *testing.T, opts demo.Options) *brokerEnv {
	t.Helper()
	return newBrokerEnvWith(t, opts, brokerSetup{})
}

// brokerSetup varies a brokerEnv: wrap, when set, stands between the
// gateway and the demo upstream; http1 reaches it with upstream/h1.
type brokerSetup struct {
	wrap  func(http.Handler) http.Handler
	http1 bool
}

func newBrokerEnvWith(t *testing.T, opts demo.Options, setup brokerSetup) *brokerEnv {
	t.Helper()
	opts.RequireBearer, opts.StreamingTools, opts.Content = upstreamSecret, true, true
	up := demo.NewHandler(opts)
	var h http.Handler = up
	if setup.wrap != nil {
		h = setup.wrap(up)
	}
	upSrv := httptest.NewServer(h)
	t.Cleanup(upSrv.Close)
	t.Cleanup(up.Close)
	resolver := upstreamtest.NewResolver()
	resolver.SetUpstream(upstreamtest.MCP("demo", upSrv.URL+"/mcp", "demo-token"))
	resolver.SetSecret("demo-token", []byte(upstreamSecret), "127.0.0.1")
	pool := mcpgw.NewPool(testLogger(t), upstream.WithHTTP1(setup.http1))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg := brokerConfig{newFakeConfig(pinDemoTools(ctx, t, upSrv.URL+"/mcp")...), resolver}
	b := &forwarding{cfg: cfg, fwd: &mcpgw.Forwarder{Pool: pool, Logger: testLogger(t)}}
	gw := httptest.NewServer(mcpgw.NewHandler(b, testLogger(t), mcpgw.WithSubscriptions(pool)))
	// Cleanups run last first: the gateway closes before the pool.
	t.Cleanup(func() { _ = pool.Close() })
	t.Cleanup(gw.Close)
	return &brokerEnv{up: up, upURL: upSrv.URL, backend: b, gwURL: gw.URL}
}

// session is a Go SDK client session through the gateway and what it was
// sent beyond answers.
type session struct {
	*mcp.ClientSession
	mu        sync.Mutex
	levels    []string
	updated   []string
	withdrawn int
	// progress counts progress notifications: the wait tool sends one
	// once its handler runs, so a cancellation after it finds the call
	// (one sent before the upstream registered the request is ignored,
	// as MCP allows).
	progress int
	events   chan struct{} // a notification arrived
}

func (e *brokerEnv) connect(ctx context.Context, t *testing.T, version string) *session {
	t.Helper()
	s := &session{events: make(chan struct{}, 64)}
	note := func(f func()) {
		s.mu.Lock()
		f()
		s.mu.Unlock()
		select {
		case s.events <- struct{}{}:
		default:
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "0"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			note(func() { s.levels = append(s.levels, string(req.Params.Level)) })
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			note(func() { s.updated = append(s.updated, req.Params.URI) })
		},
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { note(func() { s.progress++ }) },
		ElicitationHandler: func(ctx context.Context, _ *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			// Does not answer until the question is withdrawn (or, if it
			// never is, gives up so that the session can close).
			giveUp := time.NewTimer(20 * time.Second)
			defer giveUp.Stop()
			select {
			case <-ctx.Done():
				note(func() { s.withdrawn++ })
				return nil, ctx.Err()
			case <-giveUp.C:
				return &mcp.ElicitResult{Action: "cancel"}, nil
			}
		},
	})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.gwURL + "/mcp", HTTPClient: sdkClient(t, aliceKey)},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect to the gateway: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	s.ClientSession = cs
	return s
}

// await waits until cond holds of what the session was sent.
// progressCount is how many progress notifications s has had.
func (s *session) progressCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progress
}

func (s *session) await(t *testing.T, what string, cond func(s *session) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.events:
		case <-deadline.C:
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// awaitUpstream waits until the demo upstream's state satisfies cond.
func (e *brokerEnv) awaitUpstream(t *testing.T, what string, cond func(demo.State) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for backoff := time.Millisecond; !cond(e.up.State()); backoff = min(2*backoff, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s (upstream state %+v)", what, e.up.State())
		}
		<-time.After(backoff)
	}
}

// TestBrokeredMethods: completion, logging levels, resource
// subscriptions, ping and cancellation in both directions, from the Go
// SDK client through the endpoint, the pipeline and the real forwarder to
// a Go SDK server, in the oldest and newest legacy versions.
func TestBrokeredMethods(t *testing.T) {
	for _, version := range []string{"2025-03-26", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			e := newBrokerEnv(t, demo.Options{})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			a, b := e.connect(ctx, t, version), e.connect(ctx, t, version)

			caps := a.InitializeResult().Capabilities
			if caps.Completions == nil || caps.Logging == nil || caps.Resources == nil || !caps.Resources.Subscribe || caps.Tools == nil || !caps.Tools.ListChanged {
				t.Errorf("capabilities %+v, want completions, logging, resource subscriptions and tools/list_changed", caps)
			}
			if err := a.Ping(ctx, nil); err != nil {
				t.Errorf("ping: %v", err)
			}

			comp, err := a.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "demo__summarize"},
				Argument: mcp.CompleteParamsArgument{Name: "topic", Value: "in"}})
			if err != nil || !slices.Equal(comp.Completion.Values, []string{"invoices", "interest"}) {
				t.Errorf("complete a prompt's argument: %+v %v", comp, err)
			}
			comp, err = a.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: "demo__demo://invoices/{id}"},
				Argument: mcp.CompleteParamsArgument{Name: "id", Value: "inv-"}})
			if err != nil || len(comp.Completion.Values) != 3 {
				t.Errorf("complete a template's argument: %+v %v", comp, err)
			}
			if _, err := a.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "nobody__summarize"},
				Argument: mcp.CompleteParamsArgument{Name: "topic", Value: "in"}}); err == nil || !strings.Contains(err.Error(), "no upstream serves") {
				t.Errorf("complete an unknown upstream's prompt: %v", err)
			}

			// Logging: none before a level is set, then that level and up,
			// for this session only.
			call := func(s *session, tool string) *mcp.CallToolResult {
				t.Helper()
				res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
				if err != nil {
					t.Fatalf("%s: %v", tool, err)
				}
				return res
			}
			call(a, "demo__log")
			if err := a.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "warning"}); err != nil {
				t.Fatalf("setLevel: %v", err)
			}
			call(a, "demo__log")
			call(b, "demo__log")
			// The client handles notifications apart from answers.
			a.await(t, "two log messages", func(s *session) bool { return len(s.levels) >= 2 })
			a.mu.Lock()
			levels := slices.Clone(a.levels)
			a.mu.Unlock()
			if !slices.Equal(levels, []string{"warning", "error"}) {
				t.Errorf("log messages %v, want [warning error] (none before setLevel)", levels)
			}
			b.mu.Lock()
			if len(b.levels) != 0 {
				t.Errorf("a session that set no level got %v", b.levels)
			}
			b.mu.Unlock()
			if err := a.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "loud"}); err == nil {
				t.Error("an unknown level: no error")
			}

			// Subscriptions: each session is told of what it follows,
			// under the namespaced URI; unsubscribing and ending the
			// session unsubscribe the upstream.
			if err := a.Subscribe(ctx, &mcp.SubscribeParams{URI: "demo__demo://readme"}); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			if err := b.Subscribe(ctx, &mcp.SubscribeParams{URI: "demo__demo://invoices/7"}); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			e.awaitUpstream(t, "both subscriptions upstream", func(s demo.State) bool {
				return slices.Equal(s.Subscribed, []string{"demo://invoices/7", "demo://readme"})
			})
			for _, uri := range []string{"demo://readme", "demo://invoices/7"} {
				e.resourceUpdated(t, uri)
			}
			b.await(t, "the second session's update", func(s *session) bool { return len(s.updated) > 0 })
			a.await(t, "the first session's update", func(s *session) bool { return len(s.updated) > 0 })
			if !slices.Equal(a.updated, []string{"demo__demo://readme"}) || !slices.Equal(b.updated, []string{"demo__demo://invoices/7"}) {
				t.Errorf("updates %v and %v, want each session's own, namespaced", a.updated, b.updated)
			}
			if err := a.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "demo__demo://readme"}); err != nil {
				t.Fatalf("unsubscribe: %v", err)
			}
			e.awaitUpstream(t, "the unsubscription upstream", func(s demo.State) bool { return slices.Equal(s.Subscribed, []string{"demo://invoices/7"}) })
			if err := b.Close(); err != nil {
				t.Fatalf("end the second session: %v", err)
			}
			e.awaitUpstream(t, "the ended session's unsubscription upstream", func(s demo.State) bool { return len(s.Subscribed) == 0 })

			// The caller cancels a call: the upstream's tool is cancelled.
			wctx, wcancel := context.WithCancel(ctx)
			before := a.progressCount()
			done := make(chan error, 1)
			go func() {
				res, err := a.CallTool(wctx, &mcp.CallToolParams{Name: "demo__wait", Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "w"}})
				if err == nil {
					err = fmt.Errorf("answered %+v", res)
				}
				done <- err
			}()
			a.await(t, "the wait to begin", func(s *session) bool { return s.progress > before })
			wcancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled call: %v", err)
			}
			e.awaitUpstream(t, "the cancellation upstream", func(s demo.State) bool { return s.Cancelled == 1 })

			// The upstream withdraws its question: the caller's handler is
			// cancelled (2025-03-26 has no elicitation: refused at once).
			res := call(a, "demo__ask_briefly")
			if version == "2025-03-26" {
				if !res.IsError {
					t.Errorf("ask_briefly on 2025-03-26: %+v, want the failed elicitation", res)
				}
				return
			}
			if text := res.Content[0].(*mcp.TextContent).Text; text != "withdrawn" {
				t.Errorf("ask_briefly: %q", text)
			}
			a.await(t, "the withdrawal", func(s *session) bool { return s.withdrawn == 1 })
		})
	}
}

// resourceUpdated makes the demo upstream tell its subscribers that uri
// changed.
func (e *brokerEnv) resourceUpdated(t *testing.T, uri string) {
	t.Helper()
	resp, err := http.Post(e.upURL+"/admin/resources/updated", "application/json", strings.NewReader(`{"uri":"`+uri+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /admin/resources/updated: %d", resp.StatusCode)
	}
}

// TestBrokeredMethodsModern: a 2026-07-28 Go SDK client (stateless) in
// front of a legacy upstream: completion, log messages at the level its
// request's _meta asks for, a resource followed over subscriptions/listen
// (the upstream unsubscribed when the stream closes), and a call the
// client gives up on cancelled upstream; with net/http and with
// upstream/h1 towards the upstream.
func TestBrokeredMethodsModern(t *testing.T) {
	for _, http1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "h1"}[http1], func(t *testing.T) {
			testBrokeredMethodsModern(t, newBrokerEnvWith(t, demo.Options{}, brokerSetup{http1: http1}))
		})
	}
}

func testBrokeredMethodsModern(t *testing.T, e *brokerEnv) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := e.connect(ctx, t, "2026-07-28")
	if caps := a.InitializeResult().Capabilities; caps.Completions == nil || caps.Logging == nil || caps.Resources == nil || !caps.Resources.Subscribe {
		t.Errorf("capabilities %+v, want completions, logging and resource subscriptions", caps)
	}
	comp, err := a.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "demo__summarize"},
		Argument: mcp.CompleteParamsArgument{Name: "topic", Value: "pay"}})
	if err != nil || !slices.Equal(comp.Completion.Values, []string{"payments"}) {
		t.Errorf("complete: %+v %v", comp, err)
	}

	if _, err := a.CallTool(ctx, &mcp.CallToolParams{Name: "demo__log", Arguments: map[string]any{},
		Meta: mcp.Meta{"io.modelcontextprotocol/logLevel": "error"}}); err != nil {
		t.Fatal(err)
	}
	a.await(t, "a log message", func(s *session) bool { return len(s.levels) > 0 })
	if !slices.Equal(a.levels, []string{"error"}) {
		t.Errorf("log messages %v, want [error]", a.levels)
	}

	listening := make(chan error, 1)
	go func() { listening <- a.Subscribe(ctx, &mcp.SubscribeParams{URI: "demo__demo://readme"}) }()
	e.awaitUpstream(t, "the subscription upstream", func(s demo.State) bool { return slices.Equal(s.Subscribed, []string{"demo://readme"}) })
	e.resourceUpdated(t, "demo://readme")
	a.await(t, "the update", func(s *session) bool { return len(s.updated) > 0 })
	if !slices.Equal(a.updated, []string{"demo__demo://readme"}) {
		t.Errorf("updates %v", a.updated)
	}
	if err := a.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "demo__demo://readme"}); err != nil {
		t.Fatal(err)
	}
	<-listening
	e.awaitUpstream(t, "the unsubscription upstream", func(s demo.State) bool { return len(s.Subscribed) == 0 })

	wctx, wcancel := context.WithCancel(ctx)
	before := a.progressCount()
	done := make(chan error, 1)
	go func() {
		_, err := a.CallTool(wctx, &mcp.CallToolParams{Name: "demo__wait", Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "w"}})
		done <- err
	}()
	a.await(t, "the wait to begin", func(s *session) bool { return s.progress > before })
	wcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
	e.awaitUpstream(t, "the cancellation upstream", func(s demo.State) bool { return s.Cancelled == 1 })
}

// TestSubscriptionsToAModernUpstream: a legacy caller's subscription to a
// 2026-07-28 upstream's resource is held by the pool's
// subscriptions/listen stream to that upstream; its updates reach the
// caller, and the stream lets go of the resource when the caller
// unsubscribes.
func TestSubscriptionsToAModernUpstream(t *testing.T) {
	e := newBrokerEnv(t, demo.Options{Stateless: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := e.connect(ctx, t, "2025-11-25")
	if err := a.Subscribe(ctx, &mcp.SubscribeParams{URI: "demo__demo://readme"}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	e.awaitUpstream(t, "the subscription upstream", func(s demo.State) bool { return slices.Equal(s.Subscribed, []string{"demo://readme"}) })
	e.resourceUpdated(t, "demo://readme")
	a.await(t, "the update", func(s *session) bool { return len(s.updated) > 0 })
	if !slices.Equal(a.updated, []string{"demo__demo://readme"}) {
		t.Errorf("updates %v", a.updated)
	}
}

// TestUpdateAtOnceAfterSubscribing: a legacy upstream that sends an update
// as soon as it holds a subscription, before its answer to
// resources/subscribe reaches the gateway (here: the answer is held until
// the update was sent), and with no call before that would have opened
// its standalone stream. The gateway opens the stream before it
// subscribes, so the upstream has somewhere to send the update, and keeps
// an update that arrives before the answer until the answer confirms the
// subscription: the caller is told.
func TestUpdateAtOnceAfterSubscribing(t *testing.T) {
	for _, http1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "h1"}[http1], func(t *testing.T) {
			hold := newAnswerHold(t, "resources/subscribe")
			e := newBrokerEnvWith(t, demo.Options{}, brokerSetup{wrap: hold.wrap, http1: http1})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			a := e.connect(ctx, t, "2026-07-28")

			listening := make(chan error, 1)
			go func() { listening <- a.Subscribe(ctx, &mcp.SubscribeParams{URI: "demo__demo://readme"}) }()
			select {
			case <-hold.answering: // the upstream holds the subscription
			case <-ctx.Done():
				t.Fatal("the subscription did not reach the upstream")
			}
			e.resourceUpdated(t, "demo://readme")
			hold.releaseAll()
			a.await(t, "the update", func(s *session) bool { return len(s.updated) > 0 })
			if !slices.Equal(a.updated, []string{"demo__demo://readme"}) {
				t.Errorf("updates %v", a.updated)
			}
			if err := a.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "demo__demo://readme"}); err != nil {
				t.Fatal(err)
			}
			<-listening
		})
	}
}

// answerHold stands between the gateway and an upstream and holds the
// upstream's answers to one method (from the moment it begins to write
// them) until released.
type answerHold struct {
	method    string
	answering chan struct{} // one value per held answer
	release   chan struct{}
	once      sync.Once
}

func newAnswerHold(t *testing.T, method string) *answerHold {
	h := &answerHold{method: method, answering: make(chan struct{}, 16), release: make(chan struct{})}
	t.Cleanup(h.releaseAll) // never leave a handler blocked
	return h
}

func (h *answerHold) releaseAll() { h.once.Do(func() { close(h.release) }) }

func (h *answerHold) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				Method string `json:"method"`
			}
			if json.Unmarshal(body, &m) == nil && m.Method == h.method {
				w = &heldWriter{ResponseWriter: w, hold: h}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// heldWriter waits for the release before the first byte of an answer.
type heldWriter struct {
	http.ResponseWriter
	hold *answerHold
	once sync.Once
}

func (w *heldWriter) wait() {
	w.once.Do(func() {
		w.hold.answering <- struct{}{}
		<-w.hold.release
	})
}

func (w *heldWriter) WriteHeader(code int) { w.wait(); w.ResponseWriter.WriteHeader(code) }

func (w *heldWriter) Write(b []byte) (int, error) { w.wait(); return w.ResponseWriter.Write(b) }

func (w *heldWriter) Flush() {
	w.wait()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *heldWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
