package backoff_test

import (
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/backoff"
)

func TestWaitStaysInItsBand(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for n := range 70 {
		ceiling := hi
		if n < 5 {
			ceiling = min(hi, lo<<(n+1))
		}
		for range 200 {
			d := backoff.Wait(lo, hi, n)
			if d < lo || d > ceiling {
				t.Fatalf("n=%d: %s outside [%s, %s]", n, d, lo, ceiling)
			}
		}
	}
	if d := backoff.Wait(time.Second, time.Millisecond, 3); d != time.Second {
		t.Errorf("hi below lo: %s, want lo", d)
	}
}
