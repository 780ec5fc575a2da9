package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// budgetCalls is the e2e budget: calls of team ops per month.
const budgetCalls = 30

// budgetLoad counts what calls of the ops agent's weather tool got.
type budgetLoad struct {
	admitted, exhausted, other int
	retryAfter                 bool
}

// callN makes n calls through dp, one after another, and counts them.
func (l *budgetLoad) callN(t *testing.T, dp *harness.Dataplane, key string, n int) (admitted int) {
	t.Helper()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := dp.CallTool(ctx, key, actionWeather, weatherArgs(fmt.Sprint("budget-", i)))
		cancel()
		switch {
		case err == nil && res.Err() == nil:
			l.admitted++
			admitted++
		case err == nil && res.Reason == "budget_exhausted":
			l.exhausted++
			var meta struct {
				Meta map[string]struct {
					RetryAfter float64 `json:"retryAfterSeconds"`
				} `json:"_meta"`
			}
			if json.Unmarshal(res.Result, &meta) == nil && meta.Meta["io.portcullis/refusal"].RetryAfter > 0 {
				l.retryAfter = true
			}
		default:
			l.other++
			t.Logf("call through %s: %v %+v", dp.Name, err, res)
		}
	}
	return admitted
}

// awaitFleetSize waits until dp has heard from the leader how many data
// planes there are (its budget safe shares divide by it).
func awaitFleetSize(t *testing.T, dp *harness.Dataplane, n float64) {
	t.Helper()
	harness.Await(t, 20*time.Second, dp.Name+" knows the fleet's size", func() error {
		m, err := dp.Metrics()
		if err != nil {
			return err
		}
		if got := m["portcullis_dataplane_budget_fleet_size"]; got != n {
			return fmt.Errorf("fleet size %v, want %v", got, n)
		}
		return nil
	})
}

// safeAdmitted is what dp admitted on its budget safe share (without a
// slice of the leader) in its current process.
func safeAdmitted(t *testing.T, dp *harness.Dataplane) int {
	t.Helper()
	m, err := dp.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	return int(m[`portcullis_dataplane_budget_admitted_total{budget="ops-calls",from="safe"}`])
}

type budgetRow struct {
	Budget         string `json:"budget"`
	Key            string `json:"key"`
	Calls          string `json:"calls"`
	RemainingCalls string `json:"remainingCalls"`
}

// TestBudgetHoldsAcrossRestarts is the acceptance test of fleet-wide
// budgets: a budget of 30 calls per month for team ops, spent through two
// data planes while one is killed with SIGKILL and restarted and the
// control plane restarts, admits at most the budget plus the README's
// bound (each data-plane process admits at most ⌈R/N⌉ on its safe share,
// with R at most the limit and N the fleet size it heard), the whole
// budget when demand exceeds it, refuses the rest with budget_exhausted
// and a retry time in _meta, and gwctl usage --budgets shows the durable
// usage (from the audit records) and what is left.
func TestBudgetHoldsAcrossRestarts(t *testing.T) {
	g := startGatewayWith(t, []string{"--lease-duration", "3s"}, 1, "bg-dp1", "bg-dp2")
	r := g.gwctl(t, "budget", "set", "ops-calls", "--scope", "team", "--team", "ops", "--window", "month", "--max-calls", fmt.Sprint(budgetCalls), "-o", "json")
	var b revisioned
	if err := r.JSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, dp := range g.dps {
		awaitVersion(t, dp, uint64(b.Meta.Revision), 20*time.Second)
	}
	for _, dp := range g.dps {
		awaitFleetSize(t, dp, 2)
	}
	dp1, dp2 := g.dps[0], g.dps[1]
	load := &budgetLoad{}
	// Each data-plane process admits at most ⌈30/2⌉ on its safe share.
	share := (budgetCalls + 1) / 2
	processes := 2

	load.callN(t, dp1, g.opsKey, 8)
	load.callN(t, dp2, g.opsKey, 8)
	t.Logf("before the kill: admitted %d, budget_exhausted %d", load.admitted, load.exhausted)

	// kill -9 dp1 mid-window; its audit log reaches the control plane after
	// the restart, and the restarted process starts without a slice.
	dp1.Kill()
	dp1.Restart()
	dp1.AwaitServing(t, harness.StartTimeout)
	processes++
	awaitFleetSize(t, dp1, 2)
	load.callN(t, dp1, g.opsKey, 6)
	load.callN(t, dp2, g.opsKey, 6)
	t.Logf("after the data-plane restart: admitted %d, budget_exhausted %d", load.admitted, load.exhausted)

	// The control plane restarts: slices expire, the new leader grants
	// nothing for one lease duration, the durable usage is still there.
	cp := g.c.Nodes[0]
	cp.Kill()
	cp.Restart()
	cp.AwaitReady(t, harness.StartTimeout)

	// Demand beyond the budget until both data planes refuse everything.
	deadline := time.Now().Add(25 * time.Second)
	for time.Now().Before(deadline) {
		got := load.callN(t, dp1, g.opsKey, 5) + load.callN(t, dp2, g.opsKey, 5)
		if got == 0 && load.admitted >= budgetCalls {
			break
		}
		if got == 0 {
			<-time.After(500 * time.Millisecond) // shares are spent; the leader grants more within a refresh
		}
	}
	safe1, safe2 := safeAdmitted(t, dp1), safeAdmitted(t, dp2)
	bound := processes * share
	t.Logf("admitted %d of a budget of %d (bound %d: %d processes × %d); budget_exhausted %d, other %d; safe-share admissions of the live processes: %s %d, %s %d",
		load.admitted, budgetCalls, bound, processes, share, load.exhausted, load.other, dp1.Name, safe1, dp2.Name, safe2)
	if load.admitted > budgetCalls+bound {
		t.Errorf("admitted %d, above the budget %d plus the bound %d", load.admitted, budgetCalls, bound)
	}
	// What the mechanism claims beyond the formula: only safe-share
	// admissions can overshoot (slices never sum above what is left); the
	// killed process admitted at most its share on its own.
	if over := load.admitted - budgetCalls; over > safe1+safe2+share {
		t.Errorf("admitted %d over the budget, more than the safe-share admissions (%d + %d, and at most %d of the killed process)", over, safe1, safe2, share)
	}
	if load.admitted < budgetCalls {
		t.Errorf("admitted %d while demand exceeded the budget of %d", load.admitted, budgetCalls)
	}
	if load.other > 0 {
		t.Errorf("%d calls failed for another reason than budget_exhausted", load.other)
	}
	if !load.retryAfter {
		t.Error("no budget_exhausted refusal carried retryAfterSeconds in _meta")
	}

	// The durable usage counts every admitted call, once, across both
	// restarts, and shows nothing left.
	harness.Await(t, 30*time.Second, "gwctl usage --budgets counts every admitted call", func() error {
		res := harness.Gwctl(t, g.env(), "usage", "--budgets", "--by", "team", "--window", "month", "-o", "json")
		if !res.OK() {
			return fmt.Errorf("gwctl usage --budgets: %s", res.Stderr)
		}
		var out struct {
			Rows []budgetRow `json:"rows"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			return err
		}
		for i := range out.Rows { // protojson leaves zeros out
			if out.Rows[i].RemainingCalls == "" {
				out.Rows[i].RemainingCalls = "0"
			}
		}
		want := budgetRow{Budget: "ops-calls", Key: "team ops", Calls: fmt.Sprint(load.admitted), RemainingCalls: "0"}
		if len(out.Rows) != 1 || out.Rows[0] != want {
			return fmt.Errorf("rows %+v, want %+v", out.Rows, want)
		}
		return nil
	})
	if out := g.gwctl(t, "usage", "--budgets").Stdout; !contains(out, "ops-calls", "team ops") {
		t.Errorf("gwctl usage --budgets:\n%s", out)
	}
}

// TestShadowBudget: a shadow budget of 3 calls per month for team ops
// refuses none of 10 calls, counts the calls it would have refused (at
// least all beyond the budget plus the data plane's safe share) in
// portcullis_dataplane_budget_refused_total{mode="shadow"} and names
// itself in their audit records, and counts every call in its durable
// usage, exactly as an enforced budget would.
func TestShadowBudget(t *testing.T) {
	const limit, calls = 3, 10
	g := startGatewayWith(t, []string{"--lease-duration", "3s"}, 1, "bs-dp1")
	r := g.gwctl(t, "budget", "set", "ops-shadow", "--scope", "team", "--team", "ops", "--window", "month", "--max-calls", fmt.Sprint(limit), "--mode", "shadow", "-o", "json")
	var b revisioned
	if err := r.JSON(&b); err != nil {
		t.Fatal(err)
	}
	dp := g.dps[0]
	awaitVersion(t, dp, uint64(b.Meta.Revision), 20*time.Second)
	awaitFleetSize(t, dp, 1)
	if out := g.gwctl(t, "budget", "list").Stdout; !contains(out, "MODE", "ops-shadow", "shadow") {
		t.Errorf("gwctl budget list does not show the mode:\n%s", out)
	}

	load := &budgetLoad{}
	load.callN(t, dp, g.opsKey, calls)
	if load.admitted != calls {
		t.Fatalf("a shadow budget admitted %d of %d calls (budget_exhausted %d, other %d), want every one", load.admitted, calls, load.exhausted, load.other)
	}
	m, err := dp.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	shadow := int(m[`portcullis_dataplane_budget_refused_total{budget="ops-shadow",mode="shadow"}`])
	t.Logf("would-be refusals %d of %d calls against a budget of %d", shadow, calls, limit)
	// Enforced, the budget would admit at most its limit plus one safe
	// share (⌈3/1⌉) here.
	if shadow < calls-2*limit || shadow > calls-limit {
		t.Errorf("would-be refusals %d, want between %d and %d", shadow, calls-2*limit, calls-limit)
	}

	// The would-be refusals are audited with the budget's name, on calls
	// that ran.
	harness.Await(t, 30*time.Second, "a record naming the shadow budget", func() error {
		res := harness.Gwctl(t, g.env(), "audit", "query", "--tool", actionWeather, "--limit", "20", "-o", "json")
		if !res.OK() {
			return fmt.Errorf("audit query: %s", res.Stderr)
		}
		var recs struct {
			Records []struct {
				Outcome       string   `json:"outcome"`
				ShadowBudgets []string `json:"shadowBudgets"`
			} `json:"records"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &recs); err != nil {
			return err
		}
		named := 0
		for _, r := range recs.Records {
			if len(r.ShadowBudgets) == 1 && r.ShadowBudgets[0] == "ops-shadow" {
				named++
			}
		}
		if named != shadow {
			return fmt.Errorf("%d of %d records name ops-shadow, want %d", named, len(recs.Records), shadow)
		}
		return nil
	})

	// It counts every call, as an enforced budget does.
	harness.Await(t, 30*time.Second, "gwctl usage --budgets counts every call", func() error {
		res := harness.Gwctl(t, g.env(), "usage", "--budgets", "--window", "month", "-o", "json")
		if !res.OK() {
			return fmt.Errorf("gwctl usage --budgets: %s", res.Stderr)
		}
		var out struct {
			Rows []budgetRow `json:"rows"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			return err
		}
		if len(out.Rows) != 1 || out.Rows[0].Budget != "ops-shadow" || out.Rows[0].Calls != fmt.Sprint(calls) {
			return fmt.Errorf("rows %+v, want ops-shadow with %d calls", out.Rows, calls)
		}
		return nil
	})
}
