package syncclient

import (
	"time"

	jitter "github.com/portcullis-gw/portcullis/internal/backoff"
)

// backoff yields the waits between consecutive failed attempts (see
// backoff.Wait): the n-th, from 0, is uniform in [min, min(max, min·2ⁿ⁺¹)].
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := jitter.Wait(b.min, b.max, b.n)
	if b.n < 62 {
		b.n++
	}
	return d
}

func (b *backoff) reset() { b.n = 0 }
