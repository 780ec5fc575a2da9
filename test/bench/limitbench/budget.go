package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/dataplane/limit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// budgetResult is the budget reservation's cost per call.
type budgetResult struct {
	p50, p99 time.Duration
	budgets  int
}

// regrantEvery is how many calls run between two lease rounds (demand
// report and slices), outside the measured time, as Fleet.Run does every
// refresh.
const regrantEvery = 100_000

// measureBudgets measures what the Limit stage does per call with budgets:
// limit.Fleet reserving a model call's worst case (a call, its tokens and
// their cost) from the slices of two budgets — cost and tokens per agent
// per month, calls per team per day — and settling on what it consumed,
// over keys active agents (in 20 teams), every key holding a valid slice.
func measureBudgets(calls, keys int) (budgetResult, error) {
	bs := []*configv1.Budget{
		{Meta: &configv1.ResourceMeta{Name: "agent-monthly"}, Scope: configv1.BudgetScope_BUDGET_SCOPE_AGENT, Window: configv1.BudgetWindow_BUDGET_WINDOW_MONTH,
			MaxCostMicros: 1 << 50, MaxTokens: 1 << 60},
		{Meta: &configv1.ResourceMeta{Name: "team-daily"}, Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM, Window: configv1.BudgetWindow_BUDGET_WINDOW_DAY,
			MaxCalls: 1 << 60},
	}
	f := limit.NewFleet(time.Now, nil)
	f.Configure(bs)
	start := time.Now()
	cs := make([]*pipeline.Call, keys)
	for i := range cs {
		cs[i] = &pipeline.Call{Op: pipeline.OpCall, Start: start,
			Agent:  &configv1.Agent{Meta: &configv1.ResourceMeta{Name: fmt.Sprintf("agent-%04d", i)}, Team: fmt.Sprintf("team-%02d", i%20)},
			Target: pipeline.Target{Kind: pipeline.KindModel, Name: "openai/gpt-4o", Upstream: "openai", Own: "gpt-4o"}}
	}
	worst := limit.Units{Calls: 1, Tokens: 5000, Cost: 30_000_000}
	actual := limit.Units{Calls: 1, Tokens: 1200, Cost: 7_000_000}
	ctx := context.Background()
	// A lease round: every slot reports, and the leader grants each a
	// slice far larger than the run spends.
	regrant := func() {
		var slices []*configsyncv1.BudgetSlice
		for _, d := range f.Demands() {
			slices = append(slices, &configsyncv1.BudgetSlice{Budget: d.GetBudget(), Key: d.GetKey(), WindowStart: d.GetWindowStart(),
				Balance:     &configsyncv1.BudgetUnits{Calls: 1 << 50, Tokens: 1 << 50, CostNanos: 1 << 60},
				Unallocated: &configsyncv1.BudgetUnits{Calls: 1 << 50, Tokens: 1 << 50, CostNanos: 1 << 60}})
		}
		f.Apply(&configsyncv1.LeaseResponse{Dataplanes: 1, ValidFor: durationpb.New(limit.DefaultLeaseDuration), BudgetSlices: slices}, time.Now())
	}
	for _, c := range cs { // create every slot, then slice it
		r, err := f.Reserve(ctx, c, worst)
		if err != nil {
			return budgetResult{}, fmt.Errorf("reserve on the safe share: %w", err)
		}
		r.Cancel()
	}
	regrant()
	day, _ := budgetkey.Window(bs[1].GetWindow(), start, time.UTC)
	for _, c := range cs[:min(len(cs), 20)] {
		if s, ok := f.SliceOf("team-daily", "team "+c.Agent.GetTeam(), day); !ok || !s.Valid {
			return budgetResult{}, fmt.Errorf("team %s holds no valid slice", c.Agent.GetTeam())
		}
	}
	lat := make([]time.Duration, calls)
	runtime.GC()
	for i := range calls {
		if i > 0 && i%regrantEvery == 0 {
			regrant()
		}
		c := cs[i%len(cs)]
		t0 := time.Now()
		r, err := f.Reserve(ctx, c, worst)
		if err == nil {
			r.Settle(actual)
		}
		lat[i] = time.Since(t0)
		if err != nil {
			return budgetResult{}, fmt.Errorf("call %d: %w", i, err)
		}
	}
	slices.Sort(lat)
	return budgetResult{p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], budgets: len(bs)}, nil
}
