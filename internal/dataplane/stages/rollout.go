package stages

import (
	"context"
	"errors"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// RolloutOutcome is one tool call decided while a policy rollout was
// staged, as the rollout stage counts it.
type RolloutOutcome struct {
	// The rollout, its stage ("shadow" or "canary") and canary share.
	Rollout     string
	Stage       string
	BasisPoints uint32
	Agent, Tool string
	// Cohort: "shadow" (the active versions decided, the candidate was
	// evaluated beside them), "canary" (the candidate decided, the active
	// versions beside it) or "baseline" (an agent outside the canary).
	Cohort string
	// AllowToDeny and DenyToAllow compare the active versions' decision
	// with the candidate's; EvalError: the candidate's had evaluation
	// errors. All false in the baseline.
	AllowToDeny, DenyToAllow, EvalError bool
	// Forwarded: the call was allowed and sent upstream; UpstreamError:
	// and the upstream failed it.
	Forwarded, UpstreamError bool
	Time                     time.Time
}

// RolloutRecorder counts the calls of a policy rollout. Record must be
// safe for concurrent use and must not block; it reports whether the
// call's other decision should be kept in its audit record (a sample of
// the calls that differ).
type RolloutRecorder interface {
	Record(o RolloutOutcome) (sample bool)
}

// Rollout runs around Authorize while the call's configuration stages a
// policy rollout (call.Rollout): for a tool call it asks for the decision
// that will not be enforced — the candidate's in shadow, the active
// versions' for an agent in the canary, nothing for the others (one extra
// decision at most) — lets Authorize decide, and counts how the two
// compare and how the call ended upstream. It sees every decision,
// allowed or denied, because it wraps the stage that refuses. What it
// found goes on the call (RolloutNote) for the audit record.
type Rollout struct {
	Recorder RolloutRecorder
}

var _ pipeline.Stage = Rollout{}

// Name implements pipeline.Stage.
func (Rollout) Name() string { return "rollout" }

// Handle implements pipeline.Stage.
func (r Rollout) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	ro := c.Rollout
	if ro == nil || r.Recorder == nil || c.Agent == nil || c.Op != pipeline.OpCall || c.Target.Kind != pipeline.KindTool || c.Config == nil {
		return next(ctx, c)
	}
	other, compared := ro.Counterpart(ctx, c)
	res, err := next(ctx, c)
	d := c.Decision
	o := RolloutOutcome{
		Rollout: ro.ID(), Stage: ro.Stage(), BasisPoints: ro.CanaryBasisPoints(),
		Agent: c.Agent.GetMeta().GetName(), Tool: c.Target.Name, Time: startOf(c),
	}
	switch {
	case d.Candidate:
		o.Cohort = "canary"
	case ro.Stage() == "shadow":
		o.Cohort = "shadow"
	default:
		o.Cohort = "baseline"
	}
	if compared {
		active, cand := d, other
		if d.Candidate {
			active, cand = other, d
		}
		o.AllowToDeny = active.Allowed && !cand.Allowed
		o.DenyToAllow = !active.Allowed && cand.Allowed
		o.EvalError = len(cand.Errors) > 0 && !cand.InvalidArguments
	}
	if d.Allowed && (err == nil || upstreamFailure(err)) {
		o.Forwarded = true
		o.UpstreamError = err != nil || res != nil && res.IsError
	}
	sample := r.Recorder.Record(o)
	note := &pipeline.RolloutNote{Candidate: d.Candidate}
	if sample && compared && (o.AllowToDeny || o.DenyToAllow || o.EvalError) {
		note.Shadow, note.ShadowIsCandidate = &other, !d.Candidate
	}
	c.RolloutNote = note
	return res, err
}

// upstreamFailure reports whether err ended an allowed call upstream
// (rather than a later stage refusing it before it was sent).
func upstreamFailure(err error) bool {
	var ref *pipeline.Refusal
	if !errors.As(err, &ref) {
		return true
	}
	switch ref.Reason {
	case pipeline.ReasonUpstreamUnavailable, pipeline.ReasonUpstreamTimeout, pipeline.ReasonInternal:
		return true
	}
	return false
}
