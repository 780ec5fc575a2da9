package lease_test

import (
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/lease"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// budgetState is a state with every voter at this binary's version, a
// budget "calls" of max calls per team per month (UTC) and used calls of
// team ops in the month of at.
func budgetState(t *testing.T, max, used int64, at time.Time) *state.State {
	t.Helper()
	s := statetest.Run(t, state.New(), 1, statetest.Script()[:12])
	start, end := budgetkey.Window(configv1.BudgetWindow_BUDGET_WINDOW_MONTH, at, time.UTC)
	batch := statetest.Consume("budget", 1, nil)
	batch.Time = timestamppb.New(at)
	batch.GetConsumeAudit().BudgetUsage = []*fsmv1.BudgetUsageDelta{{Budget: "calls", Add: []*configv1.BudgetKeyUsage{
		{Key: "team ops", WindowStart: start.Unix(), WindowEnd: end.Unix(), Calls: used}}}}
	return statetest.Run(t, s, s.Index()+1, []statetest.Step{
		{Name: "n1", Cmd: statetest.Update(statetest.NodeAt("n1", clusterversion.Current()))},
		{Name: "n2", Cmd: statetest.Update(statetest.NodeAt("n2", clusterversion.Current()))},
		{Name: "budget", Cmd: statetest.Create(&configv1.Budget{Meta: statetest.Meta("calls"), Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM,
			Window: configv1.BudgetWindow_BUDGET_WINDOW_MONTH, MaxCalls: max})},
		{Name: "cursor", Cmd: statetest.Consume("budget", 0, nil)},
		{Name: "usage", Cmd: batch},
	})
}

func budgetGranter(t *testing.T, s *state.State, c *clock) *lease.Granter {
	t.Helper()
	sl := lease.StateLimits(func() *state.State { return s })
	g := lease.New(lease.Config{Limits: limits{}, Budgets: sl, Duration: dur, Now: c.now})
	g.Begin()
	t.Cleanup(g.End)
	return g
}

func budgetAsk(t *testing.T, g *lease.Granter, dp string, start int64, want, balance, recent int64) *configsyncv1.LeaseResponse {
	t.Helper()
	resp, err := g.Grant(dp, &configsyncv1.LeaseRequest{Name: dp, BudgetDemands: []*configsyncv1.BudgetDemand{{
		Budget: "calls", Key: "team ops", WindowStart: start,
		Want: &configsyncv1.BudgetUnits{Calls: want}, Balance: &configsyncv1.BudgetUnits{Calls: balance}, Recent: &configsyncv1.BudgetUnits{Calls: recent},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func sliceCalls(resp *configsyncv1.LeaseResponse) int64 {
	var n int64
	for _, s := range resp.GetBudgetSlices() {
		n += s.GetBalance().GetCalls()
	}
	return n
}

// TestBudgetSlicesNeverExceedRemaining: slices are cut to what the durable
// usage, the recent spends and the other data planes' slices leave, a
// new leader grants nothing for one lease duration, and an exhausted key
// says so.
func TestBudgetSlicesNeverExceedRemaining(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	s := budgetState(t, 100, 40, c.now())
	start, _ := budgetkey.Window(configv1.BudgetWindow_BUDGET_WINDOW_MONTH, c.now(), time.UTC)
	g := budgetGranter(t, s, c)

	if resp := budgetAsk(t, g, "dp1", start.Unix(), 10, 0, 0); !resp.GetQuiet() || len(resp.GetBudgetSlices()) != 0 || resp.GetDataplanes() != 0 {
		t.Fatalf("a new leader granted %v during its quiet period", resp.GetBudgetSlices())
	}
	c.add(dur + time.Millisecond)

	// Demand 80 % / 20 % of the 60 calls left, dp2 having spent 5 lately:
	// 55 to share. Each data plane reports the slice it was granted last
	// (spending nothing); the leader counts the larger of what a data plane
	// reported and what it granted it until it reports again.
	granted := map[string]int64{}
	outstanding := map[string]int64{}
	for round := range 4 {
		for _, d := range []struct {
			dp           string
			want, recent int64
		}{{"dp2", 10, 5}, {"dp1", 40, 0}} {
			got := sliceCalls(budgetAsk(t, g, d.dp, start.Unix(), d.want, granted[d.dp], d.recent))
			outstanding[d.dp] = max(granted[d.dp], got)
			granted[d.dp] = got
			if sum := outstanding["dp1"] + outstanding["dp2"]; sum > 55 {
				t.Fatalf("round %d: %s granted %d; outstanding slices %v sum to %d, over the 55 calls left", round, d.dp, got, outstanding, sum)
			}
		}
	}
	if granted["dp1"] == 0 || granted["dp2"] == 0 || granted["dp1"] < granted["dp2"] {
		t.Errorf("after four rounds the slices are %v: both should have some, in proportion to demand", granted)
	}
	// A third data plane gets only what the others leave.
	third := sliceCalls(budgetAsk(t, g, "dp3", start.Unix(), 10, 0, 0))
	if sum := granted["dp1"] + granted["dp2"] + third; sum > 55 {
		t.Errorf("three slices sum to %d, over the 55 calls left", sum)
	}

	// The last unit goes to one of many who ask, rather than to none.
	c3 := &clock{t: c.now()}
	last := budgetGranter(t, budgetState(t, 100, 99, c3.now()), c3)
	c3.add(dur + time.Millisecond)
	held := map[string]int64{}
	for _, dp := range []string{"dp1", "dp2", "dp3", "dp1", "dp2", "dp3"} {
		held[dp] = sliceCalls(budgetAsk(t, last, dp, start.Unix(), 5, held[dp], 0))
	}
	if got := held["dp1"] + held["dp2"] + held["dp3"]; got != 1 {
		t.Errorf("one call left, three data planes asking: they hold %v, want 1 in all", held)
	}

	// When durable usage reaches the limit, nothing is granted and the
	// slice says the key is exhausted.
	c2 := &clock{t: c.now()}
	full := budgetGranter(t, budgetState(t, 100, 100, c2.now()), c2)
	c2.add(dur + time.Millisecond)
	resp := budgetAsk(t, full, "dp1", start.Unix(), 5, 0, 0)
	if sliceCalls(resp) != 0 || len(resp.GetBudgetSlices()) != 1 || !resp.GetBudgetSlices()[0].GetExhausted() {
		t.Errorf("an exhausted key: %v", resp.GetBudgetSlices())
	}

	// A window that is not the budget's is ignored.
	if resp := budgetAsk(t, g, "dp1", start.Unix()+1, 5, 0, 0); len(resp.GetBudgetSlices()) != 0 {
		t.Errorf("a misaligned window got slices %v", resp.GetBudgetSlices())
	}
}

// TestBudgetSlicesWaitForVersion7: before every voter supports cluster
// version 7 there is no durable usage and the leader grants no slices.
func TestBudgetSlicesWaitForVersion7(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	s := statetest.Run(t, state.New(), 1, statetest.Script()[:12])
	s = statetest.Run(t, s, s.Index()+1, []statetest.Step{
		{Name: "n1", Cmd: statetest.Update(statetest.NodeAt("n1", clusterversion.RateLimits))},
		{Name: "n2", Cmd: statetest.Update(statetest.NodeAt("n2", clusterversion.RateLimits))},
		{Name: "budget", Cmd: statetest.Create(&configv1.Budget{Meta: statetest.Meta("calls"),
			Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM, Window: configv1.BudgetWindow_BUDGET_WINDOW_MONTH, MaxCalls: 10})}})
	g := budgetGranter(t, s, c)
	c.add(dur + time.Millisecond)
	start, _ := budgetkey.Window(configv1.BudgetWindow_BUDGET_WINDOW_MONTH, c.now(), time.UTC)
	if resp := budgetAsk(t, g, "dp1", start.Unix(), 5, 0, 0); len(resp.GetBudgetSlices()) != 0 {
		t.Errorf("slices before version 7: %v", resp.GetBudgetSlices())
	}
}
