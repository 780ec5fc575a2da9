package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// stageAt is a stage whose every call fell in the bucket (d/2, d]: its
// p50 interpolates to 3/4 d.
func stageAt(d time.Duration, calls float64) stageTotal {
	return stageTotal{sum: d.Seconds() * calls, count: calls, buckets: map[float64]float64{d.Seconds() / 2: 0, d.Seconds(): calls, math.Inf(1): calls}}
}

func lineFor(t *testing.T, label string) budgetLine {
	t.Helper()
	for _, l := range stageBudget {
		if strings.HasPrefix(l.label, label) {
			return l
		}
	}
	t.Fatalf("no budget line %q", label)
	return budgetLine{}
}

func TestBudgetMeasure(t *testing.T) {
	stages := stageTimes{
		"authorize": stageAt(32*time.Microsecond, 100),
		"audit":     stageAt(64*time.Microsecond, 100),
		"forward":   stageAt(512*time.Microsecond, 100),
		"gate":      stageAt(4*time.Microsecond, 100),
	}
	async := budgetInputs{stages: stages, added50: 300 * time.Microsecond, other: 150 * time.Microsecond, haveMean: true, direct50: 500 * time.Microsecond, fsync50: 200 * time.Microsecond}
	durable := async
	durable.durable = true
	noDirect := budgetInputs{stages: stages}
	traced := func(share float64) budgetInputs {
		in := async
		in.cpuShare, in.haveShare = share, true
		return in
	}
	tests := []struct {
		name   string
		line   string
		in     budgetInputs
		p50    time.Duration
		hasP50 bool
		budget time.Duration
		within string
		note   string
	}{
		{name: "stage within budget", line: "gate", in: async, p50: 3 * time.Microsecond, hasP50: true, budget: 5 * time.Microsecond, within: "yes"},
		{name: "stage over budget", line: "audit", in: async, p50: 48 * time.Microsecond, hasP50: true, budget: 25 * time.Microsecond, within: "no"},
		{name: "durable audit may add one fsync", line: "audit", in: durable, p50: 48 * time.Microsecond, hasP50: true, budget: 225 * time.Microsecond, within: "yes"},
		{name: "forward against the direct path", line: "forward", in: async, p50: 384 * time.Microsecond, hasP50: true, budget: 580 * time.Microsecond, within: "yes"},
		{name: "forward without the direct path", line: "forward", in: noDirect, p50: 384 * time.Microsecond, hasP50: true, within: "—", note: "needs the direct path"},
		// 300 µs added at p50, less authorize (24), audit (48) and gate (3),
		// not forward.
		{name: "other, estimated at p50", line: "HTTP server", in: async, p50: 225 * time.Microsecond, hasP50: true, budget: 80 * time.Microsecond, within: "no"},
		{name: "other without the direct path", line: "HTTP server", in: noDirect, budget: 80 * time.Microsecond, within: "—", note: "needs the direct path"},
		{name: "inspect, which reports nothing here", line: "inspect", in: async, budget: 50 * time.Microsecond, within: "—", note: "not measured"},
		{name: "shadow: one more decision, not reported", line: "shadow", in: async, budget: 24 * time.Microsecond, within: "—", note: "not measured"},
		{name: "tracing: a data plane without it", line: "tracing", in: async, within: "—", note: "measured on the traced row"},
		{name: "tracing: within its CPU share", line: "tracing", in: traced(0.015), within: "yes"},
		{name: "tracing: over its CPU share", line: "tracing", in: traced(0.031), within: "no"},
		{name: "a built stage the data plane did not report", line: "validate", in: async, budget: 25 * time.Microsecond, within: "—", note: "not measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := lineFor(t, tt.line).measure(tt.in)
			if m.p50 != tt.p50 || m.hasP50 != tt.hasP50 || m.budget != tt.budget || m.within() != tt.within || m.note != tt.note {
				t.Errorf("got p50 %v (%t), budget %v, within %q, note %q; want %v (%t), %v, %q, %q",
					m.p50, m.hasP50, m.budget, m.within(), m.note, tt.p50, tt.hasP50, tt.budget, tt.within, tt.note)
			}
		})
	}
}

func TestRenderBudget(t *testing.T) {
	in := &budgetInputs{stages: stageTimes{"gate": stageAt(4*time.Microsecond, 10), "newstage": stageAt(8*time.Microsecond, 10)}}
	var b strings.Builder
	renderBudget(&b, []string{"async", "durable"}, []*budgetInputs{in, nil})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// Header, separator, one row per budget line, one for the stage
	// without a line.
	if got, want := len(lines), 2+len(stageBudget)+1; got != want {
		t.Fatalf("%d lines, want %d:\n%s", got, want, b.String())
	}
	cols := strings.Count(lines[0], "|")
	for _, l := range lines {
		if strings.Count(l, "|") != cols {
			t.Errorf("row with %d cells, header has %d: %s", strings.Count(l, "|"), cols, l)
		}
	}
	if !strings.Contains(b.String(), "newstage — *no budget line yet") {
		t.Errorf("the stage without a budget line is not reported:\n%s", b.String())
	}
}

func TestTracingShare(t *testing.T) {
	window := func(cpu time.Duration, calls int) runResult { return runResult{cpu: cpu, calls: calls} }
	async := &measurement{name: pathDPAsync, fixed: []runResult{window(100*time.Millisecond, 1000), window(120*time.Millisecond, 1000), window(90*time.Millisecond, 1000)}}
	tests := []struct {
		name   string
		traced *measurement
		want   float64
		ok     bool
	}{
		// Paired ratios 1.01, 1.05, 1.00: the median is +1 %.
		{name: "paired rounds, median", traced: &measurement{name: pathDPTraced, fixed: []runResult{window(101*time.Millisecond, 1000), window(126*time.Millisecond, 1000), window(90*time.Millisecond, 1000)}}, want: 0.01, ok: true},
		{name: "not measured", traced: &measurement{name: pathDPTraced, skipped: "initialize failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tracingShare(async, tt.traced)
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("tracingShare = %v, %t; want %v, %t", got, ok, tt.want, tt.ok)
			}
		})
	}
}
