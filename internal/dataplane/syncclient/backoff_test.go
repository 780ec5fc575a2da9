package syncclient_test

import (
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
)

func TestBackoffBounds(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name     string
		min, max time.Duration
		ceilings []time.Duration // upper bound of each successive wait
	}{
		{name: "defaults", min: 200 * ms, max: 10 * time.Second, ceilings: []time.Duration{
			400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second, 10 * time.Second,
		}},
		{name: "min equals max", min: time.Second, max: time.Second, ceilings: []time.Duration{time.Second, time.Second}},
		{name: "many failures", min: ms, max: 50 * ms, ceilings: append([]time.Duration{2 * ms, 4 * ms, 8 * ms, 16 * ms, 32 * ms}, repeat(50*ms, 80)...)},
		{name: "long waits saturate", min: time.Hour, max: 1 << 62, ceilings: saturating(time.Hour, 1<<62, 80)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Many draws: every wait lies in its band, and the upper half of
			// each band is reached (a miss has probability 2⁻²⁰⁰).
			highest := make([]time.Duration, len(tt.ceilings))
			for range 200 {
				for i, d := range syncclient.Backoffs(tt.min, tt.max, len(tt.ceilings)) {
					if d < tt.min || d > tt.ceilings[i] {
						t.Fatalf("wait %d = %s, want within [%s, %s]", i, d, tt.min, tt.ceilings[i])
					}
					highest[i] = max(highest[i], d)
				}
			}
			for i, h := range highest {
				if mid := tt.min + (tt.ceilings[i]-tt.min)/2; h < mid {
					t.Fatalf("wait %d never exceeded %s (highest %s): no jitter over the band", i, mid, h)
				}
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// saturating lists n doubling ceilings from 2·lo, capped at hi, computed
// in floating point so the expectation cannot overflow the way a buggy
// implementation would.
func saturating(lo, hi time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	c := float64(lo)
	for i := range out {
		c *= 2
		out[i] = hi
		if c < float64(hi) {
			out[i] = time.Duration(c)
		}
	}
	return out
}
