package rollout

import (
	"cmp"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/rolloutgate"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Records is the audit store as the rollout controller reads it. Its
// methods must be safe for concurrent use; auditstore.Store is one.
type Records interface {
	// Since is the cursor of the first segment that may hold records at
	// or after t.
	Since(t time.Time) string
	// Follow reads up to limit matching records after cursor and returns
	// the cursor after the last record read.
	Follow(f auditstore.Filter, cursor string, limit int) ([]*auditv1.Record, string, error)
}

var _ Records = (*auditstore.Store)(nil)

// Cohorts of a count (see portcullis.audit.v1.RolloutCount).
const (
	CohortShadow   = "shadow"
	CohortCanary   = "canary"
	CohortBaseline = "baseline"
)

// Step names one stage or canary step of a rollout: "shadow", or
// "canary" at a share in basis points.
type Step struct {
	Stage       string
	BasisPoints uint32
}

// Row is one agent's calls of one tool in one cohort of one step.
type Row struct {
	Step   Step
	Agent  string
	Tool   string
	Cohort string
	rolloutgate.Counts
}

type rowKey struct {
	step                Step
	agent, tool, cohort string
}

// maxRows bounds the rows a tally keeps; calls beyond are counted under
// agent "other".
const maxRows = 100_000

// Tally adds up the counts data planes uploaded for one rollout, from the
// replicated audit store. It reads each summary once: Update continues
// where the last one stopped. Not safe for concurrent use.
type Tally struct {
	id     string
	cursor string
	begun  bool
	rows   map[rowKey]*Row
	steps  []Step
}

// NewTally starts the tally of rollout ro.
func NewTally(ro *configv1.Rollout) *Tally {
	return &Tally{id: ro.GetMeta().GetName(), rows: map[rowKey]*Row{}}
}

// ID is the rollout tallied.
func (t *Tally) ID() string { return t.id }

// margin is how far before a rollout's start the store is read: a data
// plane's clock may run behind the control plane's.
const margin = time.Hour

// Update reads the summaries uploaded since the last update.
func (t *Tally) Update(recs Records, started time.Time) error {
	if !t.begun {
		t.cursor, t.begun = recs.Since(started.Add(-margin)), true
	}
	f := auditstore.Filter{Kind: auditv1.EventKind_EVENT_KIND_ROLLOUT_SUMMARY}
	for {
		batch, next, err := recs.Follow(f, t.cursor, 1000)
		if err != nil {
			return err
		}
		t.cursor = next
		for _, r := range batch {
			t.add(r.GetRolloutSummary())
		}
		if len(batch) < 1000 {
			return nil
		}
	}
}

func (t *Tally) add(s *auditv1.RolloutSummary) {
	if s.GetRollout() != t.id {
		return
	}
	step := Step{Stage: s.GetStage(), BasisPoints: s.GetCanaryBasisPoints()}
	if !slices.Contains(t.steps, step) {
		t.steps = append(t.steps, step)
	}
	for _, c := range s.GetCounts() {
		k := rowKey{step: step, agent: c.GetAgent(), tool: c.GetTool(), cohort: c.GetCohort()}
		row := t.rows[k]
		if row == nil {
			if len(t.rows) >= maxRows {
				k.agent, k.tool = "other", "other"
				row = t.rows[k]
			}
			if row == nil {
				row = &Row{Step: step, Agent: k.agent, Tool: k.tool, Cohort: k.cohort}
				t.rows[k] = row
			}
		}
		row.Add(rolloutgate.Counts{
			Calls: c.GetCalls(), AllowToDeny: c.GetAllowToDeny(), DenyToAllow: c.GetDenyToAllow(),
			EvalErrors: c.GetEvalErrors(), Forwarded: c.GetForwarded(), UpstreamErrors: c.GetUpstreamErrors(),
		})
	}
}

// Steps lists the steps with counts, shadow first, then canary by share.
func (t *Tally) Steps() []Step {
	out := slices.Clone(t.steps)
	slices.SortFunc(out, func(a, b Step) int {
		if a.Stage != b.Stage {
			if a.Stage == CohortShadow {
				return -1
			}
			if b.Stage == CohortShadow {
				return 1
			}
			return cmp.Compare(a.Stage, b.Stage)
		}
		return cmp.Compare(a.BasisPoints, b.BasisPoints)
	})
	return out
}

// Total adds up one cohort of one step.
func (t *Tally) Total(step Step, cohort string) rolloutgate.Counts {
	var c rolloutgate.Counts
	for k, r := range t.rows {
		if k.step == step && k.cohort == cohort {
			c.Add(r.Counts)
		}
	}
	return c
}

// Measured is what gates judge for one step: in shadow the shadow
// cohort; in canary the canary cohort against the baseline.
func (t *Tally) Measured(step Step) rolloutgate.Stage {
	if step.Stage == CohortCanary {
		return rolloutgate.Stage{Canary: true, Compared: t.Total(step, CohortCanary), Baseline: t.Total(step, CohortBaseline)}
	}
	return rolloutgate.Stage{Compared: t.Total(step, CohortShadow)}
}

// Differences are the rows with decision changes or evaluation errors,
// most first, at most n.
func (t *Tally) Differences(n int) []Row {
	var out []Row
	for _, r := range t.rows {
		if r.AllowToDeny+r.DenyToAllow+r.EvalErrors > 0 {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Row) int {
		da, db := a.AllowToDeny+a.DenyToAllow+a.EvalErrors, b.AllowToDeny+b.DenyToAllow+b.EvalErrors
		if da != db {
			return cmp.Compare(db, da)
		}
		if c := cmp.Compare(a.Agent, b.Agent); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Tool, b.Tool); c != 0 {
			return c
		}
		return cmp.Compare(a.Step.BasisPoints, b.Step.BasisPoints)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
