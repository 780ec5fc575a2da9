// Package limit is the pipeline's Limit stage and the seam behind it:
// before a call runs, the stage reserves the most it may consume (one
// call, its tokens, their cost at the target's price) against every limit
// that applies to it, and after it settles the reservation on what the
// call consumed. A call a limit cannot admit is refused before it reaches
// its upstream. Reserving first is what keeps concurrent calls from
// overshooting a budget together.
//
// Reserver is the seam: Fleet enforces budgets across the fleet with
// slices leased from the control plane (whose usage is derived from its
// audit store); without a control plane it admits each key's safe share.
package limit

import (
	"context"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Units are what a call counts against limits.
type Units struct {
	// Calls is 1 for a call.
	Calls int64
	// Tokens is input plus output tokens.
	Tokens int64
	// Cost is in nano-units of the price tables' currency.
	Cost int64
	// Unpriced is set when the call consumes tokens whose model has no
	// price: a cost limit cannot admit it.
	Unpriced bool
}

// Reserver admits calls against limits. Implementations must be safe for
// concurrent use and must not wait on the network.
type Reserver interface {
	// Reserve holds worst, the most c may consume, against every limit
	// that applies to c, or refuses c with a *pipeline.Refusal
	// (budget_exhausted with RetryAfter, or unpriced) holding nothing.
	Reserve(ctx context.Context, c *pipeline.Call, worst Units) (Reservation, error)
}

// Reservation is what Reserve held. Exactly one of Settle and Cancel is
// called, once.
type Reservation interface {
	// Settle replaces the hold by what the call consumed (which may be
	// more than the hold: a provider's count is what it bills).
	Settle(actual Units)
	// Cancel releases the hold: the call consumed nothing.
	Cancel()
}

// Stage is the Limit stage: it reserves the worst case of every call (not
// lists or session requests) before the stages after it run, and settles
// on the call's usage once they return. A call that ends without a result
// (refused later, or failed before its upstream answered) consumed
// nothing; one with a result counts as a call, with the tokens and cost
// its result reports.
type Stage struct {
	Reserver Reserver
}

var _ pipeline.Stage = Stage{}

// Name implements pipeline.Stage.
func (Stage) Name() string { return "limit" }

// Handle implements pipeline.Stage.
func (s Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (*pipeline.Result, error) {
	if c.Op != pipeline.OpCall || s.Reserver == nil {
		return next(ctx, c)
	}
	r, err := s.Reserver.Reserve(ctx, c, Worst(c))
	if err != nil {
		return nil, err
	}
	settled := false
	defer func() {
		if !settled {
			r.Cancel() // a later stage panicked
		}
	}()
	res, err := next(ctx, c)
	settled = true
	if res == nil {
		r.Cancel()
	} else {
		r.Settle(Actual(res))
	}
	return res, err
}

// Worst is the most c may consume: one call, its demand in tokens, and
// their cost at its target's price when it starts.
func Worst(c *pipeline.Call) Units {
	d := c.Demand
	u := Units{Calls: 1, Tokens: d.InputTokens + d.OutputTokens}
	if u.Tokens == 0 {
		return u
	}
	p := c.Target.Model.PriceAt(startOf(c))
	if p == nil {
		u.Unpriced = true
		return u
	}
	u.Cost = p.Cost(pipeline.Usage{InputTokens: d.InputTokens, OutputTokens: d.OutputTokens})
	return u
}

// Actual is what a call with result res consumed.
func Actual(res *pipeline.Result) Units {
	u := Units{Calls: 1}
	if us := res.Usage; us != nil {
		u.Tokens, u.Cost = us.Tokens(), us.Cost
		u.Unpriced = !us.Priced && u.Tokens > 0
	}
	return u
}

func startOf(c *pipeline.Call) time.Time {
	if c.Start.IsZero() {
		return time.Now()
	}
	return c.Start
}
