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
// reads and one small closure per stage and call.
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
		out[i] = timedStage{Stage: s, obs: obs, tr: tr, min: min, span: "stage " + s.Name()}
	}
	return out
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
	obs  StageObserver
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
	if s.tr == nil {
		return res, err
	}
	failed := err != nil && err != nextErr //nolint:errorlint // identity: did this stage make the error?
	if self < s.min && !failed {
		return res, err
	}
	if !trace.SpanFromContext(ctx).IsRecording() {
		return res, err
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
	return res, err
}
