package syncclient

import "time"

// StartAt makes Run try URL i first instead of a random one.
func StartAt(c *Client, i int) { c.start = i }

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
