package stages_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
)

// fakeRollout is a pipeline.Rollout whose counterpart decision the test
// sets.
type fakeRollout struct {
	stage string
	bp    uint32
	other pipeline.Decision
	has   bool
	asked int
}

func (f *fakeRollout) ID() string                { return "r1" }
func (f *fakeRollout) Stage() string             { return f.stage }
func (f *fakeRollout) CanaryBasisPoints() uint32 { return f.bp }
func (f *fakeRollout) Counterpart(context.Context, *pipeline.Call) (pipeline.Decision, bool) {
	f.asked++
	return f.other, f.has
}

// outcomes is a RolloutRecorder that keeps what it was told.
type outcomes struct {
	mu     sync.Mutex
	got    []stages.RolloutOutcome
	sample bool
}

func (o *outcomes) Record(x stages.RolloutOutcome) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, x)
	return o.sample
}

func TestRolloutStage(t *testing.T) {
	allow := pipeline.Decision{Allowed: true, Policies: []string{"p/permit"}}
	deny := pipeline.Decision{Policies: []string{"p/forbid"}}
	tests := []struct {
		name     string
		rollout  *fakeRollout
		decision pipeline.Decision // what Authorize decides
		term     *terminal
		sample   bool
		want     stages.RolloutOutcome
		shadow   bool // the note keeps the other decision
	}{
		{name: "shadow: the candidate would deny", rollout: &fakeRollout{stage: "shadow", other: pipeline.Decision{Candidate: true}, has: true}, decision: allow, sample: true,
			want: stages.RolloutOutcome{Cohort: "shadow", AllowToDeny: true, Forwarded: true}, shadow: true},
		{name: "shadow: not sampled", rollout: &fakeRollout{stage: "shadow", other: pipeline.Decision{Candidate: true}, has: true}, decision: allow,
			want: stages.RolloutOutcome{Cohort: "shadow", AllowToDeny: true, Forwarded: true}},
		{name: "shadow: the candidate would allow a denied call", rollout: &fakeRollout{stage: "shadow", other: pipeline.Decision{Allowed: true, Candidate: true}, has: true}, decision: deny, sample: true,
			want: stages.RolloutOutcome{Cohort: "shadow", DenyToAllow: true}, shadow: true},
		{name: "shadow: the candidate errs", rollout: &fakeRollout{stage: "shadow", other: pipeline.Decision{Allowed: true, Errors: []string{"policy p/x: bad"}, Candidate: true}, has: true}, decision: allow,
			want: stages.RolloutOutcome{Cohort: "shadow", EvalError: true, Forwarded: true}},
		{name: "shadow: the same decision", rollout: &fakeRollout{stage: "shadow", other: pipeline.Decision{Allowed: true, Candidate: true}, has: true}, decision: allow, sample: true,
			want: stages.RolloutOutcome{Cohort: "shadow", Forwarded: true}},
		{name: "canary: the candidate denies what the active allows", rollout: &fakeRollout{stage: "canary", bp: 5000, other: allow, has: true},
			decision: pipeline.Decision{Candidate: true}, sample: true, want: stages.RolloutOutcome{Cohort: "canary", AllowToDeny: true}, shadow: true},
		{name: "canary: outside it", rollout: &fakeRollout{stage: "canary", bp: 5000}, decision: allow,
			want: stages.RolloutOutcome{Cohort: "baseline", Forwarded: true}},
		{name: "an upstream error result", rollout: &fakeRollout{stage: "canary", bp: 5000}, decision: allow, term: &terminal{result: &pipeline.Result{IsError: true}},
			want: stages.RolloutOutcome{Cohort: "baseline", Forwarded: true, UpstreamError: true}},
		{name: "an unavailable upstream", rollout: &fakeRollout{stage: "canary", bp: 5000}, decision: allow, term: &terminal{err: pipeline.Refuse(pipeline.ReasonUpstreamUnavailable, "down")},
			want: stages.RolloutOutcome{Cohort: "baseline", Forwarded: true, UpstreamError: true}},
		{name: "refused by a later stage: not forwarded", rollout: &fakeRollout{stage: "canary", bp: 5000}, decision: allow, term: &terminal{err: pipeline.Refuse(pipeline.ReasonInvalidArguments, "bad")},
			want: stages.RolloutOutcome{Cohort: "baseline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newFake()
			cfg.decision = tt.decision
			rec := &outcomes{sample: tt.sample}
			call := fakeCall(cfg, writeTool.Action)
			call.Agent, call.Target, call.Rollout = alice, toolTarget(writeTool), tt.rollout
			term := tt.term
			if term == nil {
				term = &terminal{}
			}
			h := pipeline.Chain(term.handle, stages.Rollout{Recorder: rec}, stages.Authorize{})
			_, _ = h(context.Background(), call)
			if len(rec.got) != 1 || tt.rollout.asked != 1 {
				t.Fatalf("%d outcomes recorded, counterpart asked %d times; want 1, 1", len(rec.got), tt.rollout.asked)
			}
			got := rec.got[0]
			want := tt.want
			want.Rollout, want.Stage, want.BasisPoints, want.Agent, want.Tool, want.Time = "r1", tt.rollout.stage, tt.rollout.bp, "alice", writeTool.Action, call.Start
			if got != want {
				t.Fatalf("outcome %+v, want %+v", got, want)
			}
			note := call.RolloutNote
			if note == nil || note.Candidate != tt.decision.Candidate || (note.Shadow != nil) != tt.shadow {
				t.Fatalf("note %+v, want candidate %t and a kept decision %t", note, tt.decision.Candidate, tt.shadow)
			}
			if tt.shadow && note.ShadowIsCandidate == tt.decision.Candidate {
				t.Fatalf("the kept decision is the candidate's: %t; the candidate decided: %t", note.ShadowIsCandidate, tt.decision.Candidate)
			}
		})
	}
}

// TestRolloutStagePassesOtherCalls: lists, sessions and calls without a
// rollout go straight through, counted by nobody.
func TestRolloutStagePassesOtherCalls(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(*pipeline.Call)
	}{
		{name: "no rollout", prepare: func(c *pipeline.Call) { c.Rollout = nil }},
		{name: "a list", prepare: func(c *pipeline.Call) { c.Op, c.Target = pipeline.OpList, pipeline.Target{Kind: pipeline.KindTool} }},
		{name: "a resource read", prepare: func(c *pipeline.Call) { c.Op, c.Target = pipeline.OpRead, pipeline.Target{Kind: pipeline.KindResource} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newFake()
			cfg.decision = pipeline.Decision{Allowed: true}
			rec := &outcomes{}
			ro := &fakeRollout{stage: "shadow", has: true}
			call := fakeCall(cfg, writeTool.Action)
			call.Agent, call.Target, call.Rollout = alice, toolTarget(writeTool), ro
			tt.prepare(call)
			term := &terminal{}
			_, _ = pipeline.Chain(term.handle, stages.Rollout{Recorder: rec}, stages.Authorize{})(context.Background(), call)
			if len(rec.got) != 0 || ro.asked != 0 || call.RolloutNote != nil {
				t.Fatalf("counted %d, asked %d, note %v; want nothing", len(rec.got), ro.asked, call.RolloutNote)
			}
		})
	}
}

// TestAuditRecordsTheRollout: a call decided during a rollout is audited
// with the rollout, whether the candidate decided, the sampled other
// decision and the versions that decided.
func TestAuditRecordsTheRollout(t *testing.T) {
	rec := &recorder{}
	call := fakeCall(newFake(), writeTool.Action)
	call.Rollout = &fakeRollout{stage: "canary", bp: 5000}
	a := stages.Audit{Writer: rec, Dataplane: "dp-1"}
	_, _ = a.Handle(context.Background(), call, func(_ context.Context, c *pipeline.Call) (*pipeline.Result, error) {
		c.Agent, c.Target = alice, toolTarget(writeTool)
		c.Decision = pipeline.Decision{Candidate: true, Policies: []string{"p/forbid"}, Versions: []string{"p@2"}}
		c.RolloutNote = &pipeline.RolloutNote{Candidate: true, Shadow: &pipeline.Decision{Allowed: true, Policies: []string{"p/permit"}}}
		return nil, pipeline.Refuse(pipeline.ReasonDenied, "denied")
	})
	r := rec.all()[0]
	ro := r.GetRollout()
	if ro.GetId() != "r1" || ro.GetStage() != "canary" || !ro.GetCandidate() || ro.GetShadow().GetDecision() != "allow" ||
		ro.GetShadow().GetCandidate() || !slices.Equal(ro.GetShadow().GetPolicies(), []string{"p/permit"}) || !slices.Equal(r.GetPolicyVersions(), []string{"p@2"}) {
		t.Fatalf("record: rollout %v, versions %v", ro, r.GetPolicyVersions())
	}
}
