package pipeline_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

type sleepStage struct {
	name string
	d    time.Duration
}

func (s sleepStage) Name() string { return s.name }

func (s sleepStage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	time.Sleep(s.d)
	return next(ctx, c)
}

func TestTimedReportsEachStagesOwnTime(t *testing.T) {
	var mu sync.Mutex
	got := map[string]time.Duration{}
	obs := func(stage string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got[stage] += d
	}
	terminal := pipeline.TimedHandler(obs, "forward", func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		time.Sleep(200 * time.Millisecond)
		return &pipeline.Result{}, nil
	})
	h := pipeline.Chain(terminal, pipeline.Timed(obs, sleepStage{"a", time.Millisecond}, sleepStage{"b", 50 * time.Millisecond})...)
	if _, err := h(context.Background(), &pipeline.Call{}); err != nil {
		t.Fatal(err)
	}
	// Each stage's own time excludes what it called. The stages sleep
	// 1ms, 50ms and 200ms, so a nesting mistake adds at least 50ms to a
	// stage; the upper bounds leave that much room for a slow machine.
	for stage, b := range map[string][2]time.Duration{
		"a":       {time.Millisecond, 50 * time.Millisecond},
		"b":       {50 * time.Millisecond, 200 * time.Millisecond},
		"forward": {200 * time.Millisecond, time.Hour},
	} {
		if d := got[stage]; d < b[0] || d >= b[1] {
			t.Errorf("stage %s: %s, want in [%s, %s)", stage, d, b[0], b[1])
		}
	}
}

// TestTimedNestedAndLong: a Timed list nested in another (sharing stage
// indexes) and a list longer than the allocation-free part both report
// each stage once per call and still reach the terminal.
func TestTimedNestedAndLong(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	obs := func(stage string, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		calls[stage]++
	}
	reached := 0
	terminal := func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		reached++
		return &pipeline.Result{}, nil
	}
	var long []pipeline.Stage
	for i := range 20 {
		long = append(long, sleepStage{name: "inner" + string(rune('a'+i))})
	}
	inner := pipeline.Chain(terminal, pipeline.Timed(obs, long...)...)
	outer := pipeline.Chain(func(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) { return inner(ctx, c) },
		pipeline.Timed(obs, sleepStage{name: "outer0"}, sleepStage{name: "outer1"})...)
	for range 3 {
		if _, err := outer(context.Background(), &pipeline.Call{}); err != nil {
			t.Fatal(err)
		}
	}
	if reached != 3 {
		t.Fatalf("terminal reached %d times, want 3", reached)
	}
	if len(calls) != 22 {
		t.Fatalf("%d stages reported, want 22: %v", len(calls), calls)
	}
	for stage, n := range calls {
		if n != 3 {
			t.Errorf("stage %s reported %d times, want 3", stage, n)
		}
	}
}
