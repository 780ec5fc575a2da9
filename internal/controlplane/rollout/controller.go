// Package rollout is the control plane's rollout controller: singleton
// work on the leader that moves the policy rollout in progress on when its
// stage's time is up, and rolls it back by itself when one of its gates is
// breached. Everything it decides from is replicated: the rollout (its
// plan, stage and when the stage began) is in the resource state, and the
// counts it judges are the summaries data planes uploaded with their
// audit records, which every node's audit store holds. So a new leader
// continues the same rollout where the old one left it.
//
// Every change is a RolloutChange naming the stage and step it was
// decided at: a change decided on a stale view — by a leader that has
// just lost its leadership, or by an operator racing the controller —
// is refused and changes nothing.
package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/rolloutgate"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Leadership says whether this node should run singleton work now.
// IsLeader must be safe for concurrent use and cheap: the controller asks
// before every pass. raftstore.Node implements it with Raft's leadership;
// another store implements it with its own election.
type Leadership interface {
	IsLeader() bool
}

// DefaultInterval is how often the controller looks at the rollout in
// progress (it also looks whenever the state changes).
const DefaultInterval = time.Second

// Config configures a Controller.
type Config struct {
	Store   store.Store
	Records Records
	Leader  Leadership
	// NodeID names this node in the changes it makes ("node:<id>").
	NodeID string
	// Interval between passes (DefaultInterval when zero).
	Interval time.Duration
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Controller runs rollouts. Run it once per node; only the leader acts.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	tally *Tally
}

// New returns a controller.
func New(cfg Config) *Controller {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("component", "rollout")}
}

// Run makes a pass every interval and whenever the state changes, until
// ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		changed := c.cfg.Store.Changed()
		if err := c.Step(ctx); err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "rollout controller", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
	}
}

// Step is one pass: on the leader, with a rollout in shadow or canary, it
// reads the counts uploaded since the last pass, rolls the rollout back
// when a gate is breached in any step so far, and otherwise promotes it
// when its stage's time is up (and, with min_calls, enough calls were
// counted) unless an operator paused it.
func (c *Controller) Step(ctx context.Context) error {
	if !c.cfg.Leader.IsLeader() {
		return nil
	}
	st, err := c.cfg.Store.State(ctx, false)
	if err != nil {
		return err
	}
	ro, ok := st.ActiveRollout()
	if !ok {
		c.tally = nil
		return nil
	}
	if c.tally == nil || c.tally.ID() != ro.GetMeta().GetName() {
		c.tally = NewTally(ro)
	}
	if err := c.tally.Update(c.cfg.Records, ro.GetMeta().GetCreateTime().AsTime()); err != nil {
		return fmt.Errorf("read the rollout's counts: %w", err)
	}
	gates, err := rolloutgate.Parse(ro.GetPlan().GetGates())
	if err != nil {
		return fmt.Errorf("rollout %s: gates: %w", ro.GetMeta().GetName(), err) // refused at write time
	}
	if breach, where, ok := Breach(gates, c.tally); ok {
		return c.change(ctx, ro, fsmv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK, breach.Reason(where))
	}
	if ro.GetPaused() {
		return nil
	}
	if due, _ := Due(ro, gates, c.tally, c.cfg.Now()); due {
		return c.change(ctx, ro, fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE, "")
	}
	return nil
}

// Breach finds the first gate breached in any step measured so far, and
// the step's name.
func Breach(gates rolloutgate.Gates, t *Tally) (rolloutgate.Result, string, bool) {
	for _, step := range t.Steps() {
		for _, r := range gates.Judge(t.Measured(step)) {
			if r.Breached {
				return r, StepName(step), true
			}
		}
	}
	return rolloutgate.Result{}, "", false
}

// StepName words a step: "shadow", "canary 25%".
func StepName(s Step) string {
	if s.Stage == CohortCanary {
		return "canary " + state.FormatShare(s.BasisPoints)
	}
	return s.Stage
}

// current is the step ro is at.
func current(ro *configv1.Rollout) Step {
	if ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_CANARY {
		return Step{Stage: CohortCanary, BasisPoints: state.CanaryShare(ro)}
	}
	return Step{Stage: CohortShadow}
}

// Due reports whether ro's current stage may end now, and when not, what
// it waits for.
func Due(ro *configv1.Rollout, gates rolloutgate.Gates, t *Tally, now time.Time) (bool, string) {
	d := ro.GetPlan().GetShadow().AsDuration()
	if ro.GetStage() == configv1.RolloutStage_ROLLOUT_STAGE_CANARY {
		d = ro.GetPlan().GetStep().AsDuration()
	}
	end := ro.GetStageStartTime().AsTime().Add(d)
	if now.Before(end) {
		return false, fmt.Sprintf("%s until %s (%s)", StepName(current(ro)), end.UTC().Format(time.RFC3339), end.Sub(now).Round(time.Second))
	}
	if gates.MinCalls > 0 {
		m := t.Measured(current(ro))
		if !gates.Enough(m) {
			return false, fmt.Sprintf("%s: waiting for min_calls=%d (counted %d)", StepName(current(ro)), gates.MinCalls, m.Compared.Calls)
		}
	}
	return true, ""
}

// change proposes a change of ro decided at its current stage and step.
func (c *Controller) change(ctx context.Context, ro *configv1.Rollout, action fsmv1.RolloutAction, reason string) error {
	method := "RolloutController.Promote"
	if action == fsmv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK {
		method = "RolloutController.Rollback"
	}
	cmd := &fsmv1.Command{
		RequestId: fmt.Sprintf("rollout-%s-%d-%d-%d", ro.GetMeta().GetName(), ro.GetStage(), ro.GetCanaryStep(), action),
		Actor:     &configv1.Actor{TokenId: "node:" + c.cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:      timestamppb.New(c.cfg.Now()),
		Method:    method,
		Op: &fsmv1.Command_RolloutChange{RolloutChange: &fsmv1.RolloutChange{
			Rollout: ro.GetMeta().GetName(), Action: action, ExpectStage: ro.GetStage(), ExpectStep: ro.GetCanaryStep(),
			Reason: cut(reason, 1024), Automatic: true,
		}},
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := c.cfg.Store.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", ro.GetMeta().GetName(), err)
	}
	if e := res.GetError(); e != nil {
		if e.GetCode() == fsmv1.ErrorCode_ERROR_CODE_ABORTED {
			return nil // it moved on meanwhile; the next pass looks again
		}
		return fmt.Errorf("rollout %s: %s: %s", ro.GetMeta().GetName(), e.GetCode(), e.GetMessage())
	}
	done := res.GetResource().GetRollout()
	c.log.InfoContext(ctx, "rollout moved on", "rollout", ro.GetMeta().GetName(), "policy_set", ro.GetPolicySet(),
		"from", state.StageName(ro.GetStage()), "to", state.StageName(done.GetStage()), "canary", state.FormatShare(state.CanaryShare(done)), "reason", reason)
	return nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
