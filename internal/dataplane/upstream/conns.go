package upstream

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream/h1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
)

// closeTimeout bounds ending one session with an upstream.
const closeTimeout = 5 * time.Second

// Driver is what a protocol gives Conns about its sessions with upstreams
// of type S (for MCP, a client holding at most one shared session).
type Driver[S any] struct {
	// Name names the protocol in refusals ("MCP").
	Name string
	// Protocols are the configured upstream protocols it serves; any
	// other upstream is refused as not speaking Name.
	Protocols []configv1.Protocol
	// Headers are the headers the protocol sets itself (canonical): a
	// header credential may not use them.
	Headers []string
	// Key, when set, names the protocol's own settings of u that a
	// session depends on: a change replaces the session.
	Key func(u *configv1.Upstream) string
	// Open makes the session for an upstream with settings s, sending
	// with hc: the upstream's credential, egress policy and byte limits
	// attached, no redirects followed (a client that hands each request
	// over sends more cheaply with SenderFor(hc)). It runs under Conns'
	// lock, so it must not block (sessions connect on first use).
	Open func(s *Settings, hc *http.Client) (S, error)
	// Close ends a session, best effort, within ctx.
	Close func(ctx context.Context, session S) error
	// Defaults replace the package's defaults for the protocol's
	// upstreams' unset settings (zero fields keep the package's).
	Defaults Defaults
}

// Defaults are a protocol's own defaults for unset upstream settings: an
// LLM completion runs longer and carries more than a tool call.
type Defaults struct {
	Timeout                 time.Duration
	MaxRequest, MaxResponse int64
	MaxConcurrency          int
}

// Conns keeps, for one protocol, one connection per upstream: its
// settings, HTTP client, resilience guard and protocol session. A
// connection is made on first use, kept warm, shared by every call, and
// replaced when the upstream's settings change (the old one is closed
// when its last call ends); the guard thus survives configuration swaps
// that leave the upstream's settings alone. Safe for concurrent use.
type Conns[S any] struct {
	driver Driver[S]
	logger *slog.Logger
	opts   options

	mu    sync.Mutex
	conns map[string]*Conn[S] // by upstream name
	// transports are shared by the upstreams dialed under one egress
	// policy (Settings.egressKey); a policy no connection uses is dropped.
	transports map[string]transport
	closed     bool
	bg         sync.WaitGroup // background session closes

	// resolved caches Settings for the Resolver calls came with last (see
	// Resolver: its answers are immutable).
	resolved atomic.Pointer[resolvedCache]
}

// resolvedCache is the Settings resolved from one Resolver, by upstream
// name, each with the Upstream message it was resolved from.
type resolvedCache struct {
	r  Resolver
	mu sync.RWMutex
	m  map[string]resolvedEntry
}

type resolvedEntry struct {
	u   *configv1.Upstream
	s   Settings
	err error
}

// Conn is one upstream's connection under one set of settings. Its
// fields never change; Release it when the call that acquired it ends.
type Conn[S any] struct {
	// Settings are the upstream's settings when the connection was made
	// (read Timeout and MaxRetries from the call's own Settings).
	Settings Settings
	// HTTP sends requests to the upstream with its credential attached.
	HTTP *http.Client
	// Guard is the upstream's breaker, retry budget and concurrency slots.
	Guard *resilience.Guard
	// Session is the protocol's session.
	Session S

	conns   *Conns[S]
	refs    int  // calls using the connection (conns.mu)
	retired bool // replaced or pruned; closed by its last user (conns.mu)
}

// NewConns returns an empty cache of d's connections.
func NewConns[S any](logger *slog.Logger, d Driver[S], opts ...Option) *Conns[S] {
	c := &Conns[S]{
		driver:     d,
		logger:     logger.With("component", "upstream"),
		conns:      map[string]*Conn[S]{},
		transports: map[string]transport{},
	}
	for _, o := range opts {
		o(&c.opts)
	}
	c.opts.guard.Logger = c.logger
	return c
}

// Resolve reads upstream name's settings from r. Its errors name no
// secret; Refusal says what they mean to a caller. The settings are
// resolved once per Resolver and Upstream message (see Resolver) and
// shared: callers copy the value, and must not modify what its slices and
// Config point to.
func (c *Conns[S]) Resolve(r Resolver, name string) (Settings, error) {
	u, ok := r.Upstream(name)
	if !ok || !cacheable(r) {
		return resolve(r, name, &c.driver)
	}
	rc := c.resolved.Load()
	if rc == nil || rc.r != r {
		rc = &resolvedCache{r: r, m: map[string]resolvedEntry{}}
		c.resolved.Store(rc) // a race with another Resolver only costs a resolve
	}
	rc.mu.RLock()
	e, hit := rc.m[name]
	rc.mu.RUnlock()
	if hit && e.u == u {
		return e.s, e.err
	}
	s, err := resolve(r, name, &c.driver)
	if s.Config != u {
		// r changed between the two reads: do not cache what no message names.
		return s, err
	}
	rc.mu.Lock()
	rc.m[name] = resolvedEntry{u: u, s: s, err: err}
	rc.mu.Unlock()
	return s, err
}

// cacheable reports whether r can key the cache: a pointer (the compiled
// snapshot, the test fakes). Other Resolvers are resolved per call, since
// comparing interface values whose dynamic type is not comparable panics.
func cacheable(r Resolver) bool {
	t := reflect.TypeOf(r)
	return t != nil && t.Kind() == reflect.Pointer
}

// Acquire returns the connection for s, making it on first use and
// replacing one made under other settings, and holds it until Release.
func (c *Conns[S]) Acquire(s *Settings) (*Conn[S], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	cn := c.conns[s.Name]
	if cn != nil && !sameConnection(&cn.Settings, s) {
		c.logger.Info("upstream settings changed; replacing its connection", slog.String("upstream", s.Name))
		delete(c.conns, s.Name)
		cn.retired = true
		if old := cn; old.refs == 0 {
			c.goCloseLocked(func() { c.closeQuietly(old) })
		}
		cn = nil
	}
	if cn == nil {
		s.egressKey = egressKey(s.egress)
		hc := c.httpClientLocked(s)
		// Open gets the connection's own copy of the settings, so that s,
		// the caller's, stays where the caller keeps it (on its stack).
		cn = &Conn[S]{Settings: *s, HTTP: hc, conns: c}
		session, err := c.driver.Open(&cn.Settings, hc)
		if err != nil {
			return nil, err
		}
		cn.Guard, cn.Session = resilience.NewGuard(s.Name, s.Limits, c.opts.guard), session
		c.conns[s.Name] = cn
	}
	cn.refs++
	return cn, nil
}

// Release drops the hold Acquire took; the last user of a replaced
// connection closes it.
func (cn *Conn[S]) Release() {
	c := cn.conns
	c.mu.Lock()
	defer c.mu.Unlock()
	cn.refs--
	if cn.retired && cn.refs == 0 {
		c.goCloseLocked(func() { c.closeQuietly(cn) })
	}
}

// Healthy reports whether calls to upstream may currently be sent: false,
// with a reason safe for callers, while its circuit breaker is open. An
// upstream not called yet is healthy.
func (c *Conns[S]) Healthy(upstream string) (ok bool, why string) {
	c.mu.Lock()
	cn := c.conns[upstream]
	c.mu.Unlock()
	if cn == nil {
		return true, ""
	}
	return cn.Guard.Healthy()
}

// Prune closes the connections of upstreams that r no longer has or whose
// settings changed; calls in flight finish first. The data plane calls it
// after it swaps in a new configuration.
func (c *Conns[S]) Prune(r Resolver) {
	c.mu.Lock()
	var stale []*Conn[S]
	for name, cn := range c.conns {
		s, err := c.Resolve(r, name)
		if err == nil && sameConnection(&s, &cn.Settings) {
			continue
		}
		delete(c.conns, name)
		cn.retired = true
		if cn.refs == 0 {
			stale = append(stale, cn)
		}
	}
	for _, cn := range stale {
		c.goCloseLocked(func() { c.closeQuietly(cn) })
	}
	c.mu.Unlock()
}

// Close closes every connection (calls in flight fail) and waits until
// they have ended; later calls are refused. Ending a session with an
// upstream is best effort (each gets 5s): failures are logged, and Close
// always returns nil.
func (c *Conns[S]) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()

	var wg sync.WaitGroup
	for _, cn := range conns {
		wg.Go(func() { c.closeQuietly(cn) })
	}
	wg.Wait()
	c.bg.Wait()
	c.mu.Lock()
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
	c.mu.Unlock()
	return nil
}

// closeQuietly ends cn's session; a failure is logged, never returned.
func (c *Conns[S]) closeQuietly(cn *Conn[S]) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := c.driver.Close(ctx, cn.Session); err != nil {
		c.logger.Debug("closing an upstream session failed", slog.String("upstream", cn.Settings.Name), slog.Any("error", err))
	}
}

// goCloseLocked runs f in a goroutine Close waits for; once Conns is
// closed it runs f inline. c.mu must be held.
func (c *Conns[S]) goCloseLocked(f func()) {
	if c.closed {
		f()
		return
	}
	c.bg.Go(f)
}

// transport is an upstream transport: net/http's, or h1's in front of it.
type transport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// httpClientLocked builds the HTTP client for one upstream: the shared
// transport for its egress policy, the upstream's credential and byte
// limits, and no redirects (a redirect would carry the credential to
// another origin). c.mu must be held.
func (c *Conns[S]) httpClientLocked(s *Settings) *http.Client {
	base := c.transportLocked(s)
	ct := &credentialTransport{
		base: base, header: s.header, value: s.value, hopID: c.opts.hopID, hosts: s.hosts,
		maxRequest: s.MaxRequest, maxResponse: s.MaxResponse,
	}
	if s.oauth != nil {
		ts := oauthcc.NewSource(*s.oauth, base)
		ct.value = ""
		ct.dynamic = ts.Authorization
	}
	newCredentialTransport(ct)
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
//
// With WithHTTP1, plain http:// upstreams are reached over HTTP/1.1 on
// the calling goroutine (package h1: no connection goroutines to hand each
// call to and back); https, where ALPN may choose HTTP/2, and anything
// else h1 does not serve go to net/http's Transport, dialed the same way.
// c.mu must be held.
func (c *Conns[S]) transportLocked(s *Settings) transport {
	if t, ok := c.transports[s.egressKey]; ok {
		return t
	}
	inUse := map[string]bool{s.egressKey: true}
	for _, cn := range c.conns {
		inUse[cn.Settings.egressKey] = true
	}
	for k, t := range c.transports {
		if !inUse[k] {
			// Calls still running on it finish; its idle connections go.
			t.CloseIdleConnections()
			delete(c.transports, k)
		}
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, ControlContext: s.egress.DialControlContext}
	fallback := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	var t transport = fallback
	if c.opts.http1 {
		t = &h1.Transport{Dial: d.DialContext, Fallback: fallback, MaxIdlePerHost: 64, IdleTimeout: 90 * time.Second}
	}
	c.transports[s.egressKey] = t
	return t
}
