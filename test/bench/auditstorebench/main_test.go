package main

import (
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

// TestMeasure runs the whole measurement on a small store: the snapshot
// carries every segment, and the node's start and the follower's restore
// leave every chain where the fill left it (measure checks that).
func TestMeasure(t *testing.T) {
	r, err := measure(t.TempDir(), 3*fillBatch*fillDataplanes+7, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.segments != 1 || r.storeBytes <= 0 || r.snapBytes < r.storeBytes {
		t.Errorf("store %d bytes in %d segments, snapshot %d bytes: the snapshot must carry the store", r.storeBytes, r.segments, r.snapBytes)
	}
	if per := r.storeBytes / int64(r.records); per < 250 || per > 400 {
		t.Errorf("%d bytes per stored record, want a typical record's 250–400", per)
	}
	if r.follower <= 0 || r.warm.open <= 0 || r.cold.raft <= 0 {
		t.Errorf("times not measured: %+v", r)
	}
	report := render([]result{r}, 0)
	if !strings.Contains(report, "| 12007 |") {
		t.Errorf("report lacks the row:\n%s", report)
	}
}
