package limit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/limit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

type fleetClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fleetClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fleetClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var oneCall = limit.Units{Calls: 1}

func callsBudget(max int64) *configv1.Budget {
	return budget("calls", configv1.BudgetScope_BUDGET_SCOPE_TEAM, configv1.BudgetWindow_BUDGET_WINDOW_MONTH, func(b *configv1.Budget) { b.MaxCalls = max })
}

// admit reserves and settles n calls of team ops; it returns how many
// were admitted and the last refusal.
func admit(t *testing.T, f *limit.Fleet, at time.Time, n int) (int, *pipeline.Refusal) {
	t.Helper()
	ok := 0
	var last *pipeline.Refusal
	for range n {
		r, err := f.Reserve(context.Background(), call("a", "ops", at), oneCall)
		if err != nil {
			last = refusal(t, err)
			continue
		}
		r.Settle(oneCall)
		ok++
	}
	return ok, last
}

func grant(f *limit.Fleet, sent time.Time, d *configsyncv1.BudgetDemand, calls, unallocated int64, dataplanes uint32) {
	f.Apply(&configsyncv1.LeaseResponse{ValidFor: durationpb.New(6 * time.Second), Dataplanes: dataplanes, BudgetSlices: []*configsyncv1.BudgetSlice{{
		Budget: d.GetBudget(), Key: d.GetKey(), WindowStart: d.GetWindowStart(),
		Balance: &configsyncv1.BudgetUnits{Calls: calls}, Unallocated: &configsyncv1.BudgetUnits{Calls: unallocated},
	}}}, sent)
}

// A key without a slice admits its safe share (the limit ÷ the data
// planes, before the leader said what is left); with a slice, exactly the
// slice less what was spent since the report; once the slice expires, the
// safe share of what the leader last said was left, once per process.
func TestFleetSliceAndSafeShare(t *testing.T) {
	c := &fleetClock{t: t0}
	f := limit.NewFleet(c.now, nil)
	f.Configure([]*configv1.Budget{callsBudget(20)})
	f.Apply(&configsyncv1.LeaseResponse{Dataplanes: 4}, c.now()) // the fleet's size, before any slice

	if n, r := admit(t, f, c.now(), 10); n != 5 || r.Reason != pipeline.ReasonBudgetExhausted || r.RetryAfter != time.Second {
		t.Fatalf("before a slice: admitted %d of 10 (want the safe share 20/4 = 5), last refusal %+v (want budget_exhausted, retry in a second)", n, r)
	}
	ds := f.Demands()
	if len(ds) != 1 || ds[0].GetWant().GetCalls() != 10 || ds[0].GetRecent().GetCalls() != 5 || ds[0].GetBalance().GetCalls() != 0 {
		t.Fatalf("demands %v: want 10 calls asked, 5 spent lately, no balance", ds)
	}
	sent := c.now()
	admit(t, f, c.now(), 0)
	grant(f, sent, ds[0], 6, 9, 4)
	if n, _ := admit(t, f, c.now(), 10); n != 6 {
		t.Errorf("with a slice of 6: admitted %d", n)
	}
	// A call that consumes more than it reserved takes the balance below
	// zero: nothing more is admitted.
	sent = c.now()
	ds = f.Demands()
	grant(f, sent, ds[0], 3, 9, 4)
	r, err := f.Reserve(context.Background(), call("a", "ops", c.now()), oneCall)
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(limit.Units{Calls: 3})
	if n, _ := admit(t, f, c.now(), 3); n != 0 {
		t.Errorf("after a call settled 3 calls on a slice of 3: admitted %d more", n)
	}

	// The slice expires and the control plane is gone: the safe share is
	// ⌈9/4⌉ = 3, of which 5 were spent before the first slice.
	c.add(7 * time.Second)
	if n, _ := admit(t, f, c.now(), 3); n != 0 {
		t.Errorf("expired slice, safe share spent: admitted %d", n)
	}

	// A new process on the same key (a restart): the hint is gone, the
	// safe share is the limit ÷ the fleet size it learns.
	f2 := limit.NewFleet(c.now, nil)
	f2.Configure([]*configv1.Budget{callsBudget(20)})
	f2.Apply(&configsyncv1.LeaseResponse{Dataplanes: 2}, c.now())
	if n, _ := admit(t, f2, c.now(), 20); n != 10 {
		t.Errorf("a fresh process of a fleet of 2: admitted %d, want 10", n)
	}
}

// An exhausted key is refused until its window ends; a call larger than
// the whole budget is refused without a retry time.
func TestFleetExhausted(t *testing.T) {
	c := &fleetClock{t: t0}
	f := limit.NewFleet(c.now, nil)
	f.Configure([]*configv1.Budget{callsBudget(20)})
	admit(t, f, c.now(), 1)
	ds := f.Demands()
	f.Apply(&configsyncv1.LeaseResponse{ValidFor: durationpb.New(6 * time.Second), Dataplanes: 1, BudgetSlices: []*configsyncv1.BudgetSlice{{
		Budget: "calls", Key: "team ops", WindowStart: ds[0].GetWindowStart(), Balance: &configsyncv1.BudgetUnits{}, Unallocated: &configsyncv1.BudgetUnits{}, Exhausted: true,
	}}}, c.now())
	_, r := admit(t, f, c.now(), 1)
	end := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if r == nil || r.Reason != pipeline.ReasonBudgetExhausted || r.RetryAfter != end.Sub(t0) {
		t.Fatalf("exhausted key: refusal %+v, want budget_exhausted retrying at the window's end (%s)", r, end.Sub(t0))
	}
	_, err := f.Reserve(context.Background(), call("a", "ops", c.now()), limit.Units{Calls: 21})
	if r := refusal(t, err); r.RetryAfter != 0 {
		t.Errorf("a call over the whole budget: retry after %s, want none", r.RetryAfter)
	}
}

// Parallel calls on a slice never take more than the slice together.
func TestFleetParallelCallsStayInSlice(t *testing.T) {
	c := &fleetClock{t: t0}
	f := limit.NewFleet(c.now, nil)
	f.Configure([]*configv1.Budget{callsBudget(1000)})
	admit(t, f, c.now(), 1)
	ds := f.Demands()
	grant(f, c.now(), ds[0], 37, 0, 3)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			r, err := f.Reserve(context.Background(), call("a", "ops", c.now()), oneCall)
			if err != nil {
				return
			}
			admitted.Add(1)
			r.Settle(oneCall)
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 37 {
		t.Errorf("100 parallel calls on a slice of 37: admitted %d", n)
	}
}

// marks is a settable AuditMarks.
type marks struct{ durable, acked atomic.Uint64 }

func (m *marks) Durable() uint64 { return m.durable.Load() }
func (m *marks) Acked() uint64   { return m.acked.Load() }

// Recent spend is reported until the control plane holds the records
// that carry it, and a grace period after.
func TestFleetRecentFollowsAuditAcks(t *testing.T) {
	c := &fleetClock{t: t0}
	f := limit.NewFleet(c.now, nil)
	m := &marks{}
	f.SetAuditMarks(m)
	f.Configure([]*configv1.Budget{callsBudget(20)})
	admit(t, f, c.now(), 2)
	m.durable.Store(10)
	recent := func() int64 { return f.Demands()[0].GetRecent().GetCalls() }
	if got := recent(); got != 2 {
		t.Fatalf("recent %d right after the spend, want 2", got)
	}
	c.add(time.Second) // marked with sequence 10 at this report
	if got := recent(); got != 2 {
		t.Fatalf("recent %d before the control plane holds sequence 10, want 2", got)
	}
	m.acked.Store(9)
	c.add(time.Minute)
	if got := recent(); got != 2 {
		t.Fatalf("recent %d with sequence 10 not acknowledged (a minute later), want 2", got)
	}
	m.acked.Store(10)
	if got := recent(); got != 2 {
		t.Fatalf("recent %d right after the acknowledgement, want 2 (the consumer may not have folded it yet)", got)
	}
	c.add(2 * time.Second)
	if got := recent(); got != 0 {
		t.Errorf("recent %d after the grace period, want 0", got)
	}
}
