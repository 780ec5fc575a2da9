package syncclient

import "time"

// StartAt makes Run try URL i first instead of a random one.
func StartAt(c *Client, i int) { c.start = i }

// OnAttempt makes Run call fn from its goroutine after every attempt,
// with the error that ended it. Set it before Run.
func OnAttempt(c *Client, fn func(url string, err error)) { c.onAttempt = fn }

// PeekVersion exposes peekVersion.
var PeekVersion = peekVersion

// Reason exposes reason.
var Reason = reason

// ErrSilent exposes errSilent.
var ErrSilent = errSilent

// Backoffs returns the first n waits of a fresh backoff.
func Backoffs(lo, hi time.Duration, n int) []time.Duration {
	b := backoff{min: lo, max: hi}
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = b.next()
	}
	return out
}
