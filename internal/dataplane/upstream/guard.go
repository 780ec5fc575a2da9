package upstream

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
// into the pool).
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

// Outcomes reported to the breaker. A success is the upstream answering
// (a result, a tool's isError, a JSON-RPC error); a failure is it not
// answering usefully (transport, timeout, 5xx, a broken stream or
// message); excluded outcomes say nothing about its health (the caller
// left, the gateway's own limits or configuration refused it).
var (
	errBreakerFailure  = errors.New("upstream failure")
	errBreakerExcluded = errors.New("outcome excluded from the breaker")
)

// guard is the resilience state of one pool entry: its circuit breaker,
// retry budget and concurrency slots. It lives as long as the entry, so it
// survives configuration swaps that leave the upstream's settings alone.
// Safe for concurrent use.
type guard struct {
	name        string
	failures    int // threshold, for messages
	breakerOpen time.Duration
	breaker     *gobreaker.TwoStepCircuitBreaker[struct{}]
	budget      *retryBudget
	slots       chan struct{}
	obs         Observer

	consecutive atomic.Int64 // consecutive failures, for messages
	openedAt    atomic.Int64 // unix nanoseconds of the last opening
}

func newGuard(s settings, obs Observer, log *slog.Logger) *guard {
	g := &guard{
		name: s.name, failures: s.breakerFailures, breakerOpen: s.breakerOpen,
		budget: newRetryBudget(), slots: make(chan struct{}, s.maxConcurrency), obs: obs,
	}
	log = log.With(slog.String("upstream", s.name))
	g.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        s.name,
		MaxRequests: 1, // one trial call when half-open
		Timeout:     s.breakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(s.breakerFailures) },
		IsExcluded:  func(err error) bool { return errors.Is(err, errBreakerExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock, once per change: this is the
			// one warning per state change.
			obs.UpstreamBreaker(s.name, to.String())
			switch to {
			case gobreaker.StateOpen:
				g.openedAt.Store(time.Now().UnixNano())
				log.Warn("upstream circuit breaker opened: its calls are refused and its tools left out of tools/list",
					slog.Int64("consecutive_failures", g.consecutive.Load()), slog.Duration("for", s.breakerOpen))
			case gobreaker.StateHalfOpen:
				log.Info("upstream circuit breaker half-open: the next call tries the upstream again")
			case gobreaker.StateClosed:
				log.Warn("upstream recovered: circuit breaker closed; its tools are listed again", slog.String("from", from.String()))
			}
		},
	})
	return g
}

// allow asks the breaker for one attempt. It returns the function that
// reports the attempt's outcome, or a Refusal when the breaker is open
// (or half-open with its trial call in flight).
func (g *guard) allow() (func(outcome error), *pipeline.Refusal) {
	done, err := g.breaker.Allow()
	if err != nil {
		g.obs.UpstreamRejected(g.name, RejectedBreakerOpen)
		return nil, g.openRefusal(err)
	}
	return func(outcome error) {
		switch {
		case outcome == nil:
			g.consecutive.Store(0)
		case errors.Is(outcome, errBreakerFailure):
			g.consecutive.Add(1)
		}
		done(outcome)
	}, nil
}

// open reports whether the breaker refuses calls now (checked before a
// call waits for a concurrency slot).
func (g *guard) open() bool { return g.breaker.State() == gobreaker.StateOpen }

// healthy is Pool.Healthy for this upstream.
func (g *guard) healthy() (bool, string) {
	if g.breaker.State() != gobreaker.StateOpen {
		return true, ""
	}
	return false, g.openRefusal(gobreaker.ErrOpenState).Message
}

// openRefusal says why the breaker refuses a call.
func (g *guard) openRefusal(err error) *pipeline.Refusal {
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
// most wait (and never past ctx). It returns false when none freed up in
// time; ctx.Err() then tells a timeout or cancellation from a full queue.
func (g *guard) acquireSlot(ctx context.Context, wait time.Duration) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
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

func (g *guard) releaseSlot() { <-g.slots }

// limitRefusal says why a call found no free slot.
func (g *guard) limitRefusal() *pipeline.Refusal {
	return pipeline.Refuse(pipeline.ReasonUpstreamUnavailable,
		"upstream %q already has %d calls in flight from this data plane (its max_concurrency); try again shortly",
		g.name, cap(g.slots))
}
