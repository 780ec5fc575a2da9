// Package upstream calls the MCP servers behind the gateway. A Pool keeps
// one client per upstream (internal/mcpclient: both protocol eras, one
// shared legacy session, re-created when the upstream forgets it) and
// attaches the upstream's own credential; the caller's credential never
// reaches it (the API has no way to pass one). Results come back as the
// upstream sent them, never re-encoded.
//
// Each upstream is isolated (guard.go): a circuit breaker, a concurrency
// limit, and retries for tools the operator classified read-only or
// idempotent, within a retry budget (retry.go). Healthy tells the MCP
// endpoint which upstreams' tools to leave out of tools/list.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
)

// Resolver answers from the data plane's active configuration. It is
// implemented by the compiled snapshot and must be safe for concurrent use.
type Resolver interface {
	// Upstream finds an upstream by name.
	Upstream(name string) (*configv1.Upstream, bool)
	// Secret returns a secret's plaintext value by name and the hosts it
	// may be sent to (see package secretbind; none: nowhere).
	Secret(name string) (value []byte, hosts []string, ok bool)
	// Egress is the policy connections to upstreams and their OAuth token
	// endpoints are dialed under: the control plane's, from the snapshot.
	// An upstream's allow_link_local adds to it.
	Egress() egress.Policy
}

// Defaults for unset upstream fields.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxRequestBytes  = 1 << 20
	DefaultMaxResponseBytes = 8 << 20
	DefaultMaxRetries       = 2
	DefaultBreakerFailures  = 5
	DefaultBreakerOpen      = 10 * time.Second
	DefaultMaxConcurrency   = 64
)

// DefaultQueueWait is how long a call waits for a concurrency slot before
// it is refused.
const DefaultQueueWait = 500 * time.Millisecond

// Option configures a Pool.
type Option func(*Pool)

// WithHopID names this data plane in the Portcullis-Hop header of every
// upstream request (see package hop), after the chain the call came with.
func WithHopID(id string) Option { return func(pool *Pool) { pool.hopID = id } }

// WithObserver sends resilience events (retries, breaker changes,
// rejections) to o, for metrics.
func WithObserver(o Observer) Option { return func(pool *Pool) { pool.obs = o } }

// WithQueueWait sets how long a call waits for a concurrency slot of a
// busy upstream before it is refused (default DefaultQueueWait).
func WithQueueWait(d time.Duration) Option { return func(pool *Pool) { pool.queueWait = d } }

// WithBackoff sets the retry backoff: retry n waits a random time between
// half and all of min(ceiling, base·2ⁿ). Defaults: DefaultBackoffBase,
// DefaultBackoffMax.
func WithBackoff(base, ceiling time.Duration) Option {
	return func(pool *Pool) { pool.backoffBase, pool.backoffMax = base, ceiling }
}

// WithVersion sets the client version the pool announces to upstreams.
func WithVersion(v string) Option { return func(pool *Pool) { pool.version = v } }

// Pool holds the client sessions to upstreams. It is safe for concurrent
// use. Sessions are created on first use, kept warm, and replaced when the
// upstream's URL, credential or limits change.
type Pool struct {
	logger      *slog.Logger
	version     string
	obs         Observer
	queueWait   time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	hopID       string

	mu      sync.Mutex
	entries map[string]*entry // by upstream name
	// transports are shared by the upstreams dialed under one egress
	// policy (settings.egressKey); a policy no entry uses is dropped.
	transports map[string]*http.Transport
	closed     bool
	bg         sync.WaitGroup // background session closes
}

// NewPool returns an empty pool.
func NewPool(logger *slog.Logger, opts ...Option) *Pool {
	p := &Pool{
		logger:     logger.With("component", "upstream"),
		version:    "dev",
		entries:    map[string]*entry{},
		transports: map[string]*http.Transport{},
		obs:        nopObserver{},
		// Defaults; options may change them.
		queueWait: DefaultQueueWait, backoffBase: DefaultBackoffBase, backoffMax: DefaultBackoffMax,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// ToolCall is one tools/call for CallTool.
type ToolCall struct {
	// Upstream is the upstream's name; Tool the tool's name there.
	Upstream, Tool string
	// Class is the operator's classification of the tool: only read-only
	// and idempotent tools are retried.
	Class configv1.ToolClass
	// Arguments is a JSON object, or empty for none.
	Arguments json.RawMessage
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
// Resilience, per upstream: a circuit breaker refuses calls at once after
// breaker_failures consecutive failures, for breaker_open, then lets one
// trial call through; at most max_concurrency calls run at a time, and a
// call that finds no free slot within a short wait is refused. A failed
// call of a tool classified read-only or idempotent is retried (up to
// max_retries, with jittered exponential backoff, within the timeout and
// the upstream's retry budget) when the failure was a transport failure,
// a 5xx or 429, or an attempt timeout — never after the upstream answered
// with a JSON-RPC error or an isError result. Other calls are sent once:
// the client re-sends one only when the upstream provably never received
// it (it answered that it had forgotten the session, which is then
// re-created), so a mutating call is never repeated.
func (p *Pool) CallTool(ctx context.Context, r Resolver, c ToolCall) (json.RawMessage, bool, error) {
	s, err := resolve(r, c.Upstream)
	if err != nil {
		p.logger.WarnContext(ctx, "upstream not usable", slog.String("upstream", c.Upstream), slog.Any("error", err))
		return nil, false, refusal(c.Upstream, err)
	}
	args := c.Arguments
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	params, err := json.Marshal(struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}{c.Tool, args})
	if err != nil {
		return nil, false, fmt.Errorf("encode tools/call for %s on upstream %q: %w", c.Tool, c.Upstream, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	e, err := p.acquire(s)
	if err != nil {
		return nil, false, refusal(c.Upstream, err)
	}
	defer p.release(e)

	g := e.guard
	if g.open() {
		// Fail fast, without waiting for a slot.
		done, ref := g.allow()
		if ref != nil {
			p.logger.DebugContext(ctx, "upstream call refused by its circuit breaker", slog.String("upstream", s.name), slog.String("tool", c.Tool))
			return nil, false, ref
		}
		// It turned half-open meanwhile: give the trial back; the
		// attempt below asks again.
		done(errBreakerExcluded)
	}
	if !g.acquireSlot(callCtx, p.queueWait) {
		if callCtx.Err() != nil {
			return nil, false, p.fail(ctx, s, c.Tool, "wait for a concurrency slot", callCtx.Err())
		}
		p.obs.UpstreamRejected(s.name, RejectedConcurrencyLimit)
		p.logger.WarnContext(ctx, "upstream call refused: concurrency limit reached",
			slog.String("upstream", s.name), slog.String("tool", c.Tool), slog.Int("max_concurrency", s.maxConcurrency))
		return nil, false, g.limitRefusal()
	}
	defer g.releaseSlot()

	params, on, relayDone, err := p.relayFor(ctx, e, params, relayFrom(ctx))
	if err != nil {
		return nil, false, fmt.Errorf("relay for %s on upstream %q: %w", c.Tool, c.Upstream, err)
	}
	defer relayDone()

	g.budget.earn()
	retries := 0
	if retriable(c.Class) {
		retries = s.maxRetries
	}
	for attempt := 0; ; attempt++ {
		done, ref := g.allow()
		if ref != nil {
			p.logger.DebugContext(ctx, "upstream call refused by its circuit breaker",
				slog.String("upstream", s.name), slog.String("tool", c.Tool), slog.Int("attempt", attempt+1))
			return nil, false, ref
		}
		res, isErr, err := p.attempt(callCtx, e, params, on)
		done(breakerOutcome(ctx, err))
		if err == nil {
			return res, isErr, nil
		}
		if attempt >= retries || !retryable(err) || ctx.Err() != nil {
			return nil, false, p.fail(ctx, s, c.Tool, "call", err)
		}
		wait := backoff(p.backoffBase, p.backoffMax, attempt)
		if dl, ok := callCtx.Deadline(); ok && time.Until(dl) <= wait {
			return nil, false, p.fail(ctx, s, c.Tool, "call", err)
		}
		if !g.budget.spend() {
			p.obs.UpstreamRejected(s.name, RejectedRetryBudget)
			p.logger.DebugContext(ctx, "upstream retry budget exhausted; not retrying", slog.String("upstream", s.name), slog.String("tool", c.Tool))
			return nil, false, p.fail(ctx, s, c.Tool, "call", err)
		}
		p.logger.DebugContext(ctx, "retrying upstream call", slog.String("upstream", s.name), slog.String("tool", c.Tool),
			slog.Int("retry", attempt+1), slog.Duration("after", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-callCtx.Done():
			t.Stop()
			return nil, false, p.fail(ctx, s, c.Tool, "call", err)
		}
		p.obs.UpstreamRetry(s.name)
	}
}

// attempt sends one tools/call and reads its result; messages before the
// result go to on (nil: dropped).
func (p *Pool) attempt(ctx context.Context, e *entry, params json.RawMessage, on mcpclient.Handler) (json.RawMessage, bool, error) {
	m, err := e.client.Call(ctx, "tools/call", params, on)
	if err != nil {
		return nil, false, err
	}
	if m.Kind() == mcpwire.KindError {
		return nil, false, rpcError(m)
	}
	if !mcpwire.IsObject(m.Result) {
		return nil, false, errors.New("the tools/call result is not an object")
	}
	var isError bool
	if raw, err := mcpwire.Find(m.Result, "isError"); err == nil && raw != nil {
		_ = json.Unmarshal(raw, &isError)
	}
	return m.Result, isError, nil
}

// Healthy reports whether calls to upstream may currently be sent: false,
// with a reason safe for callers, while its circuit breaker is open. An
// upstream the pool has not called yet is healthy. The MCP endpoint uses
// it to leave a failing upstream's tools out of tools/list.
func (p *Pool) Healthy(upstream string) (ok bool, why string) {
	p.mu.Lock()
	e := p.entries[upstream]
	p.mu.Unlock()
	if e == nil {
		return true, ""
	}
	return e.guard.healthy()
}

// Prune closes the sessions of upstreams that r no longer has or whose
// URL, credential or limits changed. The data plane calls it after it
// swaps in a new configuration; calls in flight finish first.
func (p *Pool) Prune(r Resolver) {
	p.mu.Lock()
	var stale []*entry
	for name, e := range p.entries {
		s, err := resolve(r, name)
		if err == nil && s.fingerprint == e.fingerprint {
			continue
		}
		delete(p.entries, name)
		e.retired = true
		if e.refs == 0 {
			stale = append(stale, e)
		}
	}
	p.mu.Unlock()
	for _, e := range stale {
		p.closeEntry(e)
	}
}

// Close closes every session (calls in flight fail) and waits until they
// have ended; later calls are refused. Telling an upstream that its session
// ended is best effort (the SDK gives it 5s): failures are logged, and
// Close always returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	entries := p.entries
	p.entries = nil
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Go(func() { p.closeQuietly(e) })
	}
	wg.Wait()
	p.bg.Wait()
	p.mu.Lock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
	p.mu.Unlock()
	return nil
}

// acquire returns the entry for s, replacing one whose settings changed,
// and holds a reference to it until release.
func (p *Pool) acquire(s settings) (*entry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	e := p.entries[s.name]
	if e != nil && e.fingerprint != s.fingerprint {
		p.logger.Info("upstream settings changed; replacing its session", slog.String("upstream", s.name))
		delete(p.entries, s.name)
		e.retired = true
		if old := e; old.refs == 0 {
			p.goCloseLocked(func() { p.closeQuietly(old) })
		}
		e = nil
	}
	if e == nil {
		client, err := mcpclient.New(mcpclient.Config{
			URL: s.url, HTTP: p.httpClient(s), Name: "portcullis", Version: p.version,
			Era: s.era, MaxMessageBytes: int(s.maxResponse),
			// The gateway relays these to its callers (and refuses them
			// for a caller that cannot answer).
			Capabilities: json.RawMessage(`{"elicitation":{},"sampling":{}}`),
			Hide:         s.credentialValues(),
		})
		if err != nil {
			return nil, err
		}
		e = &entry{settings: s, client: client, guard: newGuard(s, p.obs, p.logger)}
		p.entries[s.name] = e
	}
	e.refs++
	return e, nil
}

// release drops a reference taken by acquire; the last user of a replaced
// entry closes it.
func (p *Pool) release(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.refs--
	if e.retired && e.refs == 0 {
		p.goCloseLocked(func() { p.closeQuietly(e) })
	}
}

func (p *Pool) closeEntry(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.goCloseLocked(func() { p.closeQuietly(e) })
}

// closeQuietly closes e's session. Ending a session upstream (an HTTP
// DELETE) is best effort: a failure is logged, never returned.
func (p *Pool) closeQuietly(e *entry) {
	if err := e.close(); err != nil {
		p.logger.Debug("closing an upstream session failed", slog.String("upstream", e.name), slog.Any("error", err))
	}
}

// goCloseLocked runs f in a goroutine Close waits for; once the pool is
// closed it runs f inline. p.mu must be held.
func (p *Pool) goCloseLocked(f func()) {
	if p.closed {
		f()
		return
	}
	p.bg.Go(f)
}

// httpClient builds the HTTP client for one upstream: the shared transport
// for its egress policy, the upstream's credential and byte limits, and no
// redirects (a redirect would carry the credential to another origin).
// p.mu must be held.
func (p *Pool) httpClient(s settings) *http.Client {
	base := p.transportLocked(s)
	ct := &credentialTransport{
		base: base, header: s.header, value: s.value, hopID: p.hopID, hosts: s.hosts,
		maxRequest: s.maxRequest, maxResponse: s.maxResponse,
	}
	if s.oauth != nil {
		ts := oauthcc.NewSource(*s.oauth, base)
		ct.value = ""
		ct.dynamic = ts.Authorization
	}
	return &http.Client{
		Transport:     ct,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// transportLocked returns the transport that dials under s.egress, making
// it on first use, and drops the transports of policies no upstream uses
// any more (a new snapshot changed the policy). Every address is checked
// when the socket connects, so DNS rebinding cannot get past the policy;
// there is no proxy, so the policy judges the upstream's own address.
// p.mu must be held.
func (p *Pool) transportLocked(s settings) *http.Transport {
	if t, ok := p.transports[s.egressKey]; ok {
		return t
	}
	inUse := map[string]bool{s.egressKey: true}
	for _, e := range p.entries {
		inUse[e.egressKey] = true
	}
	for k, t := range p.transports {
		if !inUse[k] {
			// Calls still running on it finish; its idle connections go.
			t.CloseIdleConnections()
			delete(p.transports, k)
		}
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, ControlContext: s.egress.DialControlContext}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	p.transports[s.egressKey] = t
	return t
}
