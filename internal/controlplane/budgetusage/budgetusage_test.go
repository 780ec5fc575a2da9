package budgetusage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/budgetusage"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var now = time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC) // April 1st, 01:30 in Oslo

func withBudgets(t *testing.T, version clusterversion.Version, bs ...*configv1.Budget) *state.State {
	t.Helper()
	s := statetest.Run(t, state.New(), 1, statetest.Script()[:12])
	steps := []statetest.Step{
		{Name: "n1", Cmd: statetest.Update(statetest.NodeAt("n1", version))},
		{Name: "n2", Cmd: statetest.Update(statetest.NodeAt("n2", version))},
	}
	for _, b := range bs {
		steps = append(steps, statetest.Step{Name: b.GetMeta().GetName(), Cmd: statetest.Create(b)})
	}
	return statetest.Run(t, s, s.Index()+1, steps)
}

func rec(agent, team, tool string, at time.Time, ran bool, usage *auditv1.Usage) *auditv1.Record {
	r := &auditv1.Record{Kind: auditv1.EventKind_EVENT_KIND_CALL, Operation: "call", Agent: agent, Team: team, Tool: tool, Upstream: "openai", Time: timestamppb.New(at), Usage: usage}
	if ran {
		r.UpstreamLatency = durationpb.New(time.Millisecond)
	}
	return r
}

func TestConsumeFoldsCountedCalls(t *testing.T) {
	monthly := &configv1.Budget{Meta: statetest.Meta("ops-monthly"), Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM, Window: configv1.BudgetWindow_BUDGET_WINDOW_MONTH,
		TimeZone: "Europe/Oslo", MaxCalls: 100}
	perAgent := &configv1.Budget{Meta: statetest.Meta("per-agent"), Scope: configv1.BudgetScope_BUDGET_SCOPE_AGENT, Window: configv1.BudgetWindow_BUDGET_WINDOW_DAY,
		MaxTokens: 1000, Models: []string{"openai/gpt-4o"}}
	s := withBudgets(t, clusterversion.Current(), monthly, perAgent)
	b := &auditconsumer.Batch{State: s, Out: &fsmv1.ConsumeAudit{}, Records: []*auditv1.Record{
		rec("a1", "ops", "openai/gpt-4o", now, true, &auditv1.Usage{InputTokens: 10, OutputTokens: 5, CostNanos: 700}),
		rec("a1", "ops", "search__query", now, true, nil),           // an MCP call: one call, no tokens
		rec("a2", "ops", "openai/gpt-4o", now, false, nil),          // refused before its upstream: nothing
		rec("a3", "", "openai/gpt-4o", now, true, &auditv1.Usage{}), // no team
		{Kind: auditv1.EventKind_EVENT_KIND_LIST, Operation: "list", Team: "ops", Time: timestamppb.New(now), UpstreamLatency: durationpb.New(time.Millisecond)},
		{Kind: auditv1.EventKind_EVENT_KIND_CALL, Operation: "get", Team: "ops", Time: timestamppb.New(now), UpstreamLatency: durationpb.New(time.Millisecond)}, // an A2A task lookup
	}}
	if err := (budgetusage.Consumer{Now: func() time.Time { return now }}).Consume(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := map[string]*configv1.BudgetKeyUsage{}
	for _, d := range b.Out.GetBudgetUsage() {
		for _, k := range d.GetAdd() {
			got[d.GetBudget()+"|"+k.GetKey()] = k
		}
	}
	team := got["ops-monthly|team ops"]
	aprilOslo := time.Date(2026, 4, 1, 0, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	if team.GetCalls() != 2 || team.GetTokens() != 15 || team.GetCostNanos() != 700 || team.GetWindowStart() != aprilOslo.Unix() {
		t.Errorf("team ops: %v, want 2 calls, 15 tokens, 700 nano-units in April (Oslo)", team)
	}
	if a1 := got["per-agent|agent a1"]; a1.GetCalls() != 1 || a1.GetTokens() != 15 {
		t.Errorf("agent a1 under the model budget: %v, want its one model call", a1)
	}
	if a3 := got["per-agent|agent a3"]; a3.GetCalls() != 1 {
		t.Errorf("agent a3: %v", a3)
	}
	if len(got) != 3 {
		t.Errorf("entries %v, want 3", got)
	}
}

func TestConsumeWaitsForVersion7(t *testing.T) {
	s := withBudgets(t, clusterversion.RateLimits, &configv1.Budget{Meta: statetest.Meta("b"), Scope: configv1.BudgetScope_BUDGET_SCOPE_GLOBAL,
		Window: configv1.BudgetWindow_BUDGET_WINDOW_DAY, MaxCalls: 1})
	b := &auditconsumer.Batch{State: s, Out: &fsmv1.ConsumeAudit{}, Records: []*auditv1.Record{rec("a", "", "t", now, true, nil)}}
	if err := (budgetusage.Consumer{}).Consume(context.Background(), b); !errors.Is(err, budgetusage.ErrNotActive) {
		t.Errorf("before version 7: %v, want ErrNotActive", err)
	}
}
