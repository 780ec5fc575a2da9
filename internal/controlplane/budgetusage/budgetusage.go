// Package budgetusage is the audit consumer that makes budgets durable: it
// folds every stored call record into the usage of each budget that
// counts the call, per key and calendar window (config.v1.BudgetUsage),
// in the same command that moves its cursor, so each record is counted
// exactly once and the usage survives every restart and failover.
//
// What a record counts, from its audit record: a call (operation "call":
// a tool call, an A2A message, a model call — not a list, a read, a task
// lookup or a session operation, which the data planes' Limit stage does
// not reserve either) that produced a result — its upstream answered, with
// success or an error — counts one call; a model call also counts its
// input plus output tokens and its cost. Calls refused or failed before
// their upstream answered count nothing, as on the data planes, which
// settle a call's reservation on the same rule. Which budgets and keys a
// record counts under is package budgetkey's, shared with the data
// planes; a record counts in the window of its time (when its call
// started), in the budget's time zone.
package budgetusage

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// OpCall is the operation of the records that count (pipeline.OpCall on
// the data planes).
const OpCall = "call"

// Name is the consumer's name (its cursor's).
const Name = "budget"

// ErrNotActive is what Consume returns until every voter supports cluster
// version 7: the batch waits (its records are counted once it is active).
var ErrNotActive = errors.New("budget usage waits until every control-plane voter supports cluster version 7")

// Consumer derives budget usage. Now is the clock windows are judged
// ended by (nil: time.Now); the state machine drops ended windows by the
// command's time as well.
type Consumer struct {
	Now func() time.Time
}

var _ auditconsumer.Consumer = Consumer{}

// Name implements auditconsumer.Consumer.
func (Consumer) Name() string { return Name }

// Pending implements auditconsumer.Consumer: it has no work without
// records.
func (Consumer) Pending(*state.State) bool { return false }

// Counts reports whether r's call counts against budgets (see the package
// doc).
func Counts(r *auditv1.Record) bool {
	return r.GetKind() == auditv1.EventKind_EVENT_KIND_CALL && r.GetOperation() == OpCall && r.GetUpstreamLatency() != nil
}

type budget struct {
	def *configv1.Budget
	loc *time.Location
}

type entryID struct {
	key   string
	start int64
}

// Consume implements auditconsumer.Consumer.
func (c Consumer) Consume(_ context.Context, b *auditconsumer.Batch) error {
	if !clusterversion.Supports(b.State.Voters(), clusterversion.FleetBudgets) {
		return ErrNotActive
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	var budgets []budget
	b.State.Each(resource.Budget, func(r *fsmv1.Resource) bool {
		budgets = append(budgets, budget{def: r.GetBudget(), loc: budgetkey.Location(r.GetBudget().GetTimeZone())})
		return true
	})
	if len(budgets) == 0 {
		return nil
	}
	sums := map[string]map[entryID]*configv1.BudgetKeyUsage{}
	for _, r := range b.Records {
		if !Counts(r) {
			continue
		}
		call := budgetkey.Call{Agent: r.GetAgent(), Team: r.GetTeam(), User: r.GetUser(), Upstream: r.GetUpstream(), Target: r.GetTool()}
		at := r.GetTime().AsTime()
		for _, bg := range budgets {
			key, ok := budgetkey.Key(bg.def, call)
			if !ok {
				continue
			}
			start, end := budgetkey.Window(bg.def.GetWindow(), at, bg.loc)
			if !end.After(now) {
				continue // its window ended: nothing enforces it any more
			}
			name := bg.def.GetMeta().GetName()
			m := sums[name]
			if m == nil {
				m = map[entryID]*configv1.BudgetKeyUsage{}
				sums[name] = m
			}
			id := entryID{key, start.Unix()}
			e := m[id]
			if e == nil {
				e = &configv1.BudgetKeyUsage{Key: key, WindowStart: start.Unix(), WindowEnd: end.Unix()}
				m[id] = e
			}
			e.Calls++
			if u := r.GetUsage(); u != nil {
				e.Tokens = addSat(e.Tokens, addSat(max(u.GetInputTokens(), 0), max(u.GetOutputTokens(), 0)))
				e.CostNanos = addSat(e.CostNanos, max(u.GetCostNanos(), 0))
			}
		}
	}
	names := slices.Sorted(maps.Keys(sums))
	if len(names) > limits.BudgetUsageBudgets {
		if len(b.Records) > 1 {
			return auditconsumer.ErrBatchTooLarge
		}
		// One record adds one entry per budget: with more budgets than a
		// command may name, the first in name order count it.
		names = names[:limits.BudgetUsageBudgets]
	}
	for _, name := range names {
		m := sums[name]
		if len(m) > limits.BudgetUsageKeys {
			return auditconsumer.ErrBatchTooLarge // more than one record
		}
		add := slices.SortedFunc(maps.Values(m), func(a, b *configv1.BudgetKeyUsage) int {
			return cmp.Or(cmp.Compare(a.GetKey(), b.GetKey()), cmp.Compare(a.GetWindowStart(), b.GetWindowStart()))
		})
		b.Out.BudgetUsage = append(b.Out.BudgetUsage, &fsmv1.BudgetUsageDelta{Budget: name, Add: add})
	}
	return nil
}

func addSat(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
