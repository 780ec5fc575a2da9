package limit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/limit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// refusals counts BudgetRefused by budget and mode.
type refusals struct {
	mu      sync.Mutex
	enforce map[string]int
	shadow  map[string]int
}

func (r *refusals) BudgetAdmitted(string, bool) {}
func (r *refusals) BudgetSlice(string)          {}
func (r *refusals) BudgetFleetSize(int64)       {}
func (r *refusals) BudgetRefused(budget string, shadow bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if shadow {
		r.shadow[budget]++
	} else {
		r.enforce[budget]++
	}
}

func withMode(b *configv1.Budget, mode configv1.BudgetMode) *configv1.Budget {
	b.Mode = mode
	return b
}

// A shadow budget admits every call, notes on the calls beyond its limit
// that it would have refused them (and counts them as refusals), and
// counts every call exactly as an enforced one: switched to enforce, it
// refuses at once what the shadow calls spent.
func TestShadowBudgetAdmitsAndCounts(t *testing.T) {
	const limitCalls, calls = 3, 5
	type reserver interface {
		limit.Reserver
		Configure([]*configv1.Budget)
	}
	for _, tt := range []struct {
		name string
		make func(*refusals) reserver
	}{
		{"fleet", func(m *refusals) reserver { return limit.NewFleet(func() time.Time { return t0 }, m) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &refusals{enforce: map[string]int{}, shadow: map[string]int{}}
			r := tt.make(m)
			shadow := withMode(callsBudget(limitCalls), configv1.BudgetMode_BUDGET_MODE_SHADOW)
			// An enforced budget with room beside it must admit too.
			roomy := budget("roomy", configv1.BudgetScope_BUDGET_SCOPE_AGENT, configv1.BudgetWindow_BUDGET_WINDOW_DAY, func(b *configv1.Budget) { b.MaxCalls = 100 })
			r.Configure([]*configv1.Budget{shadow, roomy})
			for i := range calls {
				c := call("a", "ops", t0)
				res, err := r.Reserve(context.Background(), c, oneCall)
				if err != nil {
					t.Fatalf("call %d: %v; a shadow budget refuses nothing", i+1, err)
				}
				res.Settle(oneCall)
				want := []string(nil)
				if i >= limitCalls {
					want = []string{"calls"}
				}
				if !slices.Equal(c.ShadowBudgets, want) {
					t.Errorf("call %d: shadow budgets %q, want %q", i+1, c.ShadowBudgets, want)
				}
			}
			if tt.name == "fleet" && (m.shadow["calls"] != calls-limitCalls || len(m.enforce) != 0) {
				t.Errorf("refusals counted: shadow %v enforce %v; want %d shadow refusals of calls, none enforced", m.shadow, m.enforce, calls-limitCalls)
			}
			r.Configure([]*configv1.Budget{withMode(callsBudget(limitCalls), configv1.BudgetMode_BUDGET_MODE_ENFORCE), roomy})
			_, err := r.Reserve(context.Background(), call("a", "ops", t0), oneCall)
			if rf := refusal(t, err); rf.Reason != pipeline.ReasonBudgetExhausted {
				t.Fatalf("enforced after the shadow calls: %+v, want budget_exhausted (the shadow calls counted)", rf)
			}
			if tt.name == "fleet" && m.enforce["calls"] != 1 {
				t.Errorf("enforced refusals counted %v, want 1 of calls", m.enforce)
			}
		})
	}
}

// A call an enforced budget refuses is refused even when a shadow budget
// would admit it, and holds nothing in the shadow budget.
func TestEnforcedBudgetRefusesBesideShadow(t *testing.T) {
	f := limit.NewFleet(func() time.Time { return t0 }, nil)
	tight := budget("tight", configv1.BudgetScope_BUDGET_SCOPE_AGENT, configv1.BudgetWindow_BUDGET_WINDOW_DAY, func(b *configv1.Budget) { b.MaxCalls = 1 })
	f.Configure([]*configv1.Budget{withMode(callsBudget(10), configv1.BudgetMode_BUDGET_MODE_SHADOW), tight})
	if n, r := admit(t, f, t0, 3); n != 1 || r == nil || r.Reason != pipeline.ReasonBudgetExhausted {
		t.Fatalf("admitted %d of 3 (want 1: the enforced budget's), last refusal %+v", n, r)
	}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if s, ok := f.SliceOf("calls", "team ops", start); !ok || s.SafeUsed.Calls != 1 {
		t.Fatalf("shadow budget's slot %+v (found %v): want 1 call spent, the admitted one", s, ok)
	}
}
