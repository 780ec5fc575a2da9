// Package demo is a small MCP server for tests and demos: four billing and
// weather tools served with the official Go SDK's Streamable HTTP handler.
// It records every tools/call request that reaches it, with the request's
// headers, so a test can prove what a gateway did and did not forward
// (the caller's token, arguments the gateway should have refused).
//
// It is a test fixture: GET /calls shows the Authorization values it
// received, so never point it at real credentials.
package demo

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"
)

// Options configures a demo server. The zero value serves every tool
// statefully, without authentication and without delay.
type Options struct {
	// RequireBearer, when set, is the only bearer token the MCP endpoint
	// accepts; any other request gets 401. GET /calls is never protected.
	RequireBearer string
	// Stateless serves the SDK's stateless mode: no Mcp-Session-Id, GET and
	// DELETE answer 405.
	Stateless bool
	// Latency delays every tool call (a slow upstream). A delayed call ends
	// early when the client cancels it or the Handler is closed.
	Latency time.Duration
	// StreamingTools adds count (progress notifications) and
	// confirm_transfer (an elicitation), log (log messages at every
	// level), wait (until cancelled) and ask_briefly (an elicitation the
	// server withdraws), which a broker must relay.
	StreamingTools bool
	// Content adds a resource (demo://readme), a resource template
	// (demo://invoices/{id}) and a prompt (summarize), with completions of
	// the prompt's and the template's arguments and resource
	// subscriptions (POST /admin/resources/updated sends an update).
	Content bool
	// EventStore keeps every SSE stream's events for resumption, which
	// makes the SDK open each stream with a priming event (an id and an
	// empty data line).
	EventStore bool
	// InspectionTools adds fetch, query_rows, lookup_customer and digest,
	// whose arguments and answers runtime inspection has something to say
	// about (see inspection.go).
	InspectionTools bool
	// Logger receives the SDK server's logs; nil discards them.
	Logger *slog.Logger
	// Tracer, when set, runs every MCP request in a server span that
	// continues the caller's trace (params._meta, else the traceparent
	// header).
	Tracer trace.Tracer
}

// Handler serves the demo MCP endpoint at every path except /calls, which
// answers GET with the recorded calls (JSON) and DELETE by forgetting them,
// and /admin/tools/<name>, where a POST of a ToolChange changes a tool's
// definition while the server runs (a "rug pull", for drift tests).
// It is safe for concurrent use.
type Handler struct {
	server *mcp.Server
	mux    *http.ServeMux
	log    callLog
	extra  brokered

	retoolMu sync.Mutex
	retool   map[string]retooler

	stopOnce sync.Once
	stop     chan struct{} // closed by Close: releases delayed calls
}

var _ http.Handler = (*Handler)(nil)

// NewHandler builds a demo server.
func NewHandler(opts Options) *Handler {
	h := &Handler{stop: make(chan struct{})}
	so := &mcp.ServerOptions{Logger: opts.Logger}
	if opts.Content {
		h.extra.contentOptions(so)
	}
	h.server = mcp.NewServer(&mcp.Implementation{Name: "demo-upstream", Version: "1.0.0"}, so)
	h.retool = addTools(h.server, newBilling(), opts.Latency, h.stop)
	if opts.StreamingTools {
		addStreamingTools(h.server)
		h.extra.addBrokeredTools(h.server)
	}
	if opts.Content {
		addContent(h.server)
	}
	if opts.InspectionTools {
		addInspectionTools(h.server)
	}
	if opts.Tracer != nil {
		h.server.AddReceivingMiddleware(traceMiddleware(opts.Tracer))
	}

	ho := &mcp.StreamableHTTPOptions{Stateless: opts.Stateless, Logger: opts.Logger}
	if opts.EventStore {
		ho.EventStore = mcp.NewMemoryEventStore(nil)
	}
	var mcpHandler http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return h.server }, ho)
	if opts.RequireBearer != "" {
		mcpHandler = requireBearer(opts.RequireBearer, mcpHandler)
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /calls", h.serveCalls)
	h.mux.HandleFunc("DELETE /calls", func(w http.ResponseWriter, _ *http.Request) {
		h.log.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	h.mux.HandleFunc("POST /admin/tools/{name}", h.serveChangeTool)
	h.mux.HandleFunc("GET /state", h.extra.serveState)
	h.mux.HandleFunc("POST /admin/resources/updated", serveUpdated(h.server))
	h.mux.Handle("/", h.log.record(mcpHandler))
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// State returns what the server saw beyond tool calls.
func (h *Handler) State() State { return h.extra.state() }

// Calls returns the tools/call requests received so far, oldest first.
func (h *Handler) Calls() []Call { return h.log.calls() }

// OpenSessions is the number of MCP sessions the server holds.
func (h *Handler) OpenSessions() int {
	n := 0
	for range h.server.Sessions() {
		n++
	}
	return n
}

// Close ends every MCP session the server holds and releases calls held
// by Latency, as a server shutdown would. Call it before closing the HTTP
// server so that no handler outlives the test. Close is idempotent.
func (h *Handler) Close() {
	h.stopOnce.Do(func() { close(h.stop) })
	for ss := range h.server.Sessions() {
		_ = ss.Close()
	}
}

func (h *Handler) serveCalls(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h.log.calls())
}

// requireBearer answers 401 unless the request carries exactly token.
func requireBearer(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="demo-upstream"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
