// Package backoff computes jittered exponential waits between attempts,
// for the data plane's long-running loops (the config stream, the audit
// upload). The jitter spreads data planes that lost the same node; the
// floor keeps a persistent failure from turning into a busy loop.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Wait is the wait after the n-th (from 0) consecutive failure: uniform in
// [lo, min(hi, lo·2ⁿ⁺¹)]. hi below lo counts as lo.
func Wait(lo, hi time.Duration, n int) time.Duration {
	hi = max(hi, lo)
	ceiling := lo
	for range min(max(n, 0)+1, 62) {
		if ceiling > hi/2 {
			ceiling = hi
			break
		}
		ceiling *= 2
	}
	ceiling = min(ceiling, hi)
	if ceiling <= lo {
		return lo
	}
	return lo + rand.N(ceiling-lo+1) //nolint:gosec // jitter, not a secret
}
