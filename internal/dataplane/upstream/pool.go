// Package upstream calls the MCP servers behind the gateway. A Pool keeps
// one client per upstream (internal/mcpclient: both protocol eras, one
// shared legacy session, re-created when the upstream forgets it) and
// attaches the upstream's own credential; the caller's credential never
// reaches it (the API has no way to pass one). Results come back as the
// upstream sent them, never re-encoded.
//
// Retries beyond a request the upstream provably never received, circuit
// breaking, concurrency limits and federation of resources and prompts
// belong to the rest of the brokering work; they keep the Resolver seam.
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
)

// Resolver answers from the data plane's active configuration. It is
// implemented by the compiled snapshot and must be safe for concurrent use.
type Resolver interface {
	// Upstream finds an upstream by name.
	Upstream(name string) (*configv1.Upstream, bool)
	// Secret returns a secret's plaintext value by name.
	Secret(name string) ([]byte, bool)
}

// Defaults for unset upstream fields.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxRequestBytes  = 1 << 20
	DefaultMaxResponseBytes = 8 << 20
)

// Option configures a Pool.
type Option func(*Pool)

// WithEgress sets the egress policy every upstream connection is dialed
// under (re-checked at dial time, so DNS rebinding cannot bypass it). An
// upstream's allow_link_local adds to it. The default is egress.Policy{}.
func WithEgress(p egress.Policy) Option { return func(pool *Pool) { pool.egress = p } }

// WithVersion sets the client version the pool announces to upstreams.
func WithVersion(v string) Option { return func(pool *Pool) { pool.version = v } }

// Pool holds the client sessions to upstreams. It is safe for concurrent
// use. Sessions are created on first use, kept warm, and replaced when the
// upstream's URL, credential or limits change.
type Pool struct {
	logger  *slog.Logger
	egress  egress.Policy
	version string

	transportsOnce sync.Once
	transports     [2]*http.Transport // by allow_link_local

	mu      sync.Mutex
	entries map[string]*entry // by upstream name
	closed  bool
	bg      sync.WaitGroup // background session closes
}

// NewPool returns an empty pool.
func NewPool(logger *slog.Logger, opts ...Option) *Pool {
	p := &Pool{
		logger:  logger.With("component", "upstream"),
		version: "dev",
		entries: map[string]*entry{},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// CallTool calls tool on the named upstream with raw JSON arguments (an
// object, or empty for none). It returns the tools/call result exactly as
// the upstream sent it and whether the upstream flagged it isError. The
// call is bounded by the upstream's resilience timeout (default 30s).
//
// Errors are *pipeline.Refusal with ReasonUpstreamUnavailable or
// ReasonUpstreamTimeout and messages safe for the caller, except when ctx
// is cancelled (the caller left): then the error wraps context.Canceled.
//
// A call is sent once. The client re-sends it only when the upstream
// provably never received it (it answered that it had forgotten the
// session, which is then re-created), so even a mutating call is never
// repeated.
func (p *Pool) CallTool(ctx context.Context, r Resolver, upstream, tool string, args json.RawMessage) (json.RawMessage, bool, error) {
	s, err := resolve(r, upstream)
	if err != nil {
		p.logger.WarnContext(ctx, "upstream not usable", slog.String("upstream", upstream), slog.Any("error", err))
		return nil, false, refusal(upstream, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	e, err := p.acquire(s)
	if err != nil {
		return nil, false, refusal(upstream, err)
	}
	defer p.release(e)

	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	params, err := json.Marshal(struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}{tool, args})
	if err != nil {
		return nil, false, fmt.Errorf("encode tools/call for %s on upstream %q: %w", tool, upstream, err)
	}
	m, err := e.client.Call(callCtx, "tools/call", params, nil)
	if err != nil {
		return nil, false, p.fail(ctx, s, tool, "call", err)
	}
	if m.Kind() == mcpwire.KindError {
		return nil, false, p.fail(ctx, s, tool, "call", rpcError(m))
	}
	if !mcpwire.IsObject(m.Result) {
		return nil, false, p.fail(ctx, s, tool, "call", errors.New("the tools/call result is not an object"))
	}
	var flag struct {
		IsError bool `json:"isError"`
	}
	if raw, err := mcpwire.Find(m.Result, "isError"); err == nil && raw != nil {
		_ = json.Unmarshal(raw, &flag.IsError)
	}
	return m.Result, flag.IsError, nil
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
	for _, t := range p.transports {
		if t != nil {
			t.CloseIdleConnections()
		}
	}
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
		})
		if err != nil {
			return nil, err
		}
		e = &entry{settings: s, client: client}
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
// for its egress rule, the upstream's credential and byte limits, and no
// redirects (a redirect would carry the credential to another origin).
func (p *Pool) httpClient(s settings) *http.Client {
	p.transportsOnce.Do(func() {
		for i := range p.transports {
			pol := p.egress
			pol.AllowLinkLocal = pol.AllowLinkLocal || i == 1
			d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, ControlContext: pol.DialControlContext}
			p.transports[i] = &http.Transport{
				// No proxy: the egress policy judges the upstream's own address.
				Proxy:                 nil,
				DialContext:           d.DialContext,
				ForceAttemptHTTP2:     true,
				MaxIdleConns:          256,
				MaxIdleConnsPerHost:   64,
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				ExpectContinueTimeout: time.Second,
			}
		}
	})
	base := p.transports[0]
	if s.allowLinkLocal {
		base = p.transports[1]
	}
	return &http.Client{
		Transport: &credentialTransport{
			base: base, header: s.header, value: s.value,
			maxRequest: s.maxRequest, maxResponse: s.maxResponse,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
