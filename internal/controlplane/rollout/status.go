package rollout

import (
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/rolloutgate"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Status is what a node's audit store counts for a rollout and how its
// gates stand: what `gwctl rollout status` shows.
type Status struct {
	// Totals per step and cohort, shadow first.
	Totals []Row
	// Gates judged for the current step (or the last one measured, for a
	// rollout that is over).
	Gates []rolloutgate.Result
	// Next says what the rollout waits for.
	Next string
	// Differences are the agents and tools with the most decision
	// changes.
	Differences []Row
}

// StatusOf tallies ro's counts in recs and judges its gates at now.
func StatusOf(ro *configv1.Rollout, recs Records, now time.Time) (Status, error) {
	t := NewTally(ro)
	if err := t.Update(recs, ro.GetMeta().GetCreateTime().AsTime()); err != nil {
		return Status{}, err
	}
	var s Status
	for _, step := range t.Steps() {
		for _, cohort := range []string{CohortShadow, CohortCanary, CohortBaseline} {
			c := t.Total(step, cohort)
			if c.Calls > 0 {
				s.Totals = append(s.Totals, Row{Step: step, Cohort: cohort, Counts: c})
			}
		}
	}
	s.Differences = t.Differences(20)
	gates, err := rolloutgate.Parse(ro.GetPlan().GetGates())
	if err != nil {
		return s, nil //nolint:nilerr // refused at write time; show the counts all the same
	}
	step := current(ro)
	if !state.Active(ro) {
		if steps := t.Steps(); len(steps) > 0 {
			step = steps[len(steps)-1]
		}
	}
	s.Gates = gates.Judge(t.Measured(step))
	switch {
	case !state.Active(ro):
		s.Next = state.StageName(ro.GetStage())
		if ro.GetReason() != "" {
			s.Next += ": " + ro.GetReason()
		}
	case ro.GetPaused():
		s.Next = "paused at " + StepName(step) + " (gwctl rollout resume)"
	default:
		if b, where, ok := Breach(gates, t); ok {
			s.Next = "rolling back: " + b.Reason(where)
			break
		}
		due, wait := Due(ro, gates, t, now)
		if due {
			wait = fmt.Sprintf("%s is due to end now", StepName(step))
		}
		s.Next = wait + "; then " + nextStep(ro)
	}
	return s, nil
}

// nextStep words where a promotion of ro leads.
func nextStep(ro *configv1.Rollout) string {
	steps := ro.GetPlan().GetCanaryBasisPoints()
	switch {
	case ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_SHADOW && len(steps) > 0:
		return "canary " + state.FormatShare(steps[0])
	case ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_CANARY && int(ro.GetCanaryStep())+1 < len(steps):
		return "canary " + state.FormatShare(steps[ro.GetCanaryStep()+1])
	}
	return "complete"
}

// Alert is an automatic rollback, as alerting reports it.
type Alert struct {
	Time      time.Time
	Rollout   string
	PolicySet string
	// FromStage is where the rollout was ("shadow", "canary").
	FromStage string
	Reason    string
}

// AlertOf is the seam alerting reads: it reports whether an audit record
// (from the control plane's own chain, EVENT_KIND_ROLLOUT) is an
// automatic rollback, and the alert to send for it. Every node holds
// these records, so whichever node sends alerts finds each one once by
// following its audit store.
func AlertOf(r *auditv1.Record) (Alert, bool) {
	ev := r.GetRolloutEvent()
	if r.GetKind() != auditv1.EventKind_EVENT_KIND_ROLLOUT || ev == nil || ev.GetAction() != "rollback" || !ev.GetAutomatic() ||
		ev.GetWrite().GetErrorCode() != "" {
		return Alert{}, false
	}
	return Alert{
		Time: r.GetTime().AsTime(), Rollout: ev.GetRollout(), PolicySet: ev.GetPolicySet(),
		FromStage: ev.GetFromStage(), Reason: ev.GetReason(),
	}, true
}
