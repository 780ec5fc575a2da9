package pipeline_test

import (
	"math"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

func TestPriceCost(t *testing.T) {
	p := pipeline.Price{Input: 2_500_000, CachedInput: 1_250_000, CacheWrite: 3_125_000, Output: 10_000_000}
	tests := []struct {
		name string
		u    pipeline.Usage
		want int64
	}{
		{"nothing", pipeline.Usage{}, 0},
		// 1M plain input at 2.50 = 2.5e9 nano-units.
		{"a million input tokens", pipeline.Usage{InputTokens: 1_000_000}, 2_500_000_000},
		// 100 plain·2.5 + 300 cached·1.25 + 100 written·3.125 + 50 out·10 (micro per M) → nano: /1000 each
		{"every part", pipeline.Usage{InputTokens: 500, CachedInputTokens: 300, CacheWriteTokens: 100, OutputTokens: 50}, 250_000 + 375_000 + 312_500 + 500_000},
		// One token at 2.50/M is 2,500 nano-units.
		{"one token", pipeline.Usage{InputTokens: 1}, 2500},
		{"saturates", pipeline.Usage{OutputTokens: math.MaxInt64}, math.MaxInt64},
	}
	// One token at one micro-unit per million is a thousandth of a
	// nano-unit: rounded up to one.
	if got := (pipeline.Price{Input: 1}).Cost(pipeline.Usage{InputTokens: 1}); got != 1 {
		t.Errorf("a fraction of a nano-unit costs %d, want 1", got)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Cost(tt.u); got != tt.want {
				t.Errorf("Cost = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPriceAt(t *testing.T) {
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := pipeline.Model{Prices: []pipeline.Price{{From: jan, Input: 1}, {From: jan.AddDate(0, 1, 0), Input: 2}}}
	for _, tt := range []struct {
		at   time.Time
		want int64 // 0: no price
	}{{jan.Add(-time.Second), 0}, {jan, 1}, {jan.AddDate(0, 1, 0).Add(-time.Second), 1}, {jan.AddDate(0, 1, 0), 2}, {jan.AddDate(5, 0, 0), 2}} {
		p := m.PriceAt(tt.at)
		got := int64(0)
		if p != nil {
			got = p.Input
		}
		if got != tt.want {
			t.Errorf("PriceAt(%s) = %d, want %d", tt.at, got, tt.want)
		}
	}
}
