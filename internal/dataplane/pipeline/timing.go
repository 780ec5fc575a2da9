package pipeline

import (
	"context"
	"time"
)

// StageObserver receives a stage's own time for one call: the time spent
// in its Handle minus the time spent in the rest of the chain it called.
type StageObserver func(stage string, self time.Duration)

// Timed wraps each stage so that obs learns its own time per call, which
// is how the data plane reports each stage's share of the latency it adds
// (metric portcullis_dataplane_stage_seconds). The wrapping costs two clock
// reads per stage and call; the first maxTimed stages allocate nothing per
// call (each keeps what it needs in the Call), any further ones one small
// closure.
func Timed(obs StageObserver, stages ...Stage) []Stage {
	out := make([]Stage, len(stages))
	for i, s := range stages {
		ts := timedStage{Stage: s, obs: obs, i: i}
		if i < maxTimed {
			ts.next = timedNext(i)
		}
		out[i] = ts
	}
	return out
}

// maxTimed is how many stages of one Timed list time a call without
// allocating.
const maxTimed = 16

// stageTiming is one timed stage's state in a call: the rest of the chain
// it was given and the time spent there.
type stageTiming struct {
	next   Handler
	inNext time.Duration
}

// timedNext is the handler the i-th timed stage passes on instead of the
// rest of the chain: it calls the rest and adds its time to the stage's.
// Made once per stage, it finds the rest in the Call.
func timedNext(i int) Handler {
	return func(ctx context.Context, c *Call) (*Result, error) {
		t0 := time.Now()
		r, e := c.timing[i].next(ctx, c)
		c.timing[i].inNext += time.Since(t0)
		return r, e
	}
}

// TimedHandler wraps the terminal handler so that obs learns its time
// under name.
func TimedHandler(obs StageObserver, name string, h Handler) Handler {
	return func(ctx context.Context, c *Call) (*Result, error) {
		start := time.Now()
		res, err := h(ctx, c)
		obs(name, time.Since(start))
		return res, err
	}
}

type timedStage struct {
	Stage
	obs StageObserver
	i   int
	// next is timedNext(i); nil past maxTimed.
	next Handler
}

func (s timedStage) Handle(ctx context.Context, c *Call, next Handler) (*Result, error) {
	if s.next == nil || c == nil {
		return s.handleAlloc(ctx, c, next)
	}
	t := &c.timing[s.i]
	// Another Timed list nested in this one shares the index: keep what
	// it set and put it back.
	saved := *t
	t.next, t.inNext = next, 0
	start := time.Now()
	res, err := s.Stage.Handle(ctx, c, s.next)
	self := time.Since(start) - t.inNext
	*t = saved
	s.obs(s.Name(), self)
	return res, err
}

// handleAlloc times a stage past maxTimed with a closure per call.
func (s timedStage) handleAlloc(ctx context.Context, c *Call, next Handler) (*Result, error) {
	var inNext time.Duration
	start := time.Now()
	res, err := s.Stage.Handle(ctx, c, func(ctx context.Context, c *Call) (*Result, error) {
		t0 := time.Now()
		r, e := next(ctx, c)
		inNext += time.Since(t0)
		return r, e
	})
	s.obs(s.Name(), time.Since(start)-inNext)
	return res, err
}
