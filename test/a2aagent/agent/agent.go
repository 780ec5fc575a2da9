// Package agent is the test A2A agent of the end-to-end tests and
// benchmarks: a real server of the official Go SDK
// (github.com/a2aproject/a2a-go/v2), speaking A2A 1.0 or, through the
// SDK's compatibility layer, 0.3, behind a bearer token, with an agent
// whose behaviour the message text picks:
//
//	message:TEXT   answers with a direct message (no task)
//	wait:KEY       a task that reports working, then waits until POST
//	               /control/release/KEY (or its context ends), then
//	               produces an artifact and completes
//	steps:N        a task that produces N artifact chunks, then completes
//	input          a task that asks for more input (input required)
//	anything else  a task that echoes the text as an artifact and completes
//
// A task can be cancelled while it waits. The card lists the skills
// "search" and "book"; POST /control/skill/ID adds one (a card change for
// drift tests). GET /control/seen lists the Authorization headers the
// agent's endpoint received.
package agent

import (
	"context"
	"encoding/json"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// Options configure the agent.
type Options struct {
	// Token, when set, is the bearer token the JSON-RPC endpoint and the
	// card require.
	Token string
	// Legacy serves A2A 0.3 (the SDK's compatibility layer) instead of 1.0.
	Legacy bool
	// CardPath is where the card is served (default
	// /.well-known/agent-card.json).
	CardPath string
	// Logger logs the SDK's messages (nil: discarded).
	Logger *slog.Logger
}

// RPCPath is the agent's JSON-RPC endpoint.
const RPCPath = "/rpc"

// Agent is the test agent. It is safe for concurrent use.
type Agent struct {
	opts Options
	url  string // the agent's own base URL, for its card

	mu      sync.Mutex
	skills  []string
	waiting map[string]chan struct{}
	seen    []string
}

// New returns the agent; baseURL is where it is served (its card names
// baseURL + RPCPath).
func New(baseURL string, opts Options) *Agent {
	if opts.CardPath == "" {
		opts.CardPath = a2asrv.WellKnownAgentCardPath
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{opts: opts, url: strings.TrimRight(baseURL, "/"), skills: []string{"search", "book"}, waiting: map[string]chan struct{}{}}
}

// Handler serves the agent: its JSON-RPC endpoint, its card and the
// control endpoints.
func (a *Agent) Handler() http.Handler {
	rh := a2asrv.NewHandler(&executor{a: a}, a2asrv.WithLogger(a.opts.Logger), a2asrv.WithCallInterceptors(caller{}))
	var rpc http.Handler
	if a.opts.Legacy {
		rpc = a2av0.NewJSONRPCHandler(rh)
	} else {
		rpc = a2asrv.NewJSONRPCHandler(rh)
	}
	mux := http.NewServeMux()
	mux.Handle(RPCPath, a.authorized(rpc))
	mux.Handle(a.opts.CardPath, a.authorized(http.HandlerFunc(a.serveCard)))
	mux.HandleFunc("POST /control/release/{key}", func(w http.ResponseWriter, r *http.Request) {
		a.release(r.PathValue("key"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /control/skill/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.skills = append(a.skills, r.PathValue("id"))
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /control/seen", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		seen := slices.Clone(a.seen)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen)
	})
	return mux
}

// authorized records the Authorization header and refuses a request
// without the token.
func (a *Agent) authorized(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		a.mu.Lock()
		if len(a.seen) < 10_000 {
			a.seen = append(a.seen, got)
		}
		a.mu.Unlock()
		if a.opts.Token != "" && got != "Bearer "+a.opts.Token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Card is the agent's card now.
func (a *Agent) Card() *a2a.AgentCard {
	a.mu.Lock()
	ids := slices.Clone(a.skills)
	a.mu.Unlock()
	version := a2a.ProtocolVersion("1.0")
	if a.opts.Legacy {
		version = a2av0.Version
	}
	card := &a2a.AgentCard{
		Name: "Travel Agent", Description: "Finds and books trips.", Version: "1.0.0",
		DocumentationURL: a.url + "/docs",
		Provider:         &a2a.AgentProvider{Org: "Test Travel", URL: a.url},
		SupportedInterfaces: []*a2a.AgentInterface{
			{URL: a.url + RPCPath, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: version},
			{URL: a.url + "/grpc", ProtocolBinding: a2a.TransportProtocolGRPC, ProtocolVersion: version},
		},
		Capabilities:       a2a.AgentCapabilities{Streaming: true, PushNotifications: true},
		DefaultInputModes:  []string{"text/plain"},
		DefaultOutputModes: []string{"text/plain"},
		SecuritySchemes: a2a.NamedSecuritySchemes{
			"agent-key": a2a.HTTPAuthSecurityScheme{Scheme: "Bearer", Description: "the agent's own key"},
		},
		SecurityRequirements: a2a.SecurityRequirementsOptions{{"agent-key": {}}},
	}
	for _, id := range ids {
		card.Skills = append(card.Skills, a2a.AgentSkill{ID: id, Name: id, Description: "The " + id + " skill.", Tags: []string{id}})
	}
	return card
}

func (a *Agent) serveCard(w http.ResponseWriter, r *http.Request) {
	card := a.Card()
	if a.opts.Legacy {
		a2asrv.NewAgentCardHandler(a2av0.NewStaticAgentCardProducer(card)).ServeHTTP(w, r)
		return
	}
	a2asrv.NewStaticAgentCardHandler(card).ServeHTTP(w, r)
}

// gate returns the channel a "wait:KEY" task waits on.
func (a *Agent) gate(key string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.waiting[key]
	if !ok {
		ch = make(chan struct{})
		a.waiting[key] = ch
	}
	return ch
}

func (a *Agent) release(key string) {
	ch := a.gate(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// caller names every request's user: the HTTP middleware checked its
// token (the SDK scopes ListTasks to the user, and the gateway is one).
type caller struct {
	a2asrv.PassthroughCallInterceptor
}

func (caller) Before(ctx context.Context, cc *a2asrv.CallContext, _ *a2asrv.Request) (context.Context, any, error) {
	cc.User = a2asrv.NewAuthenticatedUser("bearer", nil)
	return ctx, nil, nil
}

// executor is the agent's a2asrv.AgentExecutor.
type executor struct{ a *Agent }

func text(m *a2a.Message) string {
	if m == nil {
		return ""
	}
	for _, p := range m.Parts {
		if t := p.Text(); t != "" {
			return t
		}
	}
	return ""
}

// Execute implements a2asrv.AgentExecutor.
func (e *executor) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		in := text(ec.Message)
		if reply, ok := strings.CutPrefix(in, "message:"); ok {
			m := a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(reply))
			m.ContextID = ec.ContextID
			yield(m, nil)
			return
		}
		if ec.StoredTask == nil {
			if !yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
				return
			}
		}
		working := a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart("working on "+in))
		if !yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateWorking, working), nil) {
			return
		}
		switch {
		case strings.HasPrefix(in, "wait:"):
			select {
			case <-e.a.gate(strings.TrimPrefix(in, "wait:")):
			case <-ctx.Done():
				return
			}
			if !yield(a2a.NewArtifactEvent(ec, a2a.NewTextPart("released")), nil) {
				return
			}
		case strings.HasPrefix(in, "steps:"):
			n, _ := strconv.Atoi(strings.TrimPrefix(in, "steps:"))
			id := a2a.NewArtifactID()
			for i := range min(n, 100) {
				ev := a2a.NewArtifactUpdateEvent(ec, id, a2a.NewTextPart("chunk "+strconv.Itoa(i)))
				ev.Append = i > 0
				if !yield(ev, nil) {
					return
				}
			}
		case in == "input":
			ask := a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart("where to?"))
			yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateInputRequired, ask), nil)
			return
		default:
			if !yield(a2a.NewArtifactEvent(ec, a2a.NewTextPart("echo: "+in)), nil) {
				return
			}
		}
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCompleted, nil), nil)
	}
}

// Cancel implements a2asrv.AgentExecutor.
func (e *executor) Cancel(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		if ec.StoredTask == nil {
			yield(nil, a2a.ErrTaskNotFound)
			return
		}
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCanceled, nil), nil)
	}
}
