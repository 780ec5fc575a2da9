package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestPrimingUpstream: an official Go SDK server with an event store opens
// every SSE stream with a priming event (an id and an empty data line).
// Behind the gateway it is discovered by gwctl and called, progress
// streamed, from the Go SDK client.
func TestPrimingUpstream(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp := g.dps[0]
	up := harness.StartDemoUpstream(t, harness.DemoUpstreamOptions{RequireBearer: g.upstreamSecret, Args: []string{"--event-store", "--streaming-tools"}})
	g.gwctl(t, "upstream", "add", "primed", "--url", up.URL, "--bearer-secret", "demo-token")
	var found struct {
		Tools []discovered `json:"tools"`
	}
	harness.GwctlJSON(t, g.env(), &found, "upstream", "discover", "primed", "-o", "json", "--timeout", "20s")
	var names []string
	for _, d := range found.Tools {
		names = append(names, d.Name)
	}
	if !slices.Contains(names, "count") || !slices.Contains(names, "get_weather") {
		t.Fatalf("discovered %v, want the primed upstream's tools", names)
	}
	g.pinAsServed(t, "primed", up.URL, "count", "read-only")
	awaitVersion(t, dp, g.pinAsServed(t, "primed", up.URL, "get_weather", "read-only"), 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var progress atomicCount
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-agent", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { progress.add() },
	}).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: dp.URL + "/mcp", HTTPClient: agentHTTPClient(t, g.opsKey)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cs.Close() }()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "primed__get_weather", Arguments: map[string]any{"city": "Oslo"}})
	if err != nil || res.IsError || !strings.Contains(resultText(res), "Oslo") {
		t.Fatalf("primed__get_weather: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "primed__count", Arguments: map[string]any{"steps": 3}, Meta: mcp.Meta{"progressToken": "p"}})
	if err != nil || res.IsError || resultText(res) != "counted to 3" || progress.get() != 3 {
		t.Fatalf("primed__count: %v %+v after %d progress notifications, want 3", err, res, progress.get())
	}
}

// TestBrokeredMethodsGoSDK: every method beyond tools, lists and reads,
// through the gateway from the official Go SDK client, in the legacy era
// (2025-03-26, the oldest deployed, and 2025-11-25) and in 2026-07-28: completion of a
// prompt's and a resource template's arguments (namespaced refs),
// logging/setLevel (the caller gets the upstream's log messages at its
// level and above), resources/subscribe with updates relayed to the
// subscribing session alone under the namespaced URI, unsubscribe and the
// end of a session unsubscribing the upstream, ping, the caller's
// cancellation reaching the upstream, and the upstream withdrawing a
// question it asked the caller. Each is audited; an agent granted nothing
// of the upstream is denied completions.
func TestBrokeredMethodsGoSDK(t *testing.T) {
	g, tools := startBrokerGatewayWithTools(t)
	dp := g.dps[0]
	for _, version := range []string{"2025-03-26", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			a, b := newRecorder(), newRecorder()
			cs := a.connect(ctx, t, dp.URL, g.opsKey, version)
			other := b.connect(ctx, t, dp.URL, g.opsKey, version)

			caps := cs.InitializeResult().Capabilities
			if caps.Completions == nil || caps.Logging == nil || caps.Resources == nil || !caps.Resources.Subscribe {
				t.Errorf("capabilities %+v, want completions, logging and resource subscriptions (the tools upstream offers them)", caps)
			}
			if err := cs.Ping(ctx, nil); err != nil {
				t.Errorf("ping: %v", err)
			}

			// Completion: the ref is namespaced; the upstream sees its own.
			comp, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "tools__summarize"},
				Argument: mcp.CompleteParamsArgument{Name: "topic", Value: "in"}})
			if err != nil || !slices.Equal(comp.Completion.Values, []string{"invoices", "interest"}) {
				t.Errorf("complete prompt topic: %+v %v", comp, err)
			}
			comp, err = cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: "tools__demo://invoices/{id}"},
				Argument: mcp.CompleteParamsArgument{Name: "id", Value: "inv-"}})
			if err != nil || len(comp.Completion.Values) != 3 {
				t.Errorf("complete template id: %+v %v", comp, err)
			}

			// Logging: nothing before a level is set, then warning and up.
			if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "tools__log", Arguments: map[string]any{}}); err != nil || res.IsError {
				t.Fatalf("log before setLevel: %v %+v", err, res)
			}
			if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "warning"}); err != nil {
				t.Fatalf("setLevel: %v", err)
			}
			if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "tools__log", Arguments: map[string]any{}}); err != nil || res.IsError {
				t.Fatalf("log: %v %+v", err, res)
			}
			a.await(t, "two log messages", func(r *recorder) bool { return len(r.levels) >= 2 })
			if got := a.logs(); !slices.Equal(got, []string{"warning", "error"}) {
				t.Errorf("log messages at warning: %v, want [warning error] (and none before setLevel)", got)
			}
			if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "loud"}); err == nil {
				t.Error("setLevel to an unknown level: no error")
			}

			// Subscriptions: each session gets the updates of what it
			// subscribed to, under the namespaced URI, and nothing else.
			if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "tools__demo://readme"}); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			if err := other.Subscribe(ctx, &mcp.SubscribeParams{URI: "tools__demo://invoices/7"}); err != nil {
				t.Fatalf("subscribe other: %v", err)
			}
			awaitSubscribed(t, tools, []string{"demo://invoices/7", "demo://readme"})
			if err := tools.ResourceUpdated("demo://readme"); err != nil {
				t.Fatal(err)
			}
			if err := tools.ResourceUpdated("demo://invoices/7"); err != nil {
				t.Fatal(err)
			}
			a.await(t, "the first session's update", func(r *recorder) bool { return len(r.updated) > 0 })
			b.await(t, "the second session's update", func(r *recorder) bool { return len(r.updated) > 0 })
			if got := a.updates(); !slices.Equal(got, []string{"tools__demo://readme"}) {
				t.Errorf("first session's updates %v, want only its own resource", got)
			}
			if got := b.updates(); !slices.Equal(got, []string{"tools__demo://invoices/7"}) {
				t.Errorf("second session's updates %v, want only its own resource", got)
			}
			// Unsubscribing, and ending a session, unsubscribe the upstream.
			if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "tools__demo://readme"}); err != nil {
				t.Fatalf("unsubscribe: %v", err)
			}
			awaitSubscribed(t, tools, []string{"demo://invoices/7"})
			if err := other.Close(); err != nil {
				t.Fatalf("end the second session: %v", err)
			}
			awaitSubscribed(t, tools, []string{})

			// The caller's cancellation reaches the upstream: once the
			// wait began (its progress 0), the caller gives up.
			before, err := tools.State()
			if err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				res, err := cs.CallTool(wctx, &mcp.CallToolParams{Name: "tools__wait", Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "w"}})
				if err == nil {
					err = fmt.Errorf("answered %+v (%s)", res, resultText(res))
				}
				done <- err
			}()
			a.await(t, "the wait to begin", func(r *recorder) bool { return r.progress > 0 })
			wcancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled call: %v, want context.Canceled", err)
			}
			harness.Await(t, 20*time.Second, "the upstream to see the cancellation", func() error {
				s, err := tools.State()
				if err != nil {
					return err
				}
				if s.Cancelled != before.Cancelled+1 {
					return fmt.Errorf("%d wait calls cancelled, want %d", s.Cancelled, before.Cancelled+1)
				}
				return nil
			})

			// The upstream withdraws a question it asked the caller: the
			// caller's handler is cancelled (2025-03-26 has no
			// elicitation: the upstream's question is refused at once).
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "tools__ask_briefly", Arguments: map[string]any{}})
			if version == "2025-03-26" {
				if err != nil || !res.IsError {
					t.Errorf("ask_briefly on 2025-03-26: %v %+v, want the upstream's failed elicitation", err, res)
				}
			} else {
				if err != nil || resultText(res) != "withdrawn" {
					t.Errorf("ask_briefly: %v %+v, want withdrawn", err, res)
				}
				a.await(t, "the question to be withdrawn", func(r *recorder) bool { return r.withdrawn == 1 })
			}
		})
	}

	// A 2026-07-28 client: completion, the log level in each request's
	// _meta, a resource followed over subscriptions/listen (the upstream
	// let go when the client stops listening), and cancellation by closing
	// the request.
	t.Run("2026-07-28", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r := newRecorder()
		cs := r.connect(ctx, t, dp.URL, g.opsKey, "2026-07-28")
		if caps := cs.InitializeResult().Capabilities; caps.Completions == nil || caps.Logging == nil || caps.Resources == nil || !caps.Resources.Subscribe {
			t.Errorf("capabilities %+v, want completions, logging and resource subscriptions", caps)
		}
		comp, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "tools__summarize"},
			Argument: mcp.CompleteParamsArgument{Name: "topic", Value: "w"}})
		if err != nil || !slices.Equal(comp.Completion.Values, []string{"weather"}) {
			t.Errorf("complete: %+v %v", comp, err)
		}
		if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "tools__log", Arguments: map[string]any{},
			Meta: mcp.Meta{"io.modelcontextprotocol/logLevel": "error"}}); err != nil || res.IsError {
			t.Fatalf("log: %v %+v", err, res)
		}
		r.await(t, "a log message", func(r *recorder) bool { return len(r.levels) > 0 })
		if got := r.logs(); !slices.Equal(got, []string{"error"}) {
			t.Errorf("log messages %v, want [error]", got)
		}

		listening := make(chan error, 1)
		go func() { listening <- cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "tools__demo://readme"}) }()
		awaitSubscribed(t, tools, []string{"demo://readme"})
		if err := tools.ResourceUpdated("demo://readme"); err != nil {
			t.Fatal(err)
		}
		r.await(t, "the update", func(r *recorder) bool { return len(r.updated) > 0 })
		if got := r.updates(); !slices.Equal(got, []string{"tools__demo://readme"}) {
			t.Errorf("updates %v", got)
		}
		if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "tools__demo://readme"}); err != nil {
			t.Fatal(err)
		}
		<-listening
		awaitSubscribed(t, tools, []string{})

		before, err := tools.State()
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := cs.CallTool(wctx, &mcp.CallToolParams{Name: "tools__wait", Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "w"}})
			done <- err
		}()
		r.await(t, "the wait to begin", func(r *recorder) bool { return r.progress > 0 })
		wcancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call: %v, want context.Canceled", err)
		}
		harness.Await(t, 20*time.Second, "the upstream to see the cancellation", func() error {
			s, err := tools.State()
			if err != nil {
				return err
			}
			if s.Cancelled != before.Cancelled+1 {
				return fmt.Errorf("%d wait calls cancelled, want %d", s.Cancelled, before.Cancelled+1)
			}
			return nil
		})
	})

	// An agent granted no tool of the upstream is denied its completions.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev := newRecorder().connect(ctx, t, dp.URL, g.devKey, "2025-11-25")
	if _, err := dev.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "tools__summarize"},
		Argument: mcp.CompleteParamsArgument{Name: "topic", Value: "in"}}); err == nil || !strings.Contains(err.Error(), "no policy permits") {
		t.Errorf("dev agent's completion: %v, want a denial", err)
	}
	if err := dev.Subscribe(ctx, &mcp.SubscribeParams{URI: "tools__demo://readme"}); err == nil {
		t.Error("dev agent's subscription: no error, want a denial")
	}

	records, err := dp.AuditRecords()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range records {
		seen[r.Kind+" "+r.Method+" "+r.Agent+" "+r.Outcome+" "+r.Tool]++
	}
	for _, want := range []string{
		"EVENT_KIND_CALL completion/complete ops-agent ok tools__summarize",
		"EVENT_KIND_CALL completion/complete ops-agent ok tools__demo://invoices/{id}",
		"EVENT_KIND_CALL completion/complete dev-agent refused tools__summarize",
		"EVENT_KIND_CALL resources/subscribe ops-agent ok tools__demo://readme",
		"EVENT_KIND_CALL resources/subscribe dev-agent refused tools__demo://readme",
		"EVENT_KIND_CALL resources/unsubscribe ops-agent ok tools__demo://readme",
		"EVENT_KIND_SESSION logging/setLevel ops-agent ok ",
		"EVENT_KIND_SESSION ping ops-agent ok ",
	} {
		if seen[want] == 0 {
			t.Errorf("no audit record %q", want)
		}
	}
}

// awaitSubscribed waits until the upstream's sessions follow exactly want.
func awaitSubscribed(t *testing.T, up *harness.DemoUpstream, want []string) {
	t.Helper()
	harness.Await(t, 20*time.Second, fmt.Sprintf("the upstream to follow %v", want), func() error {
		s, err := up.State()
		if err != nil {
			return err
		}
		if !slices.Equal(s.Subscribed, want) {
			return fmt.Errorf("the upstream follows %v", s.Subscribed)
		}
		return nil
	})
}

// recorder keeps what a Go SDK client session was sent beyond answers.
type recorder struct {
	mu        sync.Mutex
	levels    []string
	updated   []string
	progress  int
	withdrawn int
	events    chan struct{} // something arrived
}

func newRecorder() *recorder { return &recorder{events: make(chan struct{}, 64)} }

// note records f's change and wakes await.
func (r *recorder) note(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
	select {
	case r.events <- struct{}{}:
	default:
	}
}

func (r *recorder) connect(ctx context.Context, t *testing.T, url, key, version string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-agent", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			r.note(func() { r.levels = append(r.levels, string(req.Params.Level)) })
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			r.note(func() { r.updated = append(r.updated, req.Params.URI) })
		},
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { r.note(func() { r.progress++ }) },
		ElicitationHandler: func(ctx context.Context, _ *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			// Does not answer: waits until the question is withdrawn (or,
			// when it never is, gives up so that the session can close).
			giveUp := time.NewTimer(20 * time.Second)
			defer giveUp.Stop()
			select {
			case <-ctx.Done():
				r.note(func() { r.withdrawn++ })
				return nil, ctx.Err()
			case <-giveUp.C:
				return &mcp.ElicitResult{Action: "cancel"}, nil
			}
		},
	})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: agentHTTPClient(t, key)},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func (r *recorder) logs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.levels)
}

func (r *recorder) updates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updated)
}

// await waits until cond holds of what the session was sent.
func (r *recorder) await(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(r)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.events:
		case <-deadline.C:
			t.Fatalf("%s: not within 20s", what)
		}
	}
}
