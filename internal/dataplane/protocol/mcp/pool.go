package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Pool calls the MCP servers behind the gateway. It keeps one
// mcpclient.Client per upstream (both protocol eras, one legacy session
// shared by every call and re-created when the upstream forgets it) in an
// upstream.Conns, which attaches the upstream's own credential — the
// caller's never reaches it — and replaces the client when the upstream's
// settings change. Every tools/call and request runs under the upstream's
// resilience guard (resilience.Do). Results come back as the upstream
// sent them, never re-encoded. Safe for concurrent use.
type Pool struct {
	conns  *upstream.Conns[*upSession]
	logger *slog.Logger
	subs   *subscriptions
	// resolver is the configuration the pool last saw (a call's or
	// Prune's), for what it does on its own: unsubscribing upstreams.
	resolver atomic.Pointer[resolverBox]

	bgMu     sync.Mutex
	bgClosed bool
	bg       sync.WaitGroup // callers' answers being passed upstream, unsubscriptions
}

// resolverBox holds a Resolver in an atomic.Pointer.
type resolverBox struct{ r upstream.Resolver }

// clientVersion is the clientInfo.version the pool announces upstream.
const clientVersion = "dev"

// upstreamProtocols are the configured protocols of the upstreams MCP
// serves (an upstream registered without one is MCP).
var upstreamProtocols = []configv1.Protocol{configv1.Protocol_PROTOCOL_MCP, configv1.Protocol_PROTOCOL_UNSPECIFIED}

// NewPool returns an empty pool; opts configure its connections (hop id,
// resilience observer, queue wait, backoff).
func NewPool(logger *slog.Logger, opts ...upstream.Option) *Pool {
	p := &Pool{logger: logger.With("component", "upstream"), subs: newSubscriptions()}
	p.conns = upstream.NewConns(logger, upstream.Driver[*upSession]{
		Name:      "MCP",
		Protocols: upstreamProtocols,
		Headers:   []string{mcpwire.HeaderSessionID, mcpwire.HeaderProtocolVersion, mcpwire.HeaderMethod, mcpwire.HeaderName},
		Key:       func(u *configv1.Upstream) string { return era(u).String() },
		Open:      p.open,
		Close:     func(ctx context.Context, s *upSession) error { return s.Close(ctx) },
	}, opts...)
	return p
}

// upstreamLogLevel is the log level the pool asks of every upstream: all
// of them. One upstream session serves every caller, each of which may
// ask for its own level (logging/setLevel, or a 2026-07-28 request's
// _meta); the endpoint passes each caller what it asked for.
const upstreamLogLevel = "debug"

// open makes the session of one upstream; it connects on first use.
func (p *Pool) open(s *upstream.Settings, hc *http.Client) (*upSession, error) {
	c, err := mcpclient.New(mcpclient.Config{
		// The client hands each request over: the Sender sets the
		// upstream's headers on it without copying it.
		URL: s.URL, HTTP: upstream.SenderFor(hc), Name: "portcullis", Version: clientVersion,
		Era: era(s.Config), MaxMessageBytes: int(s.MaxResponse),
		// The gateway relays these to its callers (and refuses them for a
		// caller that cannot answer).
		Capabilities: json.RawMessage(`{"elicitation":{},"sampling":{}}`),
		Hide:         s.CredentialValues(),
		LogLevel:     upstreamLogLevel,
	})
	if err != nil {
		return nil, err
	}
	return newUpSession(p, s.Name, c), nil
}

// remember keeps r as the configuration the pool last saw.
func (p *Pool) remember(r upstream.Resolver) {
	if b := p.resolver.Load(); b == nil || b.r != r {
		p.resolver.Store(&resolverBox{r})
	}
}

// current acquires the named upstream's connection under the
// configuration the pool last saw; Release it.
func (p *Pool) current(name string) (*conn, bool) {
	b := p.resolver.Load()
	if b == nil {
		return nil, false
	}
	s, err := p.conns.Resolve(b.r, name)
	if err != nil {
		return nil, false
	}
	cn, err := p.conns.Acquire(&s)
	if err != nil {
		return nil, false
	}
	return cn, true
}

// bgGo runs f in a goroutine Close waits for; nothing starts once Close
// has begun.
func (p *Pool) bgGo(f func()) {
	p.bgMu.Lock()
	defer p.bgMu.Unlock()
	if !p.bgClosed {
		p.bg.Go(f)
	}
}

// era is the protocol era configured for u (auto-detected when unset).
func era(u *configv1.Upstream) mcpclient.Era {
	switch u.GetMcpEra() {
	case configv1.McpEra_MCP_ERA_LEGACY:
		return mcpclient.EraLegacy
	case configv1.McpEra_MCP_ERA_MODERN:
		return mcpclient.EraModern
	}
	return mcpclient.EraAuto
}

// conn is one upstream's connection in the pool.
type conn = upstream.Conn[*upSession]

// ToolCall is one tools/call for CallTool.
type ToolCall struct {
	// Upstream is the upstream's name; Tool the tool's name there.
	Upstream, Tool string
	// Class is the operator's classification of the tool: only read-only
	// and idempotent tools are retried.
	Class configv1.ToolClass
	// Arguments is a JSON object, or empty for none.
	Arguments json.RawMessage
	// Relay, when set, passes the upstream's messages before the result
	// (progress, server→client requests) to the caller.
	Relay *pipeline.Relay
}

// CallTool calls c.Tool on c.Upstream. It returns the tools/call result
// exactly as the upstream sent it and whether the upstream flagged it
// isError. The call, its retries and any wait for a concurrency slot are
// bounded by the upstream's resilience timeout (default 30s).
//
// Errors are *pipeline.Refusal with ReasonUpstreamUnavailable or
// ReasonUpstreamTimeout and messages safe for the caller, except when ctx
// is cancelled (the caller left): then the error wraps context.Canceled.
//
// Resilience, per upstream (resilience.Do): a circuit breaker refuses
// calls at once after breaker_failures consecutive failures, for
// breaker_open, then lets one trial call through; at most max_concurrency
// calls run at a time, and a call that finds no free slot within a short
// wait is refused. A failed call of a tool classified read-only or
// idempotent is retried (up to max_retries, with jittered exponential
// backoff, within the timeout and the upstream's retry budget) when the
// failure was a transport failure, a 5xx or 429, or an attempt timeout —
// never after the upstream answered with a JSON-RPC error or an isError
// result. Other calls are sent once: the client re-sends one only when
// the upstream provably never received it (it answered that it had
// forgotten the session, which is then re-created), so a mutating call is
// never repeated.
func (p *Pool) CallTool(ctx context.Context, r upstream.Resolver, c ToolCall) (json.RawMessage, bool, error) {
	s, err := p.conns.Resolve(r, c.Upstream)
	if err != nil {
		p.logger.WarnContext(ctx, "upstream not usable", slog.String("upstream", c.Upstream), slog.Any("error", err))
		return nil, false, refusal(c.Upstream, err)
	}
	args := c.Arguments
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	params, err := mcpwire.NewToolCallParams(c.Tool, args)
	if err != nil {
		return nil, false, fmt.Errorf("encode tools/call for %s on upstream %q: %w", c.Tool, c.Upstream, err)
	}
	cn, err := p.conns.Acquire(&s)
	if err != nil {
		return nil, false, refusal(c.Upstream, err)
	}
	defer cn.Release()
	params, cr, err := p.relayFor(ctx, cn, params, c.Relay)
	if err != nil {
		return nil, false, fmt.Errorf("relay for %s on upstream %q: %w", c.Tool, c.Upstream, err)
	}
	defer cr.end()
	on := cr.handler()

	res, err := resilience.Do(ctx, cn.Guard,
		resilience.Call{Op: c.Tool, Timeout: s.Timeout, Repeatable: repeatable(c.Class), MaxRetries: s.MaxRetries},
		classifier{}, func(ctx context.Context) (toolResult, error) { return attempt(ctx, cn.Session.Client, params, on) })
	if err != nil {
		return nil, false, p.fail(ctx, &s, c.Tool, "call", err)
	}
	cn.Session.used()
	return res.body, res.isError, nil
}

// repeatable reports whether the operator's classification lets a call be
// sent again after a failure that may have reached the upstream.
// Unclassified tools are treated as mutating.
func repeatable(class configv1.ToolClass) bool {
	return class == configv1.ToolClass_TOOL_CLASS_READ_ONLY || class == configv1.ToolClass_TOOL_CLASS_IDEMPOTENT
}

// toolResult is one tools/call result as the upstream sent it.
type toolResult struct {
	body    json.RawMessage
	isError bool
}

// attempt sends one tools/call and reads its result; messages before the
// result go to on (nil: dropped).
func attempt(ctx context.Context, c *mcpclient.Client, params json.RawMessage, on mcpclient.Handler) (toolResult, error) {
	m, err := c.Call(ctx, "tools/call", params, on)
	if err != nil {
		return toolResult{}, err
	}
	if m.Kind() == mcpwire.KindError {
		// A tool's failure is an isError result; a JSON-RPC error means
		// the upstream could not run the pinned tool at all.
		return toolResult{}, c.Refused("tools/call", m)
	}
	if !mcpwire.IsObject(m.Result) {
		return toolResult{}, c.Malformed(m.Result, "its tools/call result is not an object")
	}
	var isError bool
	if raw, err := mcpwire.Find(m.Result, "isError"); err == nil && raw != nil {
		_ = json.Unmarshal(raw, &isError)
	}
	return toolResult{body: m.Result, isError: isError}, nil
}

// Request sends one MCP request other than tools/call (resources/list,
// resources/read, prompts/get, …) to the named upstream with its own
// credential and returns the response as the upstream sent it (a result
// or an error message). It runs under the upstream's guard like a call
// (timeout, breaker, concurrency limit) and is never retried. Errors are
// *pipeline.Refusal values safe for callers, except the caller's own
// cancellation.
func (p *Pool) Request(ctx context.Context, r upstream.Resolver, name, method string, params json.RawMessage) (*mcpwire.Message, error) {
	p.remember(r)
	s, err := p.conns.Resolve(r, name)
	if err != nil {
		return nil, refusal(name, err)
	}
	cn, err := p.conns.Acquire(&s)
	if err != nil {
		return nil, refusal(name, err)
	}
	defer cn.Release()
	m, err := p.requestOn(ctx, cn, &s, method, params, nil)
	if err != nil {
		return nil, err
	}
	cn.Session.used()
	return m, nil
}

// requestOn sends one request on cn under the upstream's guard (never
// retried) and returns the upstream's answer, a result or an error
// message; errors are what callers may see.
func (p *Pool) requestOn(ctx context.Context, cn *conn, s *upstream.Settings, method string, params json.RawMessage, on mcpclient.Handler) (*mcpwire.Message, error) {
	m, err := resilience.Do(ctx, cn.Guard, resilience.Call{Op: method, Timeout: s.Timeout}, classifier{},
		func(ctx context.Context) (*mcpwire.Message, error) { return cn.Session.Call(ctx, method, params, on) })
	if err != nil {
		return nil, p.fail(ctx, s, method, "request", err)
	}
	return m, nil
}

// ListTools walks the named upstream's tools/list and returns each tool
// definition exactly as the upstream sent it, for drift detection (it
// implements drift.Lister). It uses the upstream's pooled client (its own
// credential attached; a legacy session shared with calls) and is bounded
// by the upstream's timeout (default 30s) as well as ctx, outside the
// guard: a listing neither trips nor waits for the breaker. Errors say
// which upstream failed and name no secret.
func (p *Pool) ListTools(ctx context.Context, r upstream.Resolver, name string) ([]json.RawMessage, error) {
	s, err := p.conns.Resolve(r, name)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	cn, err := p.conns.Acquire(&s)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	defer cn.Release()
	defs, err := cn.Session.ListTools(ctx)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	return defs, nil
}

// Healthy reports whether calls to upstream may currently be sent: false,
// with a reason safe for callers, while its circuit breaker is open. An
// upstream the pool has not called yet is healthy. tools/list leaves a
// failing upstream's tools out.
func (p *Pool) Healthy(name string) (ok bool, why string) { return p.conns.Healthy(name) }

// Prune closes the sessions of upstreams that r no longer has or whose
// settings changed; calls in flight finish first.
func (p *Pool) Prune(r upstream.Resolver) {
	p.remember(r)
	p.conns.Prune(r)
	// An upstream whose connection was replaced gets its subscriptions on
	// the new one at once, not at the next call.
	for _, name := range p.subs.upstreamsWith() {
		if cn, ok := p.current(name); ok {
			cn.Session.subscriptionsChanged()
			cn.Release()
		}
	}
}

// Close closes every session (calls in flight fail) and waits until they
// have ended; later calls are refused. Telling an upstream that its
// session ended is best effort: failures are logged, and Close always
// returns nil.
func (p *Pool) Close() error {
	err := p.conns.Close()
	p.bgMu.Lock()
	p.bgClosed = true
	p.bgMu.Unlock()
	p.bg.Wait()
	return err
}
