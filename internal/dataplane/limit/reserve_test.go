package limit_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/limit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

var t0 = time.Date(2026, 3, 31, 21, 30, 0, 0, time.UTC)

func call(agent, team string, at time.Time) *pipeline.Call {
	return &pipeline.Call{
		Op: pipeline.OpCall, Start: at,
		Agent:  &configv1.Agent{Meta: &configv1.ResourceMeta{Name: agent}, Team: team},
		Target: pipeline.Target{Kind: pipeline.KindModel, Name: "openai/gpt-4o", Upstream: "openai", Own: "gpt-4o"},
	}
}

func budget(name string, scope configv1.BudgetScope, window configv1.BudgetWindow, set func(*configv1.Budget)) *configv1.Budget {
	b := &configv1.Budget{Meta: &configv1.ResourceMeta{Name: name}, Scope: scope, Window: window}
	set(b)
	return b
}

func refusal(t *testing.T, err error) *pipeline.Refusal {
	t.Helper()
	var r *pipeline.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("err = %v, want a refusal", err)
	}
	return r
}

// Parallel calls reserve their worst case first, so together they never
// take a key over its budget, whatever their order.
func TestParallelCallsCannotOvershoot(t *testing.T) {
	l := limit.NewFleet(func() time.Time { return t0 }, nil)
	l.Configure([]*configv1.Budget{budget("monthly", configv1.BudgetScope_BUDGET_SCOPE_AGENT, configv1.BudgetWindow_BUDGET_WINDOW_MONTH,
		func(b *configv1.Budget) { b.MaxCostMicros = 1_000_000 })}) // 1.00
	worst := limit.Units{Calls: 1, Tokens: 100, Cost: 30_000_000} // 0.03 each: 33 fit
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			r, err := l.Reserve(context.Background(), call("a", "", t0), worst)
			if err != nil {
				if ref := refusal(t, err); ref.Reason != pipeline.ReasonBudgetExhausted {
					t.Errorf("reason %s", ref.Reason)
				}
				return
			}
			admitted.Add(1)
			r.Settle(worst)
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != 33 {
		t.Errorf("admitted %d calls, want 33", got)
	}
}

func TestSettleAndCancelFreeTheRest(t *testing.T) {
	l := limit.NewFleet(func() time.Time { return t0 }, nil)
	l.Configure([]*configv1.Budget{budget("tokens", configv1.BudgetScope_BUDGET_SCOPE_AGENT, configv1.BudgetWindow_BUDGET_WINDOW_DAY,
		func(b *configv1.Budget) { b.MaxTokens = 1000 })}) // the day: 1000 tokens
	ctx := context.Background()
	worst := limit.Units{Calls: 1, Tokens: 600}
	r1, err := l.Reserve(ctx, call("a", "", t0), worst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, call("a", "", t0), worst); err == nil {
		t.Fatal("a second worst case fits beside the first")
	}
	// Another agent has its own budget.
	if _, err := l.Reserve(ctx, call("b", "", t0), worst); err != nil {
		t.Fatalf("agent b: %v", err)
	}
	r1.Settle(limit.Units{Calls: 1, Tokens: 100}) // used far less
	r2, err := l.Reserve(ctx, call("a", "", t0), worst)
	if err != nil {
		t.Fatalf("after settling: %v", err)
	}
	r2.Cancel()
	r2.Settle(limit.Units{Tokens: 1 << 40}) // after Cancel: ignored
	if _, err := l.Reserve(ctx, call("a", "", t0), limit.Units{Tokens: 900}); err != nil {
		t.Fatalf("after cancelling: %v", err)
	}
}

// Windows are calendar windows in the budget's time zone; a refusal says
// when the window resets.
func TestWindowsResetInTheirTimeZone(t *testing.T) {
	now := t0
	l := limit.NewFleet(func() time.Time { return now }, nil)
	l.Configure([]*configv1.Budget{budget("oslo-month", configv1.BudgetScope_BUDGET_SCOPE_TEAM, configv1.BudgetWindow_BUDGET_WINDOW_MONTH,
		func(b *configv1.Budget) { b.MaxCalls = 1; b.TimeZone = "Europe/Oslo" })})
	ctx := context.Background()
	if _, err := l.Reserve(ctx, call("a", "research", now), limit.Units{Calls: 1}); err != nil {
		t.Fatal(err)
	}
	// 21:30 UTC on 31 March is 23:30 in Oslo (CEST): still March.
	_, err := l.Reserve(ctx, call("b", "research", now), limit.Units{Calls: 1})
	if ref := refusal(t, err); ref.Reason != pipeline.ReasonBudgetExhausted {
		t.Errorf("refusal %q, want %s", ref.Message, pipeline.ReasonBudgetExhausted)
	}
	// 21:59 UTC is 23:59 in Oslo: the same window.
	now = t0.Add(29 * time.Minute)
	if _, err := l.Reserve(ctx, call("b", "research", now), limit.Units{Calls: 1}); err == nil {
		t.Error("admitted a minute before midnight in Oslo; the March window is spent")
	}
	now = t0
	// An agent without a team is not counted by a team budget.
	if _, err := l.Reserve(ctx, call("c", "", now), limit.Units{Calls: 1}); err != nil {
		t.Errorf("an agent without a team: %v", err)
	}
	now = t0.Add(31 * time.Minute) // April in Oslo
	if _, err := l.Reserve(ctx, call("b", "research", now), limit.Units{Calls: 1}); err != nil {
		t.Errorf("in the next window: %v", err)
	}
}

func TestMatchesAndScopes(t *testing.T) {
	l := limit.NewFleet(func() time.Time { return t0 }, nil)
	l.Configure([]*configv1.Budget{
		budget("only-anthropic", configv1.BudgetScope_BUDGET_SCOPE_GLOBAL, configv1.BudgetWindow_BUDGET_WINDOW_MINUTE,
			func(b *configv1.Budget) { b.MaxCalls = 1; b.Upstreams = []string{"anthropic"} }),
		budget("per-user", configv1.BudgetScope_BUDGET_SCOPE_USER, configv1.BudgetWindow_BUDGET_WINDOW_HOUR,
			func(b *configv1.Budget) { b.MaxCalls = 1 }),
		budget("costly", configv1.BudgetScope_BUDGET_SCOPE_AGENT, configv1.BudgetWindow_BUDGET_WINDOW_DAY,
			func(b *configv1.Budget) { b.MaxCostMicros = 5_000_000; b.Agents = []string{"spender"} }),
	})
	ctx := context.Background()
	for range 3 { // no budget counts these: other upstream, no user, other agent
		if _, err := l.Reserve(ctx, call("a", "", t0), limit.Units{Calls: 1, Tokens: 10, Unpriced: true}); err != nil {
			t.Fatalf("unmatched call refused: %v", err)
		}
	}
	withUser := call("a", "", t0)
	withUser.User = &pipeline.User{Source: "idp", Name: "alice"}
	if _, err := l.Reserve(ctx, withUser, limit.Units{Calls: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, withUser, limit.Units{Calls: 1}); err == nil {
		t.Error("alice's second call this hour was admitted")
	}
	_, err := l.Reserve(ctx, call("spender", "", t0), limit.Units{Calls: 1, Tokens: 10, Unpriced: true})
	if ref := refusal(t, err); ref.Reason != pipeline.ReasonUnpriced {
		t.Errorf("an unpriced model under a cost budget: %s", ref.Reason)
	}
	_, err = l.Reserve(ctx, call("spender", "", t0), limit.Units{Calls: 1, Tokens: 10, Cost: 6_000_000_000})
	if ref := refusal(t, err); ref.RetryAfter != 0 || !strings.Contains(ref.Message, "more than the whole budget") {
		t.Errorf("a call larger than the budget: %q (retry after %s)", ref.Message, ref.RetryAfter)
	}
}
