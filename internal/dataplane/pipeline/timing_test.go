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
