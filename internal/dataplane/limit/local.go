package limit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Local enforces budgets within one data plane: each data plane holds
// every budget whole and counts only its own calls, in memory. Its bound
// is therefore per data plane: across N data planes a budget admits at
// most N times its limit, and a data plane that restarts starts its
// windows from zero. Within one data plane, concurrent calls cannot
// overshoot: each reserves its worst case before it runs, so the calls a
// budget admits consume at most its limit plus what their providers
// report beyond their reservations (input tokens above the gateway's
// estimate). Data planes use Fleet; Local serves where there is no
// control plane to lease from.
//
// Safe for concurrent use.
type Local struct {
	mu       sync.Mutex
	budgets  []*budget
	counters map[counterKey]*counter
	// sweepAt is the counter count at which old windows are dropped.
	sweepAt int
	now     func() time.Time
}

var _ Reserver = (*Local)(nil)

// NewLocal returns a Local with no budget. now is the clock windows are
// reset by (nil: time.Now); calls are counted in the window of their start.
func NewLocal(now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	return &Local{counters: map[counterKey]*counter{}, sweepAt: minSweep, now: now}
}

// minSweep is the fewest counters at which Local drops old windows.
const minSweep = 1024

// budget is a configured budget, compiled.
type budget struct {
	def                          *configv1.Budget
	name                         string
	window                       configv1.BudgetWindow
	loc                          *time.Location
	maxCalls, maxTokens, maxCost int64
	// shadow: the budget counts calls and refuses none (the calls it
	// would refuse are noted on the call and counted by metrics).
	shadow bool
}

// compile compiles budgets. A budget whose time zone this data plane does
// not know is counted in UTC (the control plane checks zones when budgets
// are written).
func compile(bs []*configv1.Budget) []*budget {
	out := make([]*budget, 0, len(bs))
	for _, b := range bs {
		out = append(out, &budget{
			def: b, name: b.GetMeta().GetName(), window: b.GetWindow(), loc: budgetkey.Location(b.GetTimeZone()),
			maxCalls: b.GetMaxCalls(), maxTokens: b.GetMaxTokens(), maxCost: budgetkey.CostNanos(b),
			shadow: b.GetMode() == configv1.BudgetMode_BUDGET_MODE_SHADOW,
		})
	}
	return out
}

// Configure replaces the budgets. Counters are kept by budget name, key
// and window, so a budget whose limits change keeps what it counted.
func (l *Local) Configure(bs []*configv1.Budget) {
	out := compile(bs)
	l.mu.Lock()
	l.budgets = out
	l.mu.Unlock()
}

// counterKey names one key's count in one window of one budget.
type counterKey struct {
	budget, key string
	start       int64 // the window's start, Unix seconds
}

// counter is what one key consumed (spent) and holds for calls in flight
// (held) in one window.
type counter struct {
	spent, held Units
	end         time.Time
}

func (c *counter) total() Units { return add(c.spent, c.held) }

// hold is one counter a reservation holds units in.
type hold struct {
	c     *counter
	units Units
}

// reservation implements Reservation.
type reservation struct {
	l     *Local
	holds []hold
	once  sync.Once
}

// Reserve implements Reserver.
func (l *Local) Reserve(_ context.Context, c *pipeline.Call, worst Units) (Reservation, error) {
	now := startOf(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	var holds []hold
	var shadowed []string
	for _, b := range l.budgets {
		key, ok := budgetkey.Key(b.def, callOf(c))
		if !ok {
			continue
		}
		start, end := budgetkey.Window(b.window, now, b.loc)
		ck := counterKey{budget: b.name, key: key, start: start.Unix()}
		cnt := l.counters[ck]
		if cnt == nil {
			cnt = &counter{end: end}
		}
		if ref := b.admit(cnt.total(), worst, key, end, l.now()); ref != nil {
			if !b.shadow {
				return nil, ref
			}
			shadowed = append(shadowed, b.name)
		}
		if l.counters[ck] == nil {
			l.counters[ck] = cnt
		}
		holds = append(holds, hold{c: cnt, units: worst})
	}
	for _, h := range holds {
		h.c.held = add(h.c.held, h.units)
	}
	c.ShadowBudgets = shadowed
	l.sweepLocked()
	return &reservation{l: l, holds: holds}, nil
}

// Settle implements Reservation.
func (r *reservation) Settle(actual Units) {
	r.once.Do(func() {
		r.l.mu.Lock()
		defer r.l.mu.Unlock()
		for _, h := range r.holds {
			h.c.held = sub(h.c.held, h.units)
			h.c.spent = add(h.c.spent, actual)
		}
	})
}

// Cancel implements Reservation.
func (r *reservation) Cancel() {
	r.once.Do(func() {
		r.l.mu.Lock()
		defer r.l.mu.Unlock()
		for _, h := range r.holds {
			h.c.held = sub(h.c.held, h.units)
		}
	})
}

// admit refuses worst when it would take a key's window over one of b's
// limits, given what the window already counts.
func (b *budget) admit(have, worst Units, key string, end, now time.Time) *pipeline.Refusal {
	if b.maxCost > 0 && worst.Unpriced {
		return pipeline.Refuse(pipeline.ReasonUnpriced,
			"budget %q limits the cost of %s's calls, and this model has no price; an operator must set its price (gwctl price set)", b.name, key)
	}
	for _, l := range []struct {
		unit         string
		max, have, w int64
	}{
		{"calls", b.maxCalls, have.Calls, worst.Calls},
		{"tokens", b.maxTokens, have.Tokens, worst.Tokens},
		{"cost", b.maxCost, have.Cost, worst.Cost},
	} {
		if l.max <= 0 || l.have+l.w <= l.max && l.have+l.w >= l.have {
			continue
		}
		r := pipeline.Refuse(pipeline.ReasonBudgetExhausted,
			"budget %q: %s has used %s of its %s of %s per %s, and this call may use up to %s more; it resets at %s",
			b.name, key, amount(l.unit, l.have), amount(l.unit, l.max), l.unit, windowName(b.window), amount(l.unit, l.w), end.Format(time.RFC3339))
		r.RetryAfter = max(end.Sub(now), time.Second)
		if l.w > l.max {
			r.Message = fmt.Sprintf("budget %q: this call may use up to %s, more than the whole budget of %s of %s per %s for %s; ask for less (a lower max_tokens)",
				b.name, amount(l.unit, l.w), amount(l.unit, l.max), l.unit, windowName(b.window), key)
			r.RetryAfter = 0
		}
		return r
	}
	return nil
}

// amount renders n of unit (cost in the currency, from nano-units).
func amount(unit string, n int64) string {
	if unit == "cost" {
		return fmt.Sprintf("%.4f", float64(n)/1e9)
	}
	return fmt.Sprint(n)
}

func windowName(w configv1.BudgetWindow) string {
	switch w {
	case configv1.BudgetWindow_BUDGET_WINDOW_MINUTE:
		return "minute"
	case configv1.BudgetWindow_BUDGET_WINDOW_HOUR:
		return "hour"
	case configv1.BudgetWindow_BUDGET_WINDOW_DAY:
		return "day"
	}
	return "month"
}

// sweepLocked drops the counters of windows that ended and hold nothing,
// once there are many.
func (l *Local) sweepLocked() {
	if len(l.counters) < l.sweepAt {
		return
	}
	now := l.now()
	for k, c := range l.counters {
		if !c.end.After(now) && c.held == (Units{}) {
			delete(l.counters, k)
		}
	}
	l.sweepAt = max(minSweep, 2*len(l.counters))
}

func add(a, b Units) Units {
	return Units{Calls: addSat(a.Calls, b.Calls), Tokens: addSat(a.Tokens, b.Tokens), Cost: addSat(a.Cost, b.Cost)}
}

func sub(a, b Units) Units {
	return Units{Calls: max(a.Calls-b.Calls, 0), Tokens: max(a.Tokens-b.Tokens, 0), Cost: max(a.Cost-b.Cost, 0)}
}

func addSat(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
