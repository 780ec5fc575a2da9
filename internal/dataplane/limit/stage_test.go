package limit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/limit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// recorder is a Reserver that records what the stage asks.
type recorder struct {
	worst     []limit.Units
	settled   []limit.Units
	cancelled int
	refuse    error
}

func (r *recorder) Reserve(_ context.Context, _ *pipeline.Call, worst limit.Units) (limit.Reservation, error) {
	if r.refuse != nil {
		return nil, r.refuse
	}
	r.worst = append(r.worst, worst)
	return reservation{r}, nil
}

type reservation struct{ r *recorder }

func (v reservation) Settle(u limit.Units) { v.r.settled = append(v.r.settled, u) }
func (v reservation) Cancel()              { v.r.cancelled++ }

func TestStage(t *testing.T) {
	price := pipeline.Price{Input: 2_500_000, Output: 10_000_000} // 2.50 and 10.00 per million
	modelCall := func() *pipeline.Call {
		return &pipeline.Call{Op: pipeline.OpCall, Start: t0, Demand: pipeline.Demand{InputTokens: 1000, OutputTokens: 500},
			Target: pipeline.Target{Kind: pipeline.KindModel, Model: pipeline.Model{Prices: []pipeline.Price{price}}}}
	}
	ctx := context.Background()

	t.Run("reserve the worst case, settle on the usage", func(t *testing.T) {
		r := &recorder{}
		res, err := limit.Stage{Reserver: r}.Handle(ctx, modelCall(), func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
			return &pipeline.Result{Usage: &pipeline.Usage{InputTokens: 900, OutputTokens: 100, Cost: 3_250_000, Priced: true}}, nil
		})
		if err != nil || res == nil {
			t.Fatal(err)
		}
		// 1000·2.50/1e6 + 500·10/1e6 = 0.0075
		if want := (limit.Units{Calls: 1, Tokens: 1500, Cost: 7_500_000}); len(r.worst) != 1 || r.worst[0] != want {
			t.Errorf("reserved %+v, want %+v", r.worst, want)
		}
		if want := (limit.Units{Calls: 1, Tokens: 1000, Cost: 3_250_000}); len(r.settled) != 1 || r.settled[0] != want {
			t.Errorf("settled %+v, want %+v", r.settled, want)
		}
	})
	t.Run("a partial result with an error still settles", func(t *testing.T) {
		r := &recorder{}
		_, _ = limit.Stage{Reserver: r}.Handle(ctx, modelCall(), func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
			return &pipeline.Result{Usage: &pipeline.Usage{InputTokens: 10, OutputTokens: 5, Estimated: true}}, errors.New("stream broke")
		})
		if len(r.settled) != 1 || r.settled[0].Tokens != 15 || !r.settled[0].Unpriced {
			t.Errorf("settled %+v", r.settled)
		}
	})
	t.Run("no result: cancel", func(t *testing.T) {
		r := &recorder{}
		_, _ = limit.Stage{Reserver: r}.Handle(ctx, modelCall(), func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
			return nil, pipeline.Refuse(pipeline.ReasonDenied, "no")
		})
		if r.cancelled != 1 || len(r.settled) != 0 {
			t.Errorf("cancelled %d settled %v", r.cancelled, r.settled)
		}
	})
	t.Run("refused before the call", func(t *testing.T) {
		r := &recorder{refuse: pipeline.Refuse(pipeline.ReasonBudgetExhausted, "spent")}
		ran := false
		_, err := limit.Stage{Reserver: r}.Handle(ctx, modelCall(), func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
			ran = true
			return nil, nil
		})
		if ran || err == nil {
			t.Errorf("the call ran (%v) or was not refused (%v)", ran, err)
		}
	})
	t.Run("lists are not limited", func(t *testing.T) {
		r := &recorder{}
		c := modelCall()
		c.Op = pipeline.OpList
		_, _ = limit.Stage{Reserver: r}.Handle(ctx, c, func(context.Context, *pipeline.Call) (*pipeline.Result, error) { return &pipeline.Result{}, nil })
		if len(r.worst) != 0 {
			t.Error("a list was reserved")
		}
	})
	t.Run("an unpriced model", func(t *testing.T) {
		c := modelCall()
		c.Target.Model.Prices = nil
		if w := limit.Worst(c); !w.Unpriced || w.Cost != 0 {
			t.Errorf("worst %+v", w)
		}
		c.Target.Model.Prices = []pipeline.Price{{From: t0.Add(time.Hour), Input: 1}}
		if w := limit.Worst(c); !w.Unpriced {
			t.Errorf("a price from later applies now: %+v", w)
		}
	})
}
