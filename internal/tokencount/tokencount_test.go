package tokencount_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/tokencount"
)

func TestCount(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		min, max int64
	}{
		{"empty", "", 0, 0},
		{"one word", "hello", 1, 1},
		{"a sentence", "The quick brown fox jumps over the lazy dog.", 9, 11},
		// Past the sample, the count is extrapolated from it.
		{"long text", strings.Repeat("The quick brown fox jumps over the lazy dog. ", 5000), 45_000, 55_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tokencount.Count(tt.text); got < tt.min || got > tt.max {
				t.Errorf("Count = %d, want %d…%d", got, tt.min, tt.max)
			}
		})
	}
}

func BenchmarkCount4KiB(b *testing.B) {
	s := strings.Repeat("Summarize the quarterly report for the board. ", 90)
	tokencount.Warm()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		tokencount.Count(s)
	}
}
