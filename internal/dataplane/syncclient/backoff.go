package syncclient

import (
	"math/rand/v2"
	"time"
)

// backoff yields the waits between consecutive failed attempts: the n-th
// (from 0) is uniform in [min, min(max, min·2ⁿ⁺¹)]. The jitter spreads data
// planes that lost the same node; the floor keeps a persistent failure
// from turning into a busy loop.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	ceiling := b.min
	for range b.n + 1 {
		if ceiling > b.max/2 {
			ceiling = b.max
			break
		}
		ceiling *= 2
	}
	ceiling = min(ceiling, b.max)
	if ceiling < b.max {
		b.n++ // beyond, every wait has the same band
	}
	if ceiling <= b.min {
		return b.min
	}
	return b.min + rand.N(ceiling-b.min+1) //nolint:gosec // jitter, not a secret
}

func (b *backoff) reset() { b.n = 0 }
