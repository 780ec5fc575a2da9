// Package resilience isolates each upstream of the data plane, the same
// way for every protocol: a Guard per upstream holds its circuit breaker
// (sony/gobreaker), its retry budget and its concurrency slots, and Do runs
// one operation under it (fail fast while the breaker is open, wait briefly
// for a slot, bound the whole call by a timeout, retry with jittered
// exponential backoff only what may be repeated).
//
// The package knows no protocol: a protocol tells Do what its errors mean
// with a Classifier. Refusals it makes itself (an open breaker, a full
// concurrency limit) are pipeline.Refusals with messages safe for callers.
package resilience

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Observer receives an upstream's resilience events, for metrics. It must
// be safe for concurrent use and fast: it runs on the call path, and
// UpstreamBreaker runs under the breaker's lock (it must not call back
// into the guard).
type Observer interface {
	// UpstreamRetry counts one retry sent to upstream.
	UpstreamRetry(upstream string)
	// UpstreamBreaker counts a circuit-breaker state change; state is
	// "closed", "half-open" or "open".
	UpstreamBreaker(upstream, state string)
	// UpstreamRejected counts a call refused without reaching the
	// upstream, or a retry not sent; why is "breaker_open",
	// "concurrency_limit" or "retry_budget".
	UpstreamRejected(upstream, why string)
}

// Values of Observer.UpstreamRejected's why.
const (
	RejectedBreakerOpen      = "breaker_open"
	RejectedConcurrencyLimit = "concurrency_limit"
	RejectedRetryBudget      = "retry_budget"
)

type nopObserver struct{}

func (nopObserver) UpstreamRetry(string)            {}
func (nopObserver) UpstreamBreaker(string, string)  {}
func (nopObserver) UpstreamRejected(string, string) {}

// Defaults for unset Limits and Options fields.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerOpen     = 10 * time.Second
	DefaultMaxConcurrency  = 64
	// DefaultQueueWait is how long a call waits for a concurrency slot
	// before it is refused.
	DefaultQueueWait = 500 * time.Millisecond
	// Retry backoff: the n-th retry waits a random time between half and
	// all of min(DefaultBackoffMax, DefaultBackoffBase·2ⁿ).
	DefaultBackoffBase = 50 * time.Millisecond
	DefaultBackoffMax  = 2 * time.Second
)

// Limits are an upstream's settings that shape its guard; a change of any
// of them calls for a new guard (and so resets an open breaker). Zero
// fields take the defaults.
type Limits struct {
	// BreakerFailures is how many consecutive failures open the breaker.
	BreakerFailures int
	// BreakerOpen is how long an open breaker refuses calls before it
	// lets one trial call through.
	BreakerOpen time.Duration
	// MaxConcurrency bounds the calls in flight at once.
	MaxConcurrency int
}

// Options are the data plane's own settings, the same for every guard.
// Zero fields take the defaults.
type Options struct {
	// Observer gets the guard's events (nil: none).
	Observer Observer
	// Logger gets one line per breaker state change, and the refusals and
	// retries of calls (nil: discarded).
	Logger *slog.Logger
	// QueueWait is how long a call waits for a free concurrency slot.
	QueueWait time.Duration
	// BackoffBase and BackoffMax shape the retry backoff: retry n waits a
	// random time between half and all of min(BackoffMax, BackoffBase·2ⁿ).
	BackoffBase, BackoffMax time.Duration
}

// Retry budget: every call's first attempt earns budgetRatio of a retry,
// every retry spends one, and at most budgetCap are saved up. Retries thus
// add at most about 20% to an upstream's traffic once a short burst is
// spent, so a failing upstream is not hammered by its own callers.
const (
	budgetRatio = 0.2
	budgetCap   = 10
)

// retryBudget is a token bucket of retries. Safe for concurrent use.
type retryBudget struct {
	mu     sync.Mutex
	tokens float64
}

func newRetryBudget() *retryBudget { return &retryBudget{tokens: budgetCap} }

// earn credits one first attempt.
func (b *retryBudget) earn() {
	b.mu.Lock()
	b.tokens = min(budgetCap, b.tokens+budgetRatio)
	b.mu.Unlock()
}

// spend takes one retry; false when the budget is exhausted.
func (b *retryBudget) spend() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// What an attempt's outcome tells gobreaker: a failure counts, an
// excluded outcome is ignored (nil is a success).
var (
	errBreakerFailure  = errors.New("upstream failure")
	errBreakerExcluded = errors.New("outcome excluded from the breaker")
)

// Guard is the resilience state of one upstream under one set of Limits:
// its circuit breaker, retry budget and concurrency slots. Whoever keeps
// it (package upstream's connection cache) keeps it as long as the
// upstream's Limits stay the same, across configuration swaps. Safe for
// concurrent use.
type Guard struct {
	name        string
	failures    int // threshold, for messages
	breakerOpen time.Duration
	breaker     *gobreaker.TwoStepCircuitBreaker[struct{}]
	budget      *retryBudget
	slots       chan struct{}
	obs         Observer
	log         *slog.Logger
	queueWait   time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration

	consecutive atomic.Int64 // consecutive failures, for messages
	openedAt    atomic.Int64 // unix nanoseconds of the last opening
}

// NewGuard returns the guard of the upstream called name.
func NewGuard(name string, l Limits, o Options) *Guard {
	if l.BreakerFailures <= 0 {
		l.BreakerFailures = DefaultBreakerFailures
	}
	if l.BreakerOpen <= 0 {
		l.BreakerOpen = DefaultBreakerOpen
	}
	if l.MaxConcurrency <= 0 {
		l.MaxConcurrency = DefaultMaxConcurrency
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.QueueWait <= 0 {
		o.QueueWait = DefaultQueueWait
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	log := o.Logger.With(slog.String("upstream", name))
	g := &Guard{
		name: name, failures: l.BreakerFailures, breakerOpen: l.BreakerOpen,
		budget: newRetryBudget(), slots: make(chan struct{}, l.MaxConcurrency), obs: o.Observer, log: log,
		queueWait: o.QueueWait, backoffBase: o.BackoffBase, backoffMax: o.BackoffMax,
	}
	obs := o.Observer
	g.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1, // one trial call when half-open
		Timeout:     l.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(l.BreakerFailures) },
		IsExcluded:  func(err error) bool { return errors.Is(err, errBreakerExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock, once per change: this is the
			// one warning per state change.
			obs.UpstreamBreaker(name, to.String())
			switch to {
			case gobreaker.StateOpen:
				g.openedAt.Store(time.Now().UnixNano())
				log.Warn("upstream circuit breaker opened: its calls are refused and its tools left out of tools/list",
					slog.Int64("consecutive_failures", g.consecutive.Load()), slog.Duration("for", l.BreakerOpen))
			case gobreaker.StateHalfOpen:
				log.Info("upstream circuit breaker half-open: the next call tries the upstream again")
			case gobreaker.StateClosed:
				log.Warn("upstream recovered: circuit breaker closed; its tools are listed again", slog.String("from", from.String()))
			}
		},
	})
	return g
}

// allow asks the breaker for one attempt. It returns the breaker's
// function that takes the attempt's outcome, to be given to g.done, or a
// Refusal when the breaker is open (or half-open with its trial call in
// flight).
func (g *Guard) allow() (func(outcome error), *pipeline.Refusal) {
	done, err := g.breaker.Allow()
	if err != nil {
		g.obs.UpstreamRejected(g.name, RejectedBreakerOpen)
		return nil, g.openRefusal(err)
	}
	return done, nil
}

// done reports an attempt's outcome: to the count of consecutive
// failures, then to the breaker's function allow returned. (It is not
// a closure allow returns so that an attempt allocates none.)
func (g *Guard) done(breakerDone func(outcome error), outcome error) {
	switch {
	case outcome == nil:
		g.consecutive.Store(0)
	case errors.Is(outcome, errBreakerFailure):
		g.consecutive.Add(1)
	}
	breakerDone(outcome)
}

// open reports whether the breaker refuses calls now (checked before a
// call waits for a concurrency slot).
func (g *Guard) open() bool { return g.breaker.State() == gobreaker.StateOpen }

// Healthy reports whether calls may currently be sent: false, with a
// reason safe for callers, while the breaker is open. A protocol uses it
// to leave a failing upstream's tools out of its lists.
func (g *Guard) Healthy() (ok bool, why string) {
	if g.breaker.State() != gobreaker.StateOpen {
		return true, ""
	}
	return false, g.openRefusal(gobreaker.ErrOpenState).Message
}

// openRefusal says why the breaker refuses a call.
func (g *Guard) openRefusal(err error) *pipeline.Refusal {
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable,
			"upstream %q is recovering from failures and a trial call is testing it; try again shortly", g.name)
	}
	left := time.Until(time.Unix(0, g.openedAt.Load()).Add(g.breakerOpen))
	left = max(time.Second, left.Round(time.Second))
	n := max(g.consecutive.Load(), int64(g.failures))
	return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable,
		"upstream %q is failing (%d consecutive failures); calls are refused for up to %s; the gateway retries it then",
		g.name, n, left)
}

// acquireSlot takes one of the upstream's concurrency slots, waiting at
// most the queue wait (and never past ctx). It returns false when none
// freed up in time; ctx.Err() then tells a timeout or cancellation from a
// full queue.
func (g *Guard) acquireSlot(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(g.queueWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (g *Guard) releaseSlot() { <-g.slots }

// limitRefusal says why a call found no free slot.
func (g *Guard) limitRefusal() *pipeline.Refusal {
	return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable,
		"upstream %q already has %d calls in flight from this data plane (its max_concurrency); try again shortly",
		g.name, cap(g.slots))
}
