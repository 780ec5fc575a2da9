// Package mcp is the data plane's MCP endpoint (/mcp) and its forwarder.
// It speaks both protocol eras to agents: the legacy Streamable HTTP
// transport (versions 2025-03-26, 2025-06-18 and 2025-11-25: initialize,
// sessions bound to the agent, GET streams, resumption; JSON-RPC batches
// for 2025-03-26 callers) and the stateless 2026-07-28 era
// (server/discover, per-request _meta, mirrored headers,
// subscriptions/listen).
//
// Every method of those versions is brokered: tools (list, call, with
// progress, elicitation and sampling relayed), resources (list, templates,
// read, subscribe and unsubscribe with notifications/resources/updated
// relayed to the subscribing session alone), prompts (list, get),
// completion/complete (namespaced prompt and resource-template refs),
// logging/setLevel (the gateway asks every upstream for all its logs and
// passes each caller those at its level), ping and notifications/cancelled
// in both directions. Every request is first held to the transport's
// rules (one value per decision header, a supported MCP-Protocol-Version,
// the Origin allowlist), then turned into a pipeline.Call — an operation
// on a target — for the Backend, so that it is authenticated, authorized
// and audited like every other; the Forwarder is MCP's terminal, and the
// Pool keeps one session per upstream. Refusals come back in MCP's own
// shapes: input and policy refusals as isError tool results carrying the
// reason under _meta["io.portcullis/refusal"], an unknown tool as JSON-RPC
// -32602, a missing or bad credential as HTTP 401, a browser origin that
// is not allowed as HTTP 403.
package mcp

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Backend runs operations for the endpoint: the data plane's one pipeline.
// It must be safe for concurrent use.
type Backend interface {
	// Begin returns a fresh Call bound to the current configuration and
	// mode (Config is nil while the data plane has none).
	Begin(r *http.Request) *pipeline.Call
	// Run runs c through the pipeline's stages and, when they admit it,
	// the MCP forwarder.
	Run(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error)
}

// Limits and defaults.
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 1 << 20
	// DefaultSessionTTL is how long an unused session lives.
	DefaultSessionTTL = time.Hour
	// DefaultMaxSessions bounds the sessions one endpoint keeps.
	DefaultMaxSessions = 100_000
	// DefaultMaxSessionsPerAgent bounds the sessions of one agent.
	DefaultMaxSessionsPerAgent = 1_000
)

// Option configures the handler.
type Option func(*Handler)

// WithSessionTTL sets how long an unused session lives.
func WithSessionTTL(d time.Duration) Option { return func(h *Handler) { h.ttl = d } }

// WithMaxSessions bounds the number of sessions; when full, an agent
// under its own quota cannot create one (no agent's session is evicted for
// another's).
func WithMaxSessions(n int) Option { return func(h *Handler) { h.maxSessions = n } }

// WithMaxSessionsPerAgent bounds the sessions of one agent; at the bound,
// the agent's own least recently used session makes room for a new one.
func WithMaxSessionsPerAgent(n int) Option { return func(h *Handler) { h.perAgent = n } }

// WithClock sets the clock sessions expire by (tests).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithVersion sets serverInfo.version (default: the main module's version).
func WithVersion(v string) Option { return func(h *Handler) { h.version = v } }

// WithToolsChanged makes the endpoint send notifications/tools/list_changed
// on every session's standalone GET stream each time ch receives (the data
// plane signals new configurations); close ch to stop.
func WithToolsChanged(ch <-chan struct{}) Option { return func(h *Handler) { h.toolsChanged = ch } }

// WithPublicURL sets the gateway's external base URL ("https://gw.example")
// used in the 401 challenge's resource_metadata. Without it the request's
// scheme and Host are used.
func WithPublicURL(base string) Option { return func(h *Handler) { h.publicURL = base } }

// Subscriptions keep callers' resource subscriptions (the MCP Pool does).
// DropSubscriber must be safe for concurrent use and must not block: the
// endpoint calls it when a session ends, under its session store's lock.
type Subscriptions interface {
	// DropSubscriber ends every subscription of a caller's session or
	// subscriptions/listen stream.
	DropSubscriber(key string)
}

// WithSubscriptions makes the endpoint end a session's resource
// subscriptions when the session ends (the forwarder keeps them).
func WithSubscriptions(s Subscriptions) Option { return func(h *Handler) { h.subs = s } }

// AnonymousRecorder counts requests refused before any agent could be
// identified (see package refusals). It must be safe for concurrent use.
type AnonymousRecorder interface {
	Refused(src netip.Addr, reason string)
}

// WithAnonymousRefusals counts the requests the endpoint refuses without
// an identified agent (no credential or an invalid one) with rec.
func WithAnonymousRefusals(rec AnonymousRecorder) Option {
	return func(h *Handler) { h.refusals = rec }
}

// Handler serves the MCP endpoint. It is safe for concurrent use.
type Handler struct {
	backend     Backend
	logger      *slog.Logger
	ttl         time.Duration
	maxSessions int
	perAgent    int
	now         func() time.Time
	version     string
	publicURL   string
	refusals    AnonymousRecorder
	subs        Subscriptions
	hopID       string
	sessions    *sessionStore
	// toolsChanged signals configuration changes (WithToolsChanged).
	toolsChanged <-chan struct{}
	// asks are server→client requests waiting for callers' answers.
	asks asks
	// streams keep resumable response streams; calls the running calls
	// of sessions; listeners the sessions' standalone GET streams.
	streams   streamStore
	calls     calls
	listeners listeners
}

// NewHandler returns the MCP endpoint. A request whose Origin header names
// a browser origin outside the setting mcp.allowed-origins is refused with
// 403, whatever its method (see checkOrigin); agents, which send no
// Origin, are unaffected.
func NewHandler(b Backend, logger *slog.Logger, opts ...Option) http.Handler {
	h := &Handler{
		backend:     b,
		logger:      logger.With("component", "mcpgw"),
		ttl:         DefaultSessionTTL,
		maxSessions: DefaultMaxSessions,
		perAgent:    DefaultMaxSessionsPerAgent,
		now:         time.Now,
		version:     moduleVersion(),
	}
	for _, o := range opts {
		o(h)
	}
	h.sessions = newSessionStore(h.ttl, h.maxSessions, h.perAgent, h.now, h.sessionEnded)
	h.streams.now = h.now
	if h.toolsChanged != nil {
		go func() {
			for range h.toolsChanged {
				h.ToolsChanged()
			}
			// Closed: the data plane is shutting down; end the standalone
			// streams so that they do not hold the server open.
			h.listeners.closeAll()
		}()
	}
	return h
}

// sessionEnded ends what lives with a session: its subscriptions.
func (h *Handler) sessionEnded(id string) {
	if h.subs != nil {
		h.subs.DropSubscriber(id)
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A browser page of a foreign origin is refused first, whatever else
	// is wrong with its request.
	if !h.checkOrigin(w, r) {
		return
	}
	if e := h.checkEdge(r); e != nil {
		writeError(w, e.status, nullID, e.err)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.servePost(w, r)
	case http.MethodDelete:
		h.serveDelete(w, r)
	case http.MethodGet:
		h.serveGet(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "method not allowed: POST JSON-RPC messages", http.StatusMethodNotAllowed)
	}
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
