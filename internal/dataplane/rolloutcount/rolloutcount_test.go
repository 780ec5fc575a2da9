package rolloutcount_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/rolloutcount"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

type records struct {
	mu  sync.Mutex
	got []*auditv1.Record
}

func (r *records) Write(_ context.Context, rec *auditv1.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec)
	return nil
}

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func outcome(agent, cohort string, a2d bool, sec int) stages.RolloutOutcome {
	return stages.RolloutOutcome{Rollout: "r1", Stage: "canary", BasisPoints: 2500, Agent: agent, Tool: "up__send", Cohort: cohort,
		AllowToDeny: a2d, Forwarded: !a2d, Time: t0.Add(time.Duration(sec) * time.Second)}
}

func TestCountsAndSummaries(t *testing.T) {
	w := &records{}
	r := rolloutcount.New(rolloutcount.Options{Writer: w, Dataplane: "dp-1", Samples: 2, Now: func() time.Time { return t0.Add(time.Minute) }})
	var sampled []bool
	for i, o := range []stages.RolloutOutcome{
		outcome("a", "canary", true, 3),
		outcome("a", "canary", true, 1),
		outcome("a", "canary", true, 2),
		outcome("a", "canary", false, 4),
		outcome("b", "baseline", false, 5),
	} {
		if i == 3 {
			o.UpstreamError = true
		}
		sampled = append(sampled, r.Record(o))
	}
	shadow := outcome("a", "shadow", false, 0)
	shadow.Stage, shadow.BasisPoints, shadow.EvalError = "shadow", 0, true
	sampled = append(sampled, r.Record(shadow))
	if fmt.Sprint(sampled) != "[true true false false false true]" {
		t.Fatalf("sampled %v: want the first two differing calls of a row, and the first evaluation error", sampled)
	}
	r.Flush(context.Background())
	if len(w.got) != 2 {
		t.Fatalf("%d summaries, want one per step", len(w.got))
	}
	canary := w.got[0].GetRolloutSummary()
	if w.got[0].GetKind() != auditv1.EventKind_EVENT_KIND_ROLLOUT_SUMMARY || w.got[0].GetDataplane() != "dp-1" ||
		canary.GetRollout() != "r1" || canary.GetStage() != "canary" || canary.GetCanaryBasisPoints() != 2500 ||
		!canary.GetFirst().AsTime().Equal(t0.Add(time.Second)) || !canary.GetLast().AsTime().Equal(t0.Add(5*time.Second)) {
		t.Fatalf("summary %v", w.got[0])
	}
	got := fmt.Sprint(canary.GetCounts())
	want := fmt.Sprint([]*auditv1.RolloutCount{
		{Agent: "a", Tool: "up__send", Cohort: "canary", Calls: 4, AllowToDeny: 3, Forwarded: 1, UpstreamErrors: 1},
		{Agent: "b", Tool: "up__send", Cohort: "baseline", Calls: 1, Forwarded: 1},
	})
	if got != want {
		t.Fatalf("counts %s, want %s", got, want)
	}
	if s := w.got[1].GetRolloutSummary(); s.GetStage() != "shadow" || s.GetCounts()[0].GetEvalErrors() != 1 {
		t.Fatalf("shadow summary %v", s)
	}
	// A flush starts a new interval: nothing to write, samples again.
	r.Flush(context.Background())
	if len(w.got) != 2 {
		t.Fatalf("an empty interval wrote %d summaries", len(w.got)-2)
	}
	if !r.Record(outcome("a", "canary", true, 9)) {
		t.Fatal("a new interval samples again")
	}
}

func TestRowsAreBounded(t *testing.T) {
	w := &records{}
	r := rolloutcount.New(rolloutcount.Options{Writer: w, MaxKeys: 3})
	for i := range 10 {
		r.Record(outcome(fmt.Sprintf("agent-%d", i), "canary", false, i))
	}
	r.Flush(context.Background())
	counts := w.got[0].GetRolloutSummary().GetCounts()
	var calls uint64
	for _, c := range counts {
		calls += c.GetCalls()
	}
	if len(counts) != 4 || calls != 10 || counts[3].GetAgent() != rolloutcount.Other || counts[3].GetCalls() != 7 {
		t.Fatalf("counts %v: want 3 agents and the other 7 calls under %q", counts, rolloutcount.Other)
	}
}

func TestRunFlushesOnStop(t *testing.T) {
	w := &records{}
	r := rolloutcount.New(rolloutcount.Options{Writer: w, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	r.Record(outcome("a", "canary", false, 0))
	cancel()
	<-done
	if len(w.got) != 1 {
		t.Fatalf("%d summaries written at stop, want 1", len(w.got))
	}
}
