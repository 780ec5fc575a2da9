package main

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestStageTimes(t *testing.T) {
	// As harness.Dataplane.Metrics parses a scrape: series to value.
	scrape := func(authorize, audit, count float64) map[string]float64 {
		return map[string]float64{
			`portcullis_dataplane_stage_seconds_bucket{stage="authorize",le="2e-06"}`: 0,
			`portcullis_dataplane_stage_seconds_sum{stage="authorize"}`:               authorize,
			`portcullis_dataplane_stage_seconds_count{stage="authorize"}`:             count,
			`portcullis_dataplane_stage_seconds_sum{stage="audit"}`:                   audit,
			`portcullis_dataplane_stage_seconds_count{stage="audit"}`:                 count,
			`portcullis_dataplane_stage_seconds_sum{stage="forward"}`:                 0.5,
			`portcullis_dataplane_stage_seconds_count{stage="forward"}`:               10,
			`portcullis_dataplane_calls_total{protocol="mcp",outcome="ok"}`:           count,
			`go_goroutines`: 12,
		}
	}
	before := parseStageTimes(scrape(0.001, 0.002, 10))
	after := parseStageTimes(scrape(0.101, 0.202, 110))
	d := after.since(before)
	// forward saw no call in between, so it is left out.
	if got, want := d.names(), []string{"audit", "authorize"}; !slices.Equal(got, want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
	tests := []struct {
		name  string
		stage string
		want  time.Duration
	}{
		{name: "authorize", stage: "authorize", want: time.Millisecond},
		{name: "audit", stage: "audit", want: 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d[tt.stage].mean(); got != tt.want {
				t.Errorf("mean %s, want %s", got, tt.want)
			}
		})
	}

	b := stageBreakdown{added: 5 * time.Millisecond, stages: d}
	if got, want := b.other(), 2*time.Millisecond; got != want {
		t.Errorf("other %s, want %s", got, want)
	}
	if got, want := b.share(time.Millisecond), "20.0%"; got != want {
		t.Errorf("share %q, want %q", got, want)
	}
}

func TestLabelValue(t *testing.T) {
	tests := []struct {
		name, labels, want string
		ok                 bool
	}{
		{name: "only", labels: `stage="gate"`, want: "gate", ok: true},
		{name: "second", labels: `le="0.5",stage="gate"`, want: "gate", ok: true},
		{name: "absent", labels: `le="0.5"`, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := labelValue(tt.labels, "stage")
			if got != tt.want || ok != tt.ok {
				t.Errorf("labelValue(%q) = %q, %t; want %q, %t", tt.labels, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStageQuantile(t *testing.T) {
	inf := math.Inf(1)
	doubling := stageTotal{count: 40, buckets: map[float64]float64{2e-6: 0, 4e-6: 10, 8e-6: 30, 16e-6: 40, inf: 40}}
	tail := stageTotal{count: 5, buckets: map[float64]float64{2e-6: 0, 4e-6: 0, inf: 5}}
	tests := []struct {
		name string
		s    stageTotal
		q    float64
		want time.Duration
		ok   bool
	}{
		{name: "median within a bucket", s: doubling, q: 0.5, want: 6 * time.Microsecond, ok: true},
		{name: "quartile at a bucket's top", s: doubling, q: 0.25, want: 4 * time.Microsecond, ok: true},
		{name: "max", s: doubling, q: 1, want: 16 * time.Microsecond, ok: true},
		{name: "beyond the last bound reads the bound", s: tail, q: 0.5, want: 4 * time.Microsecond, ok: true},
		{name: "no buckets", s: stageTotal{count: 3, sum: 1}, q: 0.5},
		{name: "no calls", s: stageTotal{buckets: map[float64]float64{inf: 0}}, q: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.s.quantile(tt.q)
			if got != tt.want || ok != tt.ok {
				t.Errorf("quantile(%v) = %v, %t; want %v, %t", tt.q, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStageBucketsSinceAndPlus(t *testing.T) {
	scrape := func(n float64) map[string]float64 {
		return map[string]float64{
			`portcullis_dataplane_stage_seconds_bucket{stage="gate",le="4e-06"}`: n,
			`portcullis_dataplane_stage_seconds_bucket{stage="gate",le="+Inf"}`:  2 * n,
			`portcullis_dataplane_stage_seconds_sum{stage="gate"}`:               n * 1e-5,
			`portcullis_dataplane_stage_seconds_count{stage="gate"}`:             2 * n,
		}
	}
	d := parseStageTimes(scrape(30)).since(parseStageTimes(scrape(10)))
	g := d["gate"]
	if g.count != 40 || g.buckets[4e-6] != 20 || g.buckets[math.Inf(1)] != 40 {
		t.Fatalf("since: %+v", g)
	}
	both := d.plus(d)["gate"]
	if both.count != 80 || both.buckets[4e-6] != 40 || math.Abs(both.sum-4e-4) > 1e-12 {
		t.Fatalf("plus: %+v", both)
	}
}
