package harness

import (
	"testing"
	"time"
)

// Await polls cond until it returns nil, backing off from 20ms to 250ms
// between tries, and fails the test with cond's last error when timeout
// passes first. This is how tests wait for the cluster: on a condition with
// a deadline, never on a fixed sleep.
func Await(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("%s: still not true after %s: %v", what, timeout, err)
	}
}

// Poll is Await without a test: it returns nil once cond does, or cond's
// last error at the deadline.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		<-time.After(backoff) // the poll interval
	}
}
