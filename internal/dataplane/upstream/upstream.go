// Package upstream is how the data plane reaches an upstream, whatever
// protocol it speaks: Resolver reads an upstream's settings from the
// serving configuration (Settings, with defaults applied), and Conns keeps
// one connection per upstream for a protocol — an HTTP client that
// attaches the upstream's own credential (never the caller's: the API has
// no way to pass one) and nothing else, sends it only to the hosts its
// secret is bound to, dials under the egress policy, bounds request and
// response sizes and follows no redirect; the upstream's resilience.Guard;
// and the protocol's own session, opened and closed by the protocol's
// Driver. A connection is made on first use and replaced when the
// upstream's settings change.
//
// Errors of this layer (an unusable configuration, a refused credential,
// a size limit, the egress policy, OAuth) become refusals safe for
// callers with Refusal; a protocol adds what its own errors mean.
package upstream

import (
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Resolver answers from the data plane's active configuration. It is
// implemented by the compiled snapshot and must be safe for concurrent use.
//
// Its answers are treated as immutable: Conns resolves an upstream's
// Settings once per Resolver and per *configv1.Upstream that Upstream
// returns, and reuses them for every call until either changes. A Resolver
// whose answers can change (a secret's value or hosts, the egress policy)
// must therefore return a new Upstream message for every upstream from
// then on, or be replaced by a new Resolver value. The compiled snapshot is
// immutable, and each configuration version is a new one.
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
	DefaultTimeout          = resilience.DefaultTimeout
	DefaultMaxRequestBytes  = 1 << 20
	DefaultMaxResponseBytes = 8 << 20
	DefaultMaxRetries       = 2
	DefaultBreakerFailures  = resilience.DefaultBreakerFailures
	DefaultBreakerOpen      = resilience.DefaultBreakerOpen
	DefaultMaxConcurrency   = resilience.DefaultMaxConcurrency
)

// Option configures Conns.
type Option func(*options)

type options struct {
	hopID string
	guard resilience.Options
	http1 bool
}

// WithHTTP1 reaches plain http:// upstreams with package upstream/h1,
// which writes each request and reads its answer on the calling goroutine
// (no connection goroutines to hand each call to and back); https and
// whatever h1 does not serve still go to net/http's Transport. Off by
// default: experimental (see docs/performance.md).
func WithHTTP1(on bool) Option { return func(o *options) { o.http1 = on } }

// WithHopID names this data plane in the Portcullis-Hop header of every
// upstream request (see package hop), after the chain the call came with.
func WithHopID(id string) Option { return func(o *options) { o.hopID = id } }

// WithObserver sends resilience events (retries, breaker changes,
// rejections) to obs, for metrics.
func WithObserver(obs resilience.Observer) Option {
	return func(o *options) { o.guard.Observer = obs }
}

// WithQueueWait sets how long a call waits for a concurrency slot of a
// busy upstream before it is refused (default resilience.DefaultQueueWait).
func WithQueueWait(d time.Duration) Option { return func(o *options) { o.guard.QueueWait = d } }

// WithBackoff sets the retry backoff: retry n waits a random time between
// half and all of min(ceiling, base·2ⁿ). Defaults:
// resilience.DefaultBackoffBase, resilience.DefaultBackoffMax.
func WithBackoff(base, ceiling time.Duration) Option {
	return func(o *options) { o.guard.BackoffBase, o.guard.BackoffMax = base, ceiling }
}
