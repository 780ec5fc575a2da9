package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The fake protocol's errors, one per way a classifier can read one.
var (
	errTransient = errors.New("connection reset")     // a failure worth retrying
	errBroken    = errors.New("malformed answer")     // a failure not worth retrying
	errAnswered  = errors.New("the upstream said no") // an answer: a success for the breaker
	errOwnLimit  = errors.New("the gateway's limit")  // says nothing about the upstream
)

// classifier is the fake protocol's resilience.Classifier.
type classifier struct{}

func (classifier) Outcome(err error) resilience.Outcome {
	switch {
	case errors.Is(err, errAnswered):
		return resilience.Success
	case errors.Is(err, errOwnLimit):
		return resilience.Excluded
	}
	return resilience.Failure
}

func (classifier) Retryable(err error) bool { return errors.Is(err, errTransient) }

// recorder is a resilience.Observer that counts events.
type recorder struct {
	mu     sync.Mutex
	events map[string]int
}

var _ resilience.Observer = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{events: map[string]int{}} }

func (r *recorder) add(k string) {
	r.mu.Lock()
	r.events[k]++
	r.mu.Unlock()
}

func (r *recorder) count(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[k]
}

func (r *recorder) UpstreamRetry(u string)          { r.add("retry " + u) }
func (r *recorder) UpstreamBreaker(u, state string) { r.add("breaker " + u + " " + state) }
func (r *recorder) UpstreamRejected(u, why string)  { r.add("rejected " + u + " " + why) }

func newGuard(rec *recorder, l resilience.Limits) *resilience.Guard {
	return resilience.NewGuard("demo", l, resilience.Options{
		Observer: rec, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
	})
}

// script is an attempt that fails with the given errors in turn, then
// succeeds; it counts the attempts.
type script struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (s *script) attempt(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return "", err
	}
	return "ok", nil
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func failing(err error, n int) *script {
	s := &script{}
	for range n {
		s.errs = append(s.errs, err)
	}
	return s
}

// always is an attempt that always fails with err.
func always(err error) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return "", err }
}

// wantRefusal asserts err is an upstream_unavailable Refusal and returns
// its message.
func wantRefusal(t *testing.T, err error) string {
	t.Helper()
	var ref *pipeline.Refusal
	if !errors.As(err, &ref) || ref.Reason != pipeline.ReasonUpstreamUnavailable {
		t.Fatalf("err = %v, want an upstream_unavailable refusal", err)
	}
	return ref.Message
}

// TestRetries: a failed attempt is sent again only when the caller says
// the operation may be repeated and the classifier says the error is
// retryable, at most MaxRetries times.
func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		repeatable bool
		maxRetries int
		err        error
		failures   int
		wantOK     bool
		wantSent   int
	}{
		{name: "repeatable, transient", repeatable: true, maxRetries: 2, err: errTransient, failures: 2, wantOK: true, wantSent: 3},
		{name: "repeatable, transient beyond max_retries", repeatable: true, maxRetries: 2, err: errTransient, failures: 3, wantSent: 3},
		{name: "repeatable, retries off", repeatable: true, maxRetries: 0, err: errTransient, failures: 1, wantSent: 1},
		{name: "not repeatable", maxRetries: 2, err: errTransient, failures: 1, wantSent: 1},
		{name: "repeatable, not retryable", repeatable: true, maxRetries: 2, err: errBroken, failures: 1, wantSent: 1},
		{name: "repeatable, an answer", repeatable: true, maxRetries: 2, err: errAnswered, failures: 1, wantSent: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			g := newGuard(rec, resilience.Limits{BreakerFailures: 100})
			s := failing(tc.err, tc.failures)
			got, err := resilience.Do(t.Context(), g, resilience.Call{Op: "op", Timeout: 10 * time.Second, Repeatable: tc.repeatable, MaxRetries: tc.maxRetries},
				classifier{}, s.attempt)
			if tc.wantOK && (err != nil || got != "ok") {
				t.Fatalf("Do = %q, %v; want ok after retries", got, err)
			}
			if !tc.wantOK && !errors.Is(err, tc.err) {
				t.Fatalf("Do error %v, want the last attempt's %v", err, tc.err)
			}
			if s.count() != tc.wantSent {
				t.Errorf("%d attempts, want %d", s.count(), tc.wantSent)
			}
			if n := rec.count("retry demo"); n != tc.wantSent-1 {
				t.Errorf("observer saw %d retries, want %d", n, tc.wantSent-1)
			}
		})
	}
}

// TestRetryBudget: against an upstream that always fails, retries stop
// once the budget (a burst of 10, then one per 5 calls) is spent.
func TestRetryBudget(t *testing.T) {
	rec := newRecorder()
	g := newGuard(rec, resilience.Limits{BreakerFailures: 1000})
	var sent int
	attempt := func(context.Context) (string, error) { sent++; return "", errTransient }
	const calls = 30
	for range calls {
		if _, err := resilience.Do(t.Context(), g, resilience.Call{Timeout: 10 * time.Second, Repeatable: true, MaxRetries: 2}, classifier{}, attempt); !errors.Is(err, errTransient) {
			t.Fatalf("err = %v", err)
		}
	}
	retries := sent - calls
	// Without a budget: 2 retries per call, 60. With it: the burst of 10
	// plus 0.2 per call, at most 16.
	if retries < 10 || retries > 10+calls/5 {
		t.Fatalf("%d calls made %d retries, want between 10 and %d", calls, retries, 10+calls/5)
	}
	if rec.count("retry demo") != retries {
		t.Errorf("observer saw %d retries, attempts show %d", rec.count("retry demo"), retries)
	}
	if rec.count("rejected demo "+resilience.RejectedRetryBudget) == 0 {
		t.Error("observer saw no retry refused for the budget")
	}
}

// TestBreaker: consecutive failures open the breaker; calls then fail at
// once without an attempt, and Healthy says why; after BreakerOpen one
// trial call goes through: a failure opens the breaker again, a success
// closes it.
func TestBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		const open = 10 * time.Second
		g := newGuard(rec, resilience.Limits{BreakerFailures: 3, BreakerOpen: open})
		call := resilience.Call{Op: "op", Timeout: time.Minute}
		for range 3 {
			if _, err := resilience.Do(t.Context(), g, call, classifier{}, always(errBroken)); !errors.Is(err, errBroken) {
				t.Fatalf("err = %v", err)
			}
		}
		ok, why := g.Healthy()
		if ok || !strings.Contains(why, "3 consecutive failures") {
			t.Fatalf("Healthy after 3 failures = %v %q, want unhealthy naming 3 consecutive failures", ok, why)
		}

		// Open: refused at once, no attempt.
		s := &script{}
		start := time.Now()
		_, err := resilience.Do(t.Context(), g, call, classifier{}, s.attempt)
		msg := wantRefusal(t, err)
		if !strings.Contains(msg, `upstream "demo" is failing (3 consecutive failures); calls are refused for up to 10s`) {
			t.Errorf("open-breaker message %q", msg)
		}
		if time.Since(start) != 0 || s.count() != 0 {
			t.Fatalf("refusal after %s and %d attempts; want at once, none", time.Since(start), s.count())
		}
		if rec.count("rejected demo "+resilience.RejectedBreakerOpen) != 1 {
			t.Errorf("observer saw %d breaker rejections, want 1", rec.count("rejected demo "+resilience.RejectedBreakerOpen))
		}

		// Half-open: one trial call; it fails, so the breaker opens again.
		time.Sleep(open + time.Millisecond)
		if ok, why := g.Healthy(); !ok {
			t.Fatalf("after %s the breaker still refuses: %s", open, why)
		}
		if _, err := resilience.Do(t.Context(), g, call, classifier{}, always(errBroken)); !errors.Is(err, errBroken) {
			t.Fatalf("trial call: %v", err)
		}
		if ok, _ := g.Healthy(); ok {
			t.Fatal("a failed trial call left the breaker closed")
		}

		// The upstream recovers: the next trial closes the breaker.
		time.Sleep(open + time.Millisecond)
		if got, err := resilience.Do(t.Context(), g, call, classifier{}, (&script{}).attempt); err != nil || got != "ok" {
			t.Fatalf("trial after recovery: %q %v", got, err)
		}
		if ok, why := g.Healthy(); !ok {
			t.Fatalf("after recovery Healthy = false: %s", why)
		}
		for _, state := range []string{"open", "half-open", "closed"} {
			if rec.count("breaker demo "+state) == 0 {
				t.Errorf("observer saw no change to %s", state)
			}
		}
	})
}

// TestBreakerCountsOnlyFailures: answers, the gateway's own refusals and
// a caller who left never open the breaker.
func TestBreakerCountsOnlyFailures(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		callerC bool // the caller cancels before the attempt returns
	}{
		{name: "answers", err: errAnswered},
		{name: "the gateway's own limits", err: errOwnLimit},
		{name: "the caller left", err: errBroken, callerC: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(newRecorder(), resilience.Limits{BreakerFailures: 2})
			for range 5 {
				ctx, cancel := context.WithCancel(t.Context())
				attempt := func(context.Context) (string, error) {
					if tc.callerC {
						cancel()
					}
					return "", tc.err
				}
				_, err := resilience.Do(ctx, g, resilience.Call{Timeout: time.Minute}, classifier{}, attempt)
				cancel()
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			}
			if ok, why := g.Healthy(); !ok {
				t.Fatalf("the breaker opened: %s", why)
			}
		})
	}
}

// TestConcurrencyLimit: with MaxConcurrency 2 and both slots held, a
// third call waits the queue wait and is refused without an attempt;
// once a slot frees up, calls go through again. A refusal for the limit
// leaves the breaker shut.
func TestConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		const queueWait = 200 * time.Millisecond
		g := resilience.NewGuard("demo", resilience.Limits{MaxConcurrency: 2, BreakerFailures: 1},
			resilience.Options{Observer: rec, QueueWait: queueWait})
		call := resilience.Call{Op: "op", Timeout: time.Minute}
		release := make(chan struct{})
		held := func(context.Context) (string, error) { <-release; return "ok", nil }
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if _, err := resilience.Do(t.Context(), g, call, classifier{}, held); err != nil {
					t.Errorf("held call: %v", err)
				}
			})
		}
		synctest.Wait() // both hold a slot

		s := &script{}
		start := time.Now()
		_, err := resilience.Do(t.Context(), g, call, classifier{}, s.attempt)
		if msg := wantRefusal(t, err); !strings.Contains(msg, "already has 2 calls in flight") {
			t.Errorf("message %q does not name the limit", msg)
		}
		if waited := time.Since(start); waited != queueWait {
			t.Errorf("refused after %s, want the %s queue wait", waited, queueWait)
		}
		if s.count() != 0 {
			t.Error("the refused call was attempted")
		}
		if rec.count("rejected demo "+resilience.RejectedConcurrencyLimit) != 1 {
			t.Errorf("observer saw %d concurrency rejections, want 1", rec.count("rejected demo "+resilience.RejectedConcurrencyLimit))
		}
		close(release)
		wg.Wait()
		if _, err := resilience.Do(t.Context(), g, call, classifier{}, s.attempt); err != nil {
			t.Fatalf("call after the slots freed: %v", err)
		}
		if ok, why := g.Healthy(); !ok {
			t.Fatalf("Healthy = false: %s", why)
		}
	})
}

// TestTimeoutBoundsTheWholeCall: attempts run under the call's timeout; a
// retry whose backoff would not fit is not sent; a call that runs out of
// time waiting for a slot gets the context's error, not a refusal.
func TestTimeoutBoundsTheWholeCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 300 * time.Millisecond
		g := resilience.NewGuard("demo", resilience.Limits{MaxConcurrency: 1, BreakerFailures: 100},
			resilience.Options{QueueWait: time.Hour, BackoffBase: time.Second, BackoffMax: time.Second})
		call := resilience.Call{Op: "op", Timeout: timeout, Repeatable: true, MaxRetries: 5}

		// An attempt that waits for its context ends with the timeout.
		start := time.Now()
		_, err := resilience.Do(t.Context(), g, call, classifier{}, func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", fmt.Errorf("%w: %w", errTransient, ctx.Err())
		})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != timeout {
			t.Fatalf("after %s: %v; want the deadline after %s", time.Since(start), err, timeout)
		}

		// A retryable failure whose backoff (≥ 0.5s) exceeds what is left
		// of the timeout is not retried.
		s := failing(errTransient, 5)
		if _, err := resilience.Do(t.Context(), g, call, classifier{}, s.attempt); !errors.Is(err, errTransient) || s.count() != 1 {
			t.Fatalf("err %v after %d attempts; want errTransient after 1", err, s.count())
		}

		// Every slot held longer than the timeout: the wait ends with it.
		release := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = resilience.Do(t.Context(), g, resilience.Call{Timeout: time.Hour}, classifier{},
				func(context.Context) (string, error) { <-release; return "", nil })
		}()
		synctest.Wait()
		_, err = resilience.Do(t.Context(), g, call, classifier{}, (&script{}).attempt)
		var ref *pipeline.Refusal
		if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ref) {
			t.Fatalf("err = %v, want the deadline while waiting for a slot", err)
		}
		close(release)
		<-done
	})
}
