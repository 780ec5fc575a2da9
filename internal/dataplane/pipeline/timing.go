package pipeline

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
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
func Timed(obs StageObserver, stages ...Stage) []Stage { return Traced(obs, nil, 0, stages...) }

// Traced is Timed that also, when tr is not nil and the call's span (in
// the context) is recording, gives a span to each stage that cost
// anything: "stage <name>", made once the stage is done, from its start to
// its end, for a stage whose own time reached min or that refused or
// failed the call (its span then carries the reason as
// portcullis.refusal.reason). Stage spans are children of the call's span:
// their times show the chain as it ran (each covers the stages after it),
// and portcullis.stage.self_us is the stage's own time. Stages that cost
// nothing get no span and cost no more than under Timed; a call that is
// not sampled gets no stage spans; with tr nil Traced is Timed.
func Traced(obs StageObserver, tr trace.Tracer, min time.Duration, stages ...Stage) []Stage {
	out := make([]Stage, len(stages))
	for i, s := range stages {
		ts := timedStage{Stage: s, obs: obs, i: i, tr: tr, min: min, span: "stage " + s.Name()}
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
// it was given, the time spent there and the error it returned.
type stageTiming struct {
	next    Handler
	inNext  time.Duration
	nextErr error
}

// timedNext is the handler the i-th timed stage passes on instead of the
// rest of the chain: it calls the rest and adds its time to the stage's.
// Made once per stage, it finds the rest in the Call.
func timedNext(i int) Handler {
	return func(ctx context.Context, c *Call) (*Result, error) {
		t0 := time.Now()
		r, e := c.timing[i].next(ctx, c)
		c.timing[i].inNext += time.Since(t0)
		c.timing[i].nextErr = e
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
	// tr, when not nil, makes the spans of stages that cost at least min.
	tr   trace.Tracer
	min  time.Duration
	span string
}

// Attributes of a stage's span.
var (
	stageAttr = attribute.Key("portcullis.stage")
	selfAttr  = attribute.Key("portcullis.stage.self_us")
)

func (s timedStage) Handle(ctx context.Context, c *Call, next Handler) (*Result, error) {
	if s.next == nil || c == nil {
		return s.handleAlloc(ctx, c, next)
	}
	t := &c.timing[s.i]
	// Another Timed list nested in this one shares the index: keep what
	// it set and put it back.
	saved := *t
	t.next, t.inNext, t.nextErr = next, 0, nil
	start := time.Now()
	res, err := s.Stage.Handle(ctx, c, s.next)
	end := time.Now()
	self, nextErr := end.Sub(start)-t.inNext, t.nextErr
	*t = saved
	s.obs(s.Name(), self)
	s.trace(ctx, start, end, self, err, nextErr)
	return res, err
}

// handleAlloc times a stage past maxTimed with a closure per call.
func (s timedStage) handleAlloc(ctx context.Context, c *Call, next Handler) (*Result, error) {
	var inNext time.Duration
	var nextErr error
	start := time.Now()
	res, err := s.Stage.Handle(ctx, c, func(ctx context.Context, c *Call) (*Result, error) {
		t0 := time.Now()
		r, e := next(ctx, c)
		inNext += time.Since(t0)
		nextErr = e
		return r, e
	})
	end := time.Now()
	self := end.Sub(start) - inNext
	s.obs(s.Name(), self)
	s.trace(ctx, start, end, self, err, nextErr)
	return res, err
}

// trace makes the stage's span, when it cost anything (or made the error)
// and the call's span is recording.
func (s timedStage) trace(ctx context.Context, start, end time.Time, self time.Duration, err, nextErr error) {
	if s.tr == nil {
		return
	}
	failed := err != nil && err != nextErr //nolint:errorlint // identity: did this stage make the error?
	if self < s.min && !failed {
		return
	}
	if !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, stageAttr.String(s.Name()), selfAttr.Int64(self.Microseconds()))
	var ref *Refusal
	if failed && errors.As(err, &ref) {
		attrs = append(attrs, attribute.String("portcullis.refusal.reason", string(ref.Reason)))
	}
	_, span := s.tr.Start(ctx, s.span, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if failed && ref == nil {
		span.SetStatus(codes.Error, "the stage failed")
	}
	span.End(trace.WithTimestamp(end))
}
