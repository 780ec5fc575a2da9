package main

import (
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
