package limit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/dataplane/leasereport"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Fleet enforces budgets across every data plane with slices leased from
// the control-plane leader. Each budget key's window has a slot here: the
// slice the leader granted (what this data plane may spend until the lease
// expires), what calls in flight hold, and what was spent lately. A call
// reserves its worst case from the slot before it runs and settles on its
// outcome, so a call never waits on the network.
//
// Without a valid slice — before the first for a key, and once one
// expired with no new one (no leader, or a new leader's quiet period) — a
// slot admits from its safe share: ⌈R ÷ N⌉ per unit for this process and
// window, where N is the number of data planes the leader last counted
// and R what the key had left unallocated when the leader last answered
// for it (the limit before it ever has). Run reports every slot's demand,
// balance and recent spend, and applies the slices the leader answers
// with; the README states the overshoot bound this leaves.
//
// A shadow budget holds and spends exactly as an enforced one, and where
// it would refuse it admits instead, naming itself in the call's
// ShadowBudgets.
//
// Safe for concurrent use.
type Fleet struct {
	now     func() time.Time
	metrics BudgetMetrics
	marks   AuditMarks

	mu         sync.Mutex
	budgets    []*budget
	slots      map[slotID]*slot
	dataplanes int64
	validFor   time.Duration
	// kick wakes Run when a key appears that holds no slice.
	kick chan struct{}
}

// BudgetMetrics receives per-budget counts. Implementations must be safe
// for concurrent use and must not block.
type BudgetMetrics interface {
	BudgetAdmitted(budget string, safe bool)
	// BudgetRefused counts a call the budget refused; shadow: that a
	// shadow budget would have refused and admitted.
	BudgetRefused(budget string, shadow bool)
	BudgetSlice(budget string)
	// BudgetFleetSize reports the number of data planes the leader last
	// counted, which safe shares divide by.
	BudgetFleetSize(n int64)
}

// AuditMarks tells how far this data plane's audit records have reached
// the control plane. Implementations must be safe for concurrent use.
type AuditMarks interface {
	// Durable is the sequence of the last fsynced local record.
	Durable() uint64
	// Acked is the last sequence the control plane acknowledged holding.
	Acked() uint64
}

// Recent spend is reported until the records that carry it have surely
// reached the durable usage: a spend is marked with the local log's
// durable sequence markAfter after it settled (its record is written and
// fsynced by then), and dropped consumeGrace after the control plane
// acknowledged that sequence (its budget consumer folds records within
// that). Without AuditMarks a spend is reported for two lease durations.
const (
	markAfter    = 500 * time.Millisecond
	consumeGrace = time.Second
)

// SetAuditMarks makes recent spend follow the audit upload (see
// markAfter); call it before Run.
func (f *Fleet) SetAuditMarks(m AuditMarks) {
	f.mu.Lock()
	f.marks = m
	f.mu.Unlock()
}

var _ Reserver = (*Fleet)(nil)

// MaxSlots bounds the budget keys one data plane tracks; a call of a new
// key beyond it is refused.
const MaxSlots = 100_000

// DefaultLeaseDuration is how long a slice is taken to be valid before
// the leader says (configsync LeaseResponse.valid_for).
const DefaultLeaseDuration = 6 * time.Second

// maxDemands is the most budget demands one lease request carries
// (lease.MaxDemands on the control plane).
const maxDemands = 10_000

// slotIdle is how long a slot with no call, nothing held and no valid
// slice is kept.
const slotIdle = time.Minute

// NewFleet returns a Fleet with no budget. now is the clock (nil:
// time.Now); metrics may be nil.
func NewFleet(now func() time.Time, metrics BudgetMetrics) *Fleet {
	if now == nil {
		now = time.Now
	}
	return &Fleet{now: now, metrics: metrics, slots: map[slotID]*slot{}, dataplanes: 1, validFor: DefaultLeaseDuration, kick: make(chan struct{}, 1)}
}

// Configure replaces the budgets. Slots are kept by budget name, key and
// window, so a budget whose limits change keeps its slice and safe share.
func (f *Fleet) Configure(bs []*configv1.Budget) {
	out := compile(bs)
	f.mu.Lock()
	first := len(f.budgets) == 0 && len(out) > 0
	f.budgets = out
	f.mu.Unlock()
	// Report at once: the answer tells the fleet's size, which the safe
	// share of the first calls divides by.
	f.kickIf(first)
}

type slotID struct {
	budget, key string
	start       int64
}

// slot is one budget key's window on this data plane.
type slot struct {
	end time.Time
	// The slice: valid until expires when leased; balance may go below
	// zero when calls consume more than they reserved.
	leased  bool
	expires time.Time
	balance Units
	// What the leader said the key had left unallocated (hinted), and
	// whether it had nothing left at all.
	hinted      bool
	unallocated Units
	exhausted   bool
	// safeUsed is what this process spent (and holds) on its safe share.
	safeUsed Units
	held     Units
	// used counts every reservation net of settlements; sentUsed is its
	// value when the last report was taken, so a slice granted in answer
	// is reduced by what was spent since.
	used, sentUsed Units
	want           Units
	recent         []spend
	lastUsed       time.Time
}

type spend struct {
	at time.Time
	u  Units
	// mark is the local sequence at or below which the spend's record
	// lies (0: not marked yet); ackedAt when the control plane was seen
	// to hold it.
	mark    uint64
	ackedAt time.Time
}

func (s *slot) valid(now time.Time) bool { return s.leased && now.Before(s.expires) }

// fleetHold is what one reservation holds in one slot.
type fleetHold struct {
	s     *slot
	name  string
	worst Units
	safe  bool
}

type fleetReservation struct {
	f     *Fleet
	holds []fleetHold
	once  sync.Once
}

// Reserve implements Reserver.
func (f *Fleet) Reserve(_ context.Context, c *pipeline.Call, worst Units) (Reservation, error) {
	at := startOf(c)
	call := callOf(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	var holds []fleetHold
	// shadowed are the shadow budgets that would have refused c: they
	// hold what an enforced budget would, and refuse nothing.
	var shadowed []string
	kick := false
	for _, b := range f.budgets {
		key, ok := budgetkey.Key(b.def, call)
		if !ok {
			continue
		}
		start, end := budgetkey.Window(b.window, at, b.loc)
		id := slotID{b.name, key, start.Unix()}
		s := f.slots[id]
		if s == nil {
			if len(f.slots) >= MaxSlots {
				f.sweepLocked(now)
			}
			if len(f.slots) >= MaxSlots {
				if b.shadow {
					shadowed = append(shadowed, b.name)
					continue
				}
				if f.metrics != nil {
					f.metrics.BudgetRefused(b.name, false)
				}
				f.kickIf(kick)
				return nil, pipeline.Refuse(pipeline.ReasonBudgetExhausted, "budget %q: this data plane tracks %d budget keys, its limit; try again later", b.name, MaxSlots)
			}
			s = &slot{end: end}
			f.slots[id] = s
		}
		s.want, s.lastUsed = add(s.want, worst), now
		safe := !s.valid(now)
		if safe && !s.leased {
			kick = true
		}
		if ref := f.admitLocked(b, s, key, worst, safe, now); ref != nil {
			if b.shadow {
				shadowed = append(shadowed, b.name)
			} else {
				if f.metrics != nil {
					f.metrics.BudgetRefused(b.name, false)
				}
				f.kickIf(kick)
				return nil, ref
			}
		}
		holds = append(holds, fleetHold{s: s, name: b.name, worst: worst, safe: safe})
	}
	if f.metrics != nil {
		for _, name := range shadowed {
			f.metrics.BudgetRefused(name, true)
		}
	}
	c.ShadowBudgets = shadowed
	for _, h := range holds {
		h.s.held = add(h.s.held, h.worst)
		h.s.used = add(h.s.used, h.worst)
		if h.safe {
			h.s.safeUsed = add(h.s.safeUsed, h.worst)
		} else {
			h.s.balance = minus(h.s.balance, h.worst)
		}
		if f.metrics != nil {
			f.metrics.BudgetAdmitted(h.name, h.safe)
		}
	}
	f.kickIf(kick)
	return &fleetReservation{f: f, holds: holds}, nil
}

func (f *Fleet) kickIf(kick bool) {
	if !kick {
		return
	}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// admitLocked refuses worst when the slot cannot hold it: from the slice
// when it is valid, from the safe share otherwise.
func (f *Fleet) admitLocked(b *budget, s *slot, key string, worst Units, safe bool, now time.Time) *pipeline.Refusal {
	if b.maxCost > 0 && worst.Unpriced {
		return pipeline.Refuse(pipeline.ReasonUnpriced,
			"budget %q limits the cost of %s's calls, and this model has no price; an operator must set its price (gwctl price set)", b.name, key)
	}
	limits := Units{Calls: b.maxCalls, Tokens: b.maxTokens, Cost: b.maxCost}
	for _, u := range units {
		limit, w := u.get(limits), u.get(worst)
		if limit <= 0 {
			continue
		}
		if w > limit {
			return pipeline.Refuse(pipeline.ReasonBudgetExhausted,
				"budget %q: this call may use up to %s, more than the whole budget of %s of %s per %s for %s; ask for less (a lower max_tokens)",
				b.name, amount(u.name, w), amount(u.name, limit), u.name, windowName(b.window), key)
		}
		var left int64
		if safe {
			base := limit
			if s.hinted {
				base = u.get(s.unallocated)
			}
			left = ceilDiv(base, f.dataplanes) - u.get(s.safeUsed)
		} else {
			left = u.get(s.balance)
		}
		if w <= left {
			continue
		}
		r := pipeline.Refuse(pipeline.ReasonBudgetExhausted,
			"budget %q: %s has no %s left of its %s per %s; it resets at %s",
			b.name, key, u.name, amount(u.name, limit), windowName(b.window), s.end.Format(time.RFC3339))
		r.RetryAfter = max(s.end.Sub(now), time.Second)
		if !s.exhausted && (!s.hinted || u.get(s.unallocated) >= w) {
			// The fleet may have more: this data plane's share is spent
			// until the leader grants it more.
			r.Message = fmt.Sprintf("budget %q: this data plane's share of %s's %s is spent for now; the control plane grants more within seconds",
				b.name, key, u.name)
			r.RetryAfter = time.Second
		}
		return r
	}
	return nil
}

// Settle implements Reservation.
func (r *fleetReservation) Settle(actual Units) {
	r.once.Do(func() {
		f := r.f
		f.mu.Lock()
		defer f.mu.Unlock()
		now := f.now()
		for _, h := range r.holds {
			s := h.s
			s.held = sub(s.held, h.worst)
			// Replace the hold by the actual: balance and safe share move
			// by the difference, either way.
			s.used = plus(minus(s.used, h.worst), actual)
			if h.safe {
				s.safeUsed = plus(minus(s.safeUsed, h.worst), actual)
			} else {
				s.balance = minus(plus(s.balance, h.worst), actual)
			}
			s.recent = append(s.recent, spend{at: now, u: actual})
		}
	})
}

// Cancel implements Reservation.
func (r *fleetReservation) Cancel() {
	r.once.Do(func() {
		f := r.f
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, h := range r.holds {
			s := h.s
			s.held = sub(s.held, h.worst)
			s.used = minus(s.used, h.worst)
			if h.safe {
				s.safeUsed = minus(s.safeUsed, h.worst)
			} else {
				s.balance = plus(s.balance, h.worst)
			}
		}
	})
}

// Demands returns the budget demands for the leader: every slot with calls
// since the last report, a valid slice or spend not yet long enough ago to
// be surely counted. It drops slots of ended windows and idle ones.
func (f *Fleet) Demands() []*configsyncv1.BudgetDemand {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	recentFor := 2 * f.validFor
	f.sweepLocked(now)
	out := make([]*configsyncv1.BudgetDemand, 0, len(f.slots))
	var durable, acked uint64
	if f.marks != nil {
		durable, acked = f.marks.Durable(), f.marks.Acked()
	}
	for id, s := range f.slots {
		if len(out) == maxDemands {
			break // the rest next time (map order varies)
		}
		kept := s.recent[:0]
		var recent Units
		for _, sp := range s.recent {
			if f.marks == nil {
				if now.Sub(sp.at) > recentFor {
					continue
				}
			} else {
				if sp.mark == 0 && now.Sub(sp.at) >= markAfter {
					sp.mark = max(durable, 1)
				}
				if sp.mark != 0 && acked >= sp.mark {
					if sp.ackedAt.IsZero() {
						sp.ackedAt = now
					}
					if now.Sub(sp.ackedAt) >= consumeGrace {
						continue
					}
				}
			}
			kept = append(kept, sp)
			recent = plus(recent, sp.u)
		}
		s.recent = kept
		recent = plus(recent, s.held)
		var balance Units
		if s.valid(now) {
			balance = Units{Calls: max(s.balance.Calls, 0), Tokens: max(s.balance.Tokens, 0), Cost: max(s.balance.Cost, 0)}
		}
		out = append(out, &configsyncv1.BudgetDemand{
			Budget: id.budget, Key: id.key, WindowStart: id.start,
			Want: wire(s.want), Balance: wire(balance), Recent: wire(recent),
		})
		s.want, s.sentUsed = Units{}, s.used
	}
	return out
}

// sweepLocked drops slots whose window ended, and idle ones, that hold
// nothing.
func (f *Fleet) sweepLocked(now time.Time) {
	for id, s := range f.slots {
		if s.held != (Units{}) {
			continue
		}
		if !s.end.After(now) || (now.Sub(s.lastUsed) > slotIdle && !s.valid(now) && len(s.recent) == 0) {
			delete(f.slots, id)
		}
	}
}

// Apply installs the leader's answer to a report sent at sent: each slice
// is valid for ValidFor from sent, less what was spent since the report.
func (f *Fleet) Apply(resp *configsyncv1.LeaseResponse, sent time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := int64(resp.GetDataplanes()); n > 0 {
		f.dataplanes = n
		if f.metrics != nil {
			f.metrics.BudgetFleetSize(n)
		}
	}
	if d := resp.GetValidFor().AsDuration(); d > 0 {
		f.validFor = d
	}
	expires := sent.Add(f.validFor)
	for _, sl := range resp.GetBudgetSlices() {
		s := f.slots[slotID{sl.GetBudget(), sl.GetKey(), sl.GetWindowStart()}]
		if s == nil {
			continue
		}
		since := minus(s.used, s.sentUsed)
		s.leased, s.expires = true, expires
		s.balance = minus(unitsOf(sl.GetBalance()), since)
		s.hinted, s.unallocated, s.exhausted = true, unitsOf(sl.GetUnallocated()), sl.GetExhausted()
		if f.metrics != nil {
			f.metrics.BudgetSlice(sl.GetBudget())
		}
	}
}

// Configured reports whether any budget is configured.
func (f *Fleet) Configured() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.budgets) > 0
}

// Kicked is signalled when a key that holds no slice sees a call.
func (f *Fleet) Kicked() <-chan struct{} { return f.kick }

// Slice is one slot's state, for tests and logs.
type Slice struct {
	Leased, Valid bool
	Balance       Units
	SafeUsed      Units
}

// SliceOf returns the slot of budget's key in the window starting at
// start.
func (f *Fleet) SliceOf(budget, key string, start time.Time) (Slice, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.slots[slotID{budget, key, start.Unix()}]
	if s == nil {
		return Slice{}, false
	}
	return Slice{Leased: s.leased, Valid: s.valid(f.now()), Balance: s.balance, SafeUsed: s.safeUsed}, true
}

// Sender sends a lease request to the control plane and returns its
// answer.
type Sender = leasereport.Sender

// Run reports demand and applies slices until ctx ends: every refresh
// interval the leader asks for, and soon after a key without a slice sees
// a call. name is the data plane's. It reports even with no demand while
// budgets are configured, to learn the fleet's size.
func (f *Fleet) Run(ctx context.Context, name string, send Sender) {
	leasereport.Loop(ctx, f.kick, send, func() *configsyncv1.LeaseRequest {
		if !f.Configured() {
			return nil
		}
		return &configsyncv1.LeaseRequest{Name: name, BudgetDemands: f.Demands()}
	}, f.Apply, f.now)
}

// unit names one of the units and reads it.
type unit struct {
	name string
	get  func(Units) int64
}

var units = []unit{
	{"calls", func(u Units) int64 { return u.Calls }},
	{"tokens", func(u Units) int64 { return u.Tokens }},
	{"cost", func(u Units) int64 { return u.Cost }},
}

func ceilDiv(a, n int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a-1)/n + 1
}

// plus and minus are add and sub without the floor at zero (a balance may
// go below it), saturating.
func plus(a, b Units) Units {
	return Units{Calls: addSat(a.Calls, b.Calls), Tokens: addSat(a.Tokens, b.Tokens), Cost: addSat(a.Cost, b.Cost)}
}

func minus(a, b Units) Units {
	return Units{Calls: subSat(a.Calls, b.Calls), Tokens: subSat(a.Tokens, b.Tokens), Cost: subSat(a.Cost, b.Cost)}
}

func subSat(a, b int64) int64 {
	if s := a - b; (b >= 0) == (s <= a) {
		return s
	}
	if b > 0 {
		return -1 << 63
	}
	return 1<<63 - 1
}

func wire(u Units) *configsyncv1.BudgetUnits {
	return &configsyncv1.BudgetUnits{Calls: max(u.Calls, 0), Tokens: max(u.Tokens, 0), CostNanos: max(u.Cost, 0)}
}

func unitsOf(u *configsyncv1.BudgetUnits) Units {
	return Units{Calls: max(u.GetCalls(), 0), Tokens: max(u.GetTokens(), 0), Cost: max(u.GetCostNanos(), 0)}
}

// callOf is what budgets match c by.
func callOf(c *pipeline.Call) budgetkey.Call {
	bc := budgetkey.Call{Upstream: c.Target.Upstream, Target: c.Target.Name}
	if c.Agent != nil {
		bc.Agent, bc.Team = c.Agent.GetMeta().GetName(), c.Agent.GetTeam()
	}
	if c.User != nil {
		bc.User = c.User.Source + "/" + c.User.Name
	}
	return bc
}
