package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// DefaultTimeout bounds a call whose Call.Timeout is unset.
const DefaultTimeout = 30 * time.Second

// Outcome is what a failed attempt tells the circuit breaker.
type Outcome int

// Outcomes.
const (
	// Success: the upstream answered, even if with an error of its own
	// (a JSON-RPC error, a tool's isError).
	Success Outcome = iota
	// Failure: it did not answer usefully (a transport failure, a
	// timeout, a 5xx, a broken message). Consecutive failures open the
	// breaker.
	Failure
	// Excluded: the outcome says nothing about the upstream's health (the
	// gateway's own configuration or limits refused the call; a 4xx such
	// as 429).
	Excluded
)

// Classifier is a protocol's reading of its attempts' errors. Its methods
// are called only with non-nil errors; they must be safe for concurrent
// use and cheap.
type Classifier interface {
	// Outcome classifies a failed attempt for the circuit breaker.
	Outcome(err error) Outcome
	// Retryable reports whether an attempt that failed with err may be
	// sent again, should the operation allow it: the request was not
	// delivered, the connection failed, the upstream answered with a
	// transient failure (5xx, 429) or the attempt timed out. Never after
	// the upstream answered.
	Retryable(err error) bool
}

// Call describes one operation for Do.
type Call struct {
	// Op names the operation in logs (a method, a tool).
	Op string
	// Timeout bounds the whole call: the wait for a slot, every attempt
	// and every backoff (0: DefaultTimeout).
	Timeout time.Duration
	// Repeatable says the operation may be sent again after a failure
	// that may have reached the upstream: the caller's decision (for MCP,
	// the operator classified the tool read-only or idempotent). Only a
	// repeatable operation is retried.
	Repeatable bool
	// MaxRetries bounds the retries of a repeatable operation.
	MaxRetries int
}

// Do runs c under g: attempt is called once, and again for each retry,
// with a context bounded by c.Timeout.
//
// While the breaker is open the call is refused at once, before it waits
// for one of the upstream's concurrency slots; with every slot taken it
// waits the queue wait, then is refused. A failed attempt is retried only
// when c is repeatable, cl says its error is retryable, the caller is
// still there, the upstream's retry budget has a retry left and the
// backoff fits in the timeout; the breaker is asked before every attempt.
//
// The error is a *pipeline.Refusal when the guard refused the call (its
// message safe for callers), else the last attempt's error as is, or the
// context's error (wrapped) when the wait for a slot ran out: the protocol
// turns those into what its caller may see.
func Do[T any](ctx context.Context, g *Guard, c Call, cl Classifier, attempt func(context.Context) (T, error)) (T, error) {
	var zero T
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if g.open() {
		// Fail fast, without waiting for a slot.
		done, ref := g.allow()
		if ref != nil {
			g.log.DebugContext(ctx, "upstream call refused by its circuit breaker", slog.String("op", c.Op))
			return zero, ref
		}
		// It turned half-open meanwhile: give the trial back; the
		// attempt below asks again.
		g.done(done, errBreakerExcluded)
	}
	if !g.acquireSlot(callCtx) {
		if err := callCtx.Err(); err != nil {
			return zero, fmt.Errorf("wait for a concurrency slot: %w", err)
		}
		g.obs.UpstreamRejected(g.name, RejectedConcurrencyLimit)
		g.log.WarnContext(ctx, "upstream call refused: concurrency limit reached",
			slog.String("op", c.Op), slog.Int("max_concurrency", cap(g.slots)))
		return zero, g.limitRefusal()
	}
	defer g.releaseSlot()

	g.budget.earn()
	retries := 0
	if c.Repeatable {
		retries = c.MaxRetries
	}
	for n := 0; ; n++ {
		done, ref := g.allow()
		if ref != nil {
			g.log.DebugContext(ctx, "upstream call refused by its circuit breaker", slog.String("op", c.Op), slog.Int("attempt", n+1))
			return zero, ref
		}
		res, err := attempt(callCtx)
		g.done(done, outcome(ctx, cl, err))
		if err == nil {
			return res, nil
		}
		if n >= retries || !cl.Retryable(err) || ctx.Err() != nil {
			return zero, err
		}
		wait := backoff(g.backoffBase, g.backoffMax, n)
		if dl, ok := callCtx.Deadline(); ok && time.Until(dl) <= wait {
			return zero, err
		}
		if !g.budget.spend() {
			g.obs.UpstreamRejected(g.name, RejectedRetryBudget)
			g.log.DebugContext(ctx, "upstream retry budget exhausted; not retrying", slog.String("op", c.Op))
			return zero, err
		}
		g.log.DebugContext(ctx, "retrying upstream call", slog.String("op", c.Op),
			slog.Int("retry", n+1), slog.Duration("after", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-callCtx.Done():
			t.Stop()
			return zero, err
		}
		g.obs.UpstreamRetry(g.name)
	}
}

// outcome is what an attempt's result tells gobreaker: nil when the
// upstream answered, errBreakerFailure when it did not answer usefully,
// errBreakerExcluded when the result says nothing about its health (the
// caller left, or cl says so).
func outcome(caller context.Context, cl Classifier, err error) error {
	if err == nil {
		return nil
	}
	o := cl.Outcome(err)
	switch {
	case o == Success:
		return nil
	case o == Excluded, errors.Is(caller.Err(), context.Canceled):
		return errBreakerExcluded
	}
	return errBreakerFailure
}

// backoff is the wait before retry n (0-based), with jitter.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	d := ceiling
	if n < 30 {
		d = min(ceiling, base<<n)
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1) //nolint:gosec // jitter, not security
}
