package stages

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestSetDuration: a record's durations are what durationpb.New makes.
func TestSetDuration(t *testing.T) {
	for _, d := range []time.Duration{0, 1, -1, 999_999_999, time.Second, -1500 * time.Millisecond, 3*time.Hour + 7, math.MaxInt64, math.MinInt64} {
		var got durationpb.Duration
		setDuration(&got, d)
		if want := durationpb.New(d); !proto.Equal(&got, want) {
			t.Errorf("setDuration(%v) = %v, want %v", d, &got, want)
		}
	}
}
