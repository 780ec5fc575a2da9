package state

import (
	"cmp"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
)

// checkBudgetUsage checks a batch's budget usage against the limits on a
// command: too many budgets or entries is INVALID_ARGUMENT, which makes
// the runner derive the batch again from fewer records.
func checkBudgetUsage(deltas []*fsmv1.BudgetUsageDelta) *fsmv1.Error {
	if len(deltas) > limits.BudgetUsageBudgets {
		return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a batch adds usage to at most %d budgets", limits.BudgetUsageBudgets)
	}
	for _, d := range deltas {
		if err := limits.BudgetKeyUsages("budget_usage["+d.GetBudget()+"].add", d.GetAdd()); err != nil {
			return errf(fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
		}
	}
	return nil
}

// addBudgetUsage folds a batch's consumption into each budget's usage, in
// the transaction that moves the consumer's cursor. Units of a budget
// that no longer exists, and of windows that ended by the command's
// time, are dropped; ended windows are dropped from the usage too, so it
// holds current windows only. A budget's usage tracks at most
// limits.BudgetUsageKeys key windows: the calls of further keys are
// counted in untracked_calls (and the leader grants such keys nothing).
func (t *txn) addBudgetUsage(deltas []*fsmv1.BudgetUsageDelta) *fsmv1.Error {
	if err := checkBudgetUsage(deltas); err != nil {
		return err
	}
	now := t.cmd.GetTime().AsTime().Unix()
	for _, d := range deltas {
		name := d.GetBudget()
		if _, ok := t.get(resource.Budget, name); !ok {
			continue // deleted since the records were written
		}
		old, exists := t.get(resource.BudgetUsage, name)
		u := &configv1.BudgetUsage{Meta: &configv1.ResourceMeta{Name: name}}
		if exists {
			u = proto.CloneOf(old.GetBudgetUsage())
		} else {
			old = nil
		}
		type id struct {
			key   string
			start int64
		}
		byID := make(map[id]*configv1.BudgetKeyUsage, len(u.GetKeys())+len(d.GetAdd()))
		for _, k := range u.GetKeys() {
			if k.GetWindowEnd() > now {
				byID[id{k.GetKey(), k.GetWindowStart()}] = k
			}
		}
		for _, a := range d.GetAdd() {
			if a.GetWindowEnd() <= now {
				continue
			}
			k := byID[id{a.GetKey(), a.GetWindowStart()}]
			if k == nil {
				if len(byID) >= limits.BudgetUsageKeys {
					u.UntrackedCalls = addSatU(u.GetUntrackedCalls(), a.GetCalls())
					continue
				}
				k = &configv1.BudgetKeyUsage{Key: a.GetKey(), WindowStart: a.GetWindowStart(), WindowEnd: a.GetWindowEnd()}
				byID[id{a.GetKey(), a.GetWindowStart()}] = k
			}
			k.Calls = addSat(k.GetCalls(), a.GetCalls())
			k.Tokens = addSat(k.GetTokens(), a.GetTokens())
			k.CostNanos = addSat(k.GetCostNanos(), a.GetCostNanos())
		}
		keys := make([]*configv1.BudgetKeyUsage, 0, len(byID))
		for _, k := range byID {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b *configv1.BudgetKeyUsage) int {
			return cmp.Or(cmp.Compare(a.GetKey(), b.GetKey()), cmp.Compare(a.GetWindowStart(), b.GetWindowStart()))
		})
		u.Keys = keys
		r := resource.Wrap(u)
		t.stamp(old, r)
		t.insert(r)
	}
	return nil
}

// beforeDeleteBudget drops the budget's usage with it: a budget created
// again under the name starts from nothing.
func beforeDeleteBudget(t *txn, old *fsmv1.Resource) *fsmv1.Error {
	if _, ok := t.get(resource.BudgetUsage, resource.Name(old)); ok {
		t.remove(resource.BudgetUsage, resource.Name(old))
	}
	return nil
}

func beforeDeleteBudgetUsage(*txn, *fsmv1.Resource) *fsmv1.Error {
	return errf(fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, "a budget's usage cannot be deleted: it is derived from the audit records (delete the budget, or wait for its window to end)")
}

// BudgetUsed returns what key consumed of budget in the window starting at
// start (Unix seconds), from the replicated usage.
func (s *State) BudgetUsed(budget, key string, start int64) (*configv1.BudgetKeyUsage, bool) {
	r, ok := s.Get(resource.BudgetUsage, budget)
	if !ok {
		return nil, false
	}
	keys := r.GetBudgetUsage().GetKeys()
	i, found := slices.BinarySearchFunc(keys, struct {
		key   string
		start int64
	}{key, start}, func(k *configv1.BudgetKeyUsage, want struct {
		key   string
		start int64
	}) int {
		return cmp.Or(cmp.Compare(k.GetKey(), want.key), cmp.Compare(k.GetWindowStart(), want.start))
	})
	if !found {
		return nil, false
	}
	return keys[i], true
}

func addSat(a, b int64) int64 {
	if b < 0 {
		return a
	}
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}

func addSatU(a uint64, b int64) uint64 {
	if b <= 0 {
		return a
	}
	if s := a + uint64(b); s >= a {
		return s
	}
	return 1<<64 - 1
}
