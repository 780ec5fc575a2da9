// Package protocol is the contract between the data plane and the
// protocols it brokers (MCP and A2A now; LLM APIs next). A protocol
// package serves its agents at its own HTTP endpoints, turns each request
// into a protocol-neutral pipeline.Call, runs it through the data plane's
// one pipeline (Deps.Backend) and renders the neutral result or refusal in
// its own wire shape; its forwarder, the pipeline's terminal for its
// calls, reaches its upstreams. The server knows protocols only as a list
// of Protocol values.
//
// # Adding a protocol
//
// As A2A was added (package protocol/a2a), say an LLM API:
//
//  1. Write package internal/dataplane/protocol/llm with
//     func New(deps protocol.Deps) protocol.Protocol, its Name the one the
//     configuration gives its upstreams' protocol ("llm"; see
//     pipeline.Config.Upstreams). Its endpoints build calls with
//     deps.Backend.Begin, set Call.Protocol to its Name, run them with
//     deps.Backend.Run and render what comes back; anonymous requests they
//     refuse before a call exists go to deps.Anonymous. Its forwarder
//     reaches upstreams through an upstream.Conns with its own
//     upstream.Driver (its session type; the configured protocols it
//     serves, e.g. PROTOCOL_LLM) and runs every attempt in resilience.Do
//     with its own resilience.Classifier, passing deps.Observer and
//     deps.HopID to the Conns. Its wire constants go in its wire package
//     (as MCP's are in internal/mcpwire, A2A's in internal/a2awire), not in
//     its client.
//  2. Register it: add llm.New(deps) to the list that
//     internal/dataplane/server's protocols function returns. That is the
//     only change outside the new package: the server mounts its
//     Endpoints, routes calls whose Call.Protocol is its Name to its
//     Forward, lists pinned tools of its upstreams for drift detection
//     through its Tools, and calls its Configured, Stop and Close hooks.
//
// Stages see only the neutral pipeline.Call (operation, target kind and
// name, read-only or not), never a protocol's types.
package protocol

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/dataplane/drift"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Backend runs calls for a protocol's endpoints: the data plane's one
// pipeline. It must be safe for concurrent use.
type Backend interface {
	// Begin returns a fresh Call bound to the current configuration and
	// mode (Config is nil while the data plane has none).
	Begin(r *http.Request) *pipeline.Call
	// Run runs c through the pipeline's stages and, when they admit it,
	// its protocol's forwarder.
	Run(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error)
}

// AnonymousRecorder counts a request an endpoint of protocol refused
// before any agent could be identified (in metrics, and summarized in the
// audit log). It must be safe for concurrent use.
type AnonymousRecorder interface {
	Refused(protocol string, src netip.Addr, reason string)
}

// Deps is what the data plane gives every protocol.
type Deps struct {
	// Logger is the data plane's logger.
	Logger *slog.Logger
	// Backend runs calls.
	Backend Backend
	// HopID names this data plane for loop detection (package hop): its
	// endpoints refuse a request whose chain names it, and its upstream
	// requests carry the chain.
	HopID string
	// Observer receives upstreams' resilience events, for metrics.
	Observer resilience.Observer
	// UpstreamHTTP1 reaches plain http:// upstreams with package
	// upstream/h1 (see upstream.WithHTTP1).
	UpstreamHTTP1 bool
	// Anonymous counts refusals of unidentified requests.
	Anonymous AnonymousRecorder
	// AuthorizationServers lists the issuers whose tokens agents may
	// present (for OAuth protected-resource metadata).
	AuthorizationServers func() []string
}

// Endpoint is an HTTP handler a protocol serves agents at.
type Endpoint struct {
	// Pattern is the http.ServeMux pattern ("/mcp").
	Pattern string
	Handler http.Handler
}

// Protocol is what a protocol package gives the data plane. Name,
// Upstreams, Endpoints and Forward are required; a nil hook means the
// protocol has nothing to do there.
type Protocol struct {
	// Name is the protocol's name in pipeline.Call.Protocol, metrics and
	// configuration lookups ("mcp").
	Name string
	// Upstreams are the configured upstream protocols it serves.
	Upstreams []configv1.Protocol
	// Endpoints are mounted on the data plane's listener.
	Endpoints []Endpoint
	// Forward is the terminal handler of its calls: it sends what the
	// pipeline admitted upstream and returns the neutral result.
	Forward pipeline.Handler
	// Tools lists an upstream's tool definitions as it sends them, for
	// drift detection of pinned tools.
	Tools drift.Lister
	// Configured runs after a new configuration started serving (under
	// the data plane's apply lock: it must not block).
	Configured func(r upstream.Resolver)
	// Stop ends the endpoints' long-lived streams; it runs before the
	// listener shuts down, which waits for open requests.
	Stop func()
	// Close releases the protocol's upstream connections once its calls
	// have ended.
	Close func() error
}

// Forwarder returns the terminal handler for ps: each call goes to the
// Forward of the protocol it came in by (Call.Protocol).
func Forwarder(ps []Protocol) pipeline.Handler {
	forward := make(map[string]pipeline.Handler, len(ps))
	for _, p := range ps {
		forward[p.Name] = p.Forward
	}
	return func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		f, ok := forward[c.Protocol]
		if !ok {
			return nil, pipeline.Refuse(pipeline.ReasonInternal, "the gateway failed to process the call; it has been logged")
		}
		return f(ctx, c)
	}
}

// Lister returns the drift.Lister for ps: an upstream's tools are listed
// by the protocol serving its configured protocol.
func Lister(ps []Protocol) drift.Lister { return listers(ps) }

type listers []Protocol

func (ls listers) ListTools(ctx context.Context, r upstream.Resolver, name string) ([]json.RawMessage, error) {
	u, ok := r.Upstream(name)
	if !ok {
		return nil, fmt.Errorf("upstream %q is not in the data plane's configuration", name)
	}
	for _, p := range ls {
		if p.Tools != nil && slices.Contains(p.Upstreams, u.GetProtocol()) {
			return p.Tools.ListTools(ctx, r, name)
		}
	}
	return nil, fmt.Errorf("upstream %q: no protocol of this data plane lists the tools of %s upstreams", name, u.GetProtocol())
}
