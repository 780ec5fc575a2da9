package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "1000000,10000000", want: []int{1_000_000, 10_000_000}},
		{in: "1M, 10M", want: []int{1_000_000, 10_000_000}},
		{in: "500k", want: []int{500_000}},
		{in: "0", wantErr: true},
		{in: "1G", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSizes(tt.in)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("parseSizes(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestMeasure runs the whole measurement on a small store with small
// segments, in both snapshot formats: before cluster version 8 the
// snapshot carries every segment; from it only the list of sealed
// segments and the open one, and the followers fetch what they lack. The
// node's start and the followers' restores leave every chain where the
// fill left it (measure checks that).
func TestMeasure(t *testing.T) {
	segmentSize = 256 << 10
	t.Cleanup(func() { segmentSize = 0 })
	for _, legacy := range []bool{true, false} {
		t.Run(fmt.Sprintf("legacy=%t", legacy), func(t *testing.T) {
			r, err := measure(t.TempDir(), 3*fillBatch*fillDataplanes+7, true, legacy)
			if err != nil {
				t.Fatal(err)
			}
			if r.segments < 10 || r.storeBytes <= 0 {
				t.Fatalf("store %d bytes in %d segments, want several segments", r.storeBytes, r.segments)
			}
			if per := r.storeBytes / int64(r.records); per < 250 || per > 400 {
				t.Errorf("%d bytes per stored record, want a typical record's 250–400", per)
			}
			if r.follower <= 0 || r.warm.open <= 0 || r.cold.raft <= 0 {
				t.Errorf("times not measured: %+v", r)
			}
			switch {
			case legacy && r.snapBytes < r.storeBytes:
				t.Errorf("snapshot %d bytes, store %d: the snapshot must carry the store", r.snapBytes, r.storeBytes)
			case legacy && (r.followerFetch != 0 || r.lagging != 0):
				t.Errorf("the legacy format fetched %d bytes, measured a lagging follower %s", r.followerFetch, r.lagging)
			case !legacy && r.snapBytes > segmentSize+64<<10:
				t.Errorf("snapshot %d bytes: a manifest carries the open segment (at most %d) and a list", r.snapBytes, segmentSize)
			case !legacy && (r.followerFetch < r.storeBytes-segmentSize || r.followerFetch > r.storeBytes):
				t.Errorf("the empty follower fetched %d bytes of a %d-byte store", r.followerFetch, r.storeBytes)
			case !legacy && (r.laggingFetch <= 0 || r.laggingFetch > 2*segmentSize):
				t.Errorf("the lagging follower fetched %d bytes, want its one missing segment", r.laggingFetch)
			}
			report := render([]result{r}, 0, legacy)
			if !strings.Contains(report, "| 12007 |") {
				t.Errorf("report lacks the row:\n%s", report)
			}
		})
	}
}
