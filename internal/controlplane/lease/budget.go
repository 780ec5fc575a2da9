package lease

import (
	"fmt"
	"math"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// Budget slices. Each data plane holds, per budget key and window, a
// slice: units it may spend without asking, valid for one lease duration.
// For each limited unit the leader keeps
//
//	Σ outstanding slices ≤ limit − durable usage − Σ recent spends
//
// where the durable usage is the replicated BudgetUsage (derived from the
// stored audit records) and a data plane's recent spend is what it
// reports having spent in the last two lease durations (the records that
// carry it may not have reached the usage yet; counting it twice meanwhile
// errs on the safe side). A data plane's outstanding slice is the larger of
// what it reported holding and what it was granted, until it reports again
// or the lease expires, as for rate-limit leases; a new leader's quiet
// period covers the slices of the previous one the same way.

// Budgets looks budgets and their durable usage up in the leader's
// applied state. It must be safe for concurrent use.
type Budgets interface {
	// Budget returns the budget named name.
	Budget(name string) (*configv1.Budget, bool)
	// BudgetUsed returns what key consumed in the window starting at
	// start (Unix seconds); tracked is false when the key has no entry and
	// the budget's usage is full (limits.BudgetUsageKeys), so its calls are
	// not counted.
	BudgetUsed(budget, key string, start int64) (used Units, tracked bool)
	// BudgetsLeased reports whether budgets are leased: every voter
	// supports cluster version 7 (before it there is no durable usage).
	BudgetsLeased() bool
}

// Units are budget units: calls, tokens, cost in nano-units.
type Units [3]int64

// UnitsOf reads units off the wire, negatives as 0.
func UnitsOf(u *configsyncv1.BudgetUnits) Units {
	return Units{max(u.GetCalls(), 0), max(u.GetTokens(), 0), max(u.GetCostNanos(), 0)}
}

// Wire is u on the wire.
func (u Units) Wire() *configsyncv1.BudgetUnits {
	return &configsyncv1.BudgetUnits{Calls: u[0], Tokens: u[1], CostNanos: u[2]}
}

// LimitsOf is a budget's limits per unit (0: none).
func LimitsOf(b *configv1.Budget) Units {
	return Units{max(b.GetMaxCalls(), 0), max(b.GetMaxTokens(), 0), budgetkey.CostNanos(b)}
}

// Budget implements Budgets.
func (f StateLimits) Budget(name string) (*configv1.Budget, bool) {
	r, ok := f().Get(resource.Budget, name)
	return r.GetBudget(), ok
}

// BudgetUsed implements Budgets.
func (f StateLimits) BudgetUsed(budget, key string, start int64) (Units, bool) {
	st := f()
	if k, ok := st.BudgetUsed(budget, key, start); ok {
		return Units{k.GetCalls(), k.GetTokens(), k.GetCostNanos()}, true
	}
	r, ok := st.Get(resource.BudgetUsage, budget)
	return Units{}, !ok || len(r.GetBudgetUsage().GetKeys()) < limits.BudgetUsageKeys
}

// BudgetsLeased implements Budgets.
func (f StateLimits) BudgetsLeased() bool {
	return clusterversion.Supports(f().Voters(), clusterversion.FleetBudgets)
}

type sliceKeyID struct {
	budget, key string
	start       int64
}

// sliceKey is every data plane's slice of one budget key's window.
type sliceKey struct {
	shares map[string]*slice
}

type slice struct {
	want, balance, recent Units
	expires               time.Time
}

func (sk *sliceKey) expire(now time.Time) {
	for n, sh := range sk.shares {
		if now.After(sh.expires) {
			delete(sk.shares, n)
		}
	}
}

// grantBudgetsLocked answers the budget demands of one report.
func (g *Granter) grantBudgetsLocked(name string, req *configsyncv1.LeaseRequest, resp *configsyncv1.LeaseResponse, now time.Time) {
	if g.budgets == nil || len(req.GetBudgetDemands()) == 0 || !g.budgets.BudgetsLeased() {
		return
	}
	asked := make(map[sliceKeyID]bool, len(req.GetBudgetDemands()))
	for _, d := range req.GetBudgetDemands() {
		id := sliceKeyID{d.GetBudget(), d.GetKey(), d.GetWindowStart()}
		if asked[id] {
			continue
		}
		asked[id] = true
		b, ok := g.budgets.Budget(id.budget)
		if !ok {
			continue
		}
		start, end := budgetkey.Window(b.GetWindow(), time.Unix(id.start, 0), budgetkey.Location(b.GetTimeZone()))
		if start.Unix() != id.start || !end.After(now) {
			continue // not a window of this budget, or one that ended
		}
		sk := g.slices[id]
		if sk == nil {
			if len(g.slices)+len(g.keys) >= maxKeys {
				continue
			}
			sk = &sliceKey{shares: map[string]*slice{}}
			g.slices[id] = sk
		}
		sk.expire(now)
		sh := sk.shares[name]
		if sh == nil {
			sh = &slice{}
			sk.shares[name] = sh
		}
		sh.want, sh.balance, sh.recent = UnitsOf(d.GetWant()), UnitsOf(d.GetBalance()), UnitsOf(d.GetRecent())
		sh.expires = now.Add(g.duration)
		if resp.Quiet {
			continue
		}
		used, tracked := g.budgets.BudgetUsed(id.budget, id.key, id.start)
		out := &configsyncv1.BudgetSlice{Budget: id.budget, Key: id.key, WindowStart: id.start}
		var grant, unallocated Units
		for u, limit := range LimitsOf(b) {
			if limit <= 0 {
				continue
			}
			if !tracked {
				out.Exhausted = true
				continue
			}
			grant[u], unallocated[u] = sk.grant(name, u, limit, used[u])
			if grant[u] == 0 && unallocated[u] == 0 && limit-used[u]-sk.recentSum(u) <= 0 {
				out.Exhausted = true
			}
		}
		out.Balance, out.Unallocated = grant.Wire(), unallocated.Wire()
		resp.BudgetSlices = append(resp.BudgetSlices, out)
	}
}

func (sk *sliceKey) recentSum(u int) int64 {
	var s int64
	for _, sh := range sk.shares {
		s = addSat(s, sh.recent[u])
	}
	return s
}

// grant is name's new slice of unit u, and what stays unallocated after
// it: its share of what the key has left (limit − used − every recent
// spend) in proportion to demand (twice what it asked for since its last
// report, at least one call), with the rest split evenly when demand is
// below it, cut to what the other data planes' slices leave.
func (sk *sliceKey) grant(name string, u int, limit, used int64) (grant, unallocated int64) {
	pool := limit - used - sk.recentSum(u)
	var others, needs int64
	need := func(sh *slice) int64 {
		n := addSat(sh.want[u], sh.want[u])
		if u == 0 {
			n = max(n, 1)
		}
		return n
	}
	for n, sh := range sk.shares {
		needs = addSat(needs, need(sh))
		if n != name {
			others = addSat(others, sh.balance[u])
		}
	}
	me := sk.shares[name]
	mine := need(me)
	var target int64
	switch {
	case pool <= 0:
		target = 0
	case needs <= pool:
		target = mine + (pool-needs)/int64(len(sk.shares))
	default:
		target = int64(math.Floor(float64(pool) * float64(mine) / float64(needs)))
	}
	if target == 0 && pool > 0 && mine > 0 {
		// Shares in proportion round down to nothing when little is left
		// and many ask: the smallest unit goes to whoever asks first.
		target = 1
	}
	grant = max(min(target, pool-others), 0)
	me.balance[u] = max(me.balance[u], grant)
	return grant, max(pool-others-me.balance[u], 0)
}

// checkBudgetDemands checks the budget demands of a lease request.
func checkBudgetDemands(req *configsyncv1.LeaseRequest) error {
	if len(req.GetBudgetDemands()) > MaxDemands {
		return fmt.Errorf("a lease request carries at most %d budget demands", MaxDemands)
	}
	for i, d := range req.GetBudgetDemands() {
		if len(d.GetKey()) > MaxKeyBytes || len(d.GetBudget()) > limits.Name {
			return fmt.Errorf("budget demand %d: a key is at most %d bytes and a budget's name at most %d", i, MaxKeyBytes, limits.Name)
		}
	}
	return nil
}

func addSat(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
