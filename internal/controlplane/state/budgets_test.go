package state_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// v7 returns the base state with every voter at this binary's version, a
// budget "ops" and the budget consumer's cursor.
func v7(t *testing.T) *state.State {
	t.Helper()
	s := base(t)
	return statetest.Run(t, s, s.Index()+1, []statetest.Step{
		{Name: "n1", Cmd: statetest.Update(statetest.NodeAt("n1", clusterversion.Current()))},
		{Name: "n2", Cmd: statetest.Update(statetest.NodeAt("n2", clusterversion.Current()))},
		{Name: "budget", Cmd: statetest.Create(statetest.Budget("ops", 1_000_000))},
		{Name: "cursor", Cmd: statetest.Consume("budget", 0, nil)},
	})
}

func usageBatch(s *state.State, at time.Time, deltas ...*fsmv1.BudgetUsageDelta) *fsmv1.Command {
	r, _ := s.Get(resource.AuditCursor, "budget")
	c := statetest.Consume("budget", r.GetAuditCursor().GetBatches(), nil)
	c.GetConsumeAudit().BudgetUsage = deltas
	c.Time = timestamppb.New(at)
	return c
}

func TestBudgetUsageFolds(t *testing.T) {
	s := v7(t)
	now := statetest.Epoch.Add(time.Hour)
	month := statetest.BudgetUsageDelta("ops", "team research", 2) // the month of Epoch
	ended := &fsmv1.BudgetUsageDelta{Budget: "ops", Add: []*configv1.BudgetKeyUsage{{Key: "team research", WindowStart: 0, WindowEnd: 60, Calls: 50}}}
	s = mustApply(t, s, usageBatch(s, now, month, ended, statetest.BudgetUsageDelta("deleted", "team research", 7)))
	s = mustApply(t, s, usageBatch(s, now, statetest.BudgetUsageDelta("ops", "team research", 3)))
	got, ok := s.BudgetUsed("ops", "team research", month.GetAdd()[0].GetWindowStart())
	if !ok || got.GetCalls() != 5 || got.GetTokens() != 5000 || got.GetCostNanos() != 5000 {
		t.Fatalf("usage %v (found %v), want 5 calls, 5000 tokens, 5000 nano-units: the two batches summed, the ended window dropped", got, ok)
	}
	if _, ok := s.Get(resource.BudgetUsage, "deleted"); ok {
		t.Error("usage stored for a budget that does not exist")
	}

	// After the month ended, a batch drops the key's window.
	later := statetest.Epoch.AddDate(0, 2, 0)
	s = mustApply(t, s, usageBatch(s, later))
	s = mustApply(t, s, usageBatch(s, later, statetest.BudgetUsageDelta("ops", "team other", 0)))
	r, _ := s.Get(resource.BudgetUsage, "ops")
	if n := len(r.GetBudgetUsage().GetKeys()); n != 0 {
		t.Errorf("after the window ended the usage holds %d keys, want 0: %v", n, r.GetBudgetUsage().GetKeys())
	}

	// Deleting the budget deletes its usage.
	s = mustApply(t, s, statetest.Delete(resource.Budget, "ops"))
	if _, ok := s.Get(resource.BudgetUsage, "ops"); ok {
		t.Error("the usage outlived its budget")
	}
}

func TestBudgetUsageKeyLimit(t *testing.T) {
	s := v7(t)
	now := statetest.Epoch.Add(time.Hour)
	tmpl := statetest.BudgetUsageDelta("ops", "", 1).GetAdd()[0]
	full := &fsmv1.BudgetUsageDelta{Budget: "ops"}
	for i := range limits.BudgetUsageKeys {
		full.Add = append(full.Add, &configv1.BudgetKeyUsage{Key: fmt.Sprint("agent a", i), WindowStart: tmpl.GetWindowStart(), WindowEnd: tmpl.GetWindowEnd(), Calls: 1})
	}
	s = mustApply(t, s, usageBatch(s, now, full))
	more := &fsmv1.BudgetUsageDelta{Budget: "ops", Add: []*configv1.BudgetKeyUsage{
		{Key: "agent new", WindowStart: tmpl.GetWindowStart(), WindowEnd: tmpl.GetWindowEnd(), Calls: 4},
		{Key: "agent a1", WindowStart: tmpl.GetWindowStart(), WindowEnd: tmpl.GetWindowEnd(), Calls: 1},
	}}
	s = mustApply(t, s, usageBatch(s, now, more))
	r, _ := s.Get(resource.BudgetUsage, "ops")
	u := r.GetBudgetUsage()
	if len(u.GetKeys()) != limits.BudgetUsageKeys || u.GetUntrackedCalls() != 4 {
		t.Errorf("a full usage holds %d keys with %d untracked calls, want %d keys and the new key's 4 calls untracked", len(u.GetKeys()), u.GetUntrackedCalls(), limits.BudgetUsageKeys)
	}
	if k, _ := s.BudgetUsed("ops", "agent a1", tmpl.GetWindowStart()); k.GetCalls() != 2 {
		t.Errorf("a tracked key of a full usage counts %d calls, want 2", k.GetCalls())
	}
	// Over the limit of one batch: refused as bad input, nothing changes.
	full.Add = append(full.Add, full.Add[0])
	next, res := applyNext(s, usageBatch(s, now, full))
	if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("a batch over the limit: %v, want INVALID_ARGUMENT", res.GetError())
	}
	if d := diffResources(s, next); d != "" {
		t.Errorf("the refused batch changed %s", d)
	}
}

// A budget's mode is stored as written once every voter supports fleet
// budgets, and refused before then (an older replica would store it
// unchecked, and its data planes would enforce it); a mode that is
// neither enforce nor shadow is refused in Apply.
func TestBudgetMode(t *testing.T) {
	shadow := func(name string, mode configv1.BudgetMode) *configv1.Budget {
		b := statetest.Budget(name, 1)
		b.Mode = mode
		return b
	}
	for _, tt := range []struct {
		name     string
		voters   clusterversion.Version
		budget   *configv1.Budget
		accepted bool
	}{
		{"shadow, every voter at fleet budgets", clusterversion.FleetBudgets, shadow("s", configv1.BudgetMode_BUDGET_MODE_SHADOW), true},
		{"enforce, every voter at fleet budgets", clusterversion.FleetBudgets, shadow("e", configv1.BudgetMode_BUDGET_MODE_ENFORCE), true},
		{"shadow, a voter before fleet budgets", clusterversion.FleetBudgets - 1, shadow("s", configv1.BudgetMode_BUDGET_MODE_SHADOW), false},
		{"no mode, a voter before fleet budgets", clusterversion.FleetBudgets - 1, shadow("u", configv1.BudgetMode_BUDGET_MODE_UNSPECIFIED), true},
		{"an unknown mode", clusterversion.FleetBudgets, shadow("x", 9), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := withVoters(t, tt.voters)
			s, res := stamped(t, s, 200, statetest.Create(tt.budget))
			if got := res.GetError() == nil; got != tt.accepted {
				t.Fatalf("accepted = %v (%v), want %v", got, res.GetError(), tt.accepted)
			}
			if !tt.accepted {
				return
			}
			r, ok := s.Get(resource.Budget, tt.budget.GetMeta().GetName())
			if !ok || r.GetBudget().GetMode() != tt.budget.GetMode() {
				t.Fatalf("stored %v (found %v), want mode %v", r.GetBudget(), ok, tt.budget.GetMode())
			}
		})
	}
}
