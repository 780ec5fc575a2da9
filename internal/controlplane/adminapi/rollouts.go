package adminapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/access"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/rollout"
	"github.com/portcullis-gw/portcullis/internal/controlplane/rolloutgate"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// maxFailedCases bounds the failing stored cases a refused rollout names.
const maxFailedCases = 20

// StartRollout implements RolloutService: the "validated" stage. The
// candidate is compiled with today's configuration (strict schema
// validation) and must pass the set's stored cases; the state machine
// checks the schema again, and that the stored cases are still the ones
// passed, when it applies the start.
func (a *API) StartRollout(ctx context.Context, req *connect.Request[adminv1.StartRolloutRequest]) (*connect.Response[adminv1.StartRolloutResponse], error) {
	m := req.Msg
	if err := checkCandidate(m.GetPolicySet(), m.GetSource(), m.GetFilename()); err != nil {
		return nil, err
	}
	gates, err := rolloutgate.Canonical(m.GetGates())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("--auto-rollback: %w", err))
	}
	reqID, err := requestID(req.Header())
	if err != nil {
		return nil, err
	}
	ro := &configv1.Rollout{
		Meta:      &configv1.ResourceMeta{Name: rolloutID(m.GetPolicySet(), callerFrom(ctx).tokenID, reqID)},
		PolicySet: m.GetPolicySet(), Source: m.GetSource(), Filename: m.GetFilename(), Message: m.GetMessage(),
		Plan: &configv1.RolloutPlan{Shadow: m.GetShadow(), CanaryBasisPoints: m.GetCanaryBasisPoints(), Step: m.GetStep(), Gates: gates},
	}
	if ro.Plan.Shadow == nil {
		ro.Plan.Shadow = durationpb.New(0)
	}
	if err := resource.Validate(resource.Wrap(ro)); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	set, ok := st.Get(resource.PolicySet, m.GetPolicySet())
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("policy set %q does not exist; apply its first version with gwctl policy apply", m.GetPolicySet()))
	}
	if ro.Filename == "" {
		ro.Filename = set.GetPolicySet().GetFilename()
	}
	if cur, ok := st.ActiveRollout(); ok && cur.GetMeta().GetName() == ro.GetMeta().GetName() {
		// A retry of the start that made it: its result.
		return resp(&adminv1.StartRolloutResponse{Rollout: cur}), nil
	} else if ok {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("rollout %s of policy set %q is in %s; one rollout runs at a time: finish, roll back or abort it first",
			cur.GetMeta().GetName(), cur.GetPolicySet(), state.StageName(cur.GetStage())))
	}
	eng, err := access.Candidate(st, m.GetPolicySet(), m.GetSource(), ro.GetFilename())
	if err != nil {
		return nil, candidateError(ctx, a, err)
	}
	if tests, ok := st.Get(resource.PolicyTests, m.GetPolicySet()); ok {
		results := access.RunCases(ctx, eng, tests.GetPolicyTests().GetCases(), a.cfg.Now())
		var failed []string
		for _, r := range results {
			if !r.Passed {
				failed = append(failed, r.Name+": "+r.Why)
			}
		}
		if len(failed) > 0 {
			shown := failed[:min(len(failed), maxFailedCases)]
			msg := fmt.Sprintf("the candidate fails %d of policy set %q's %d stored test cases, so the rollout does not start:\n- %s",
				len(failed), m.GetPolicySet(), len(results), strings.Join(shown, "\n- "))
			if len(failed) > len(shown) {
				msg += fmt.Sprintf("\n- and %d more", len(failed)-len(shown))
			}
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
		}
		ro.TestsRevision = tests.GetPolicyTests().GetMeta().GetRevision()
		ro.TestsPassed = uint32(len(results))
	}
	r, err := a.put(ctx, req.Header(), "RolloutService.StartRollout", resource.Wrap(ro), fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "rollout started", "rollout", ro.GetMeta().GetName(), "policy_set", ro.GetPolicySet(),
		"stage", state.StageName(r.GetRollout().GetStage()), "by", callerFrom(ctx).tokenID)
	return resp(&adminv1.StartRolloutResponse{Rollout: r.GetRollout()}), nil
}

// rolloutID names a rollout after its set and the request that started
// it, so a retried start names the same rollout and each start draws its
// own canary sample: "<set>-<8 hex digits>".
func rolloutID(set, token, reqID string) string {
	sum := sha256.Sum256([]byte(token + "\x00" + reqID))
	return strings.TrimRight(set[:min(len(set), 54)], "-") + "-" + hex.EncodeToString(sum[:4])
}

// findRollout resolves a rollout id, a policy set's name (its newest
// rollout), or "" (the rollout in progress).
func findRollout(st *state.State, name string) (*configv1.Rollout, error) {
	if name == "" {
		if ro, ok := st.ActiveRollout(); ok {
			return ro, nil
		}
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no rollout is in progress; name one (gwctl rollout list)"))
	}
	if r, ok := st.Get(resource.Rollout, name); ok {
		return r.GetRollout(), nil
	}
	var newest *configv1.Rollout
	st.Each(resource.Rollout, func(r *fsmv1.Resource) bool {
		ro := r.GetRollout()
		if ro.GetPolicySet() == name && (newest == nil || ro.GetMeta().GetCreateTime().AsTime().After(newest.GetMeta().GetCreateTime().AsTime())) {
			newest = ro
		}
		return true
	})
	if newest == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no rollout and no policy set's rollout is named %q (gwctl rollout list)", name))
	}
	return newest, nil
}

// GetRollout implements RolloutService.
func (a *API) GetRollout(ctx context.Context, req *connect.Request[adminv1.GetRolloutRequest]) (*connect.Response[adminv1.GetRolloutResponse], error) {
	if len(req.Msg.GetName()) > limits.Name {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("name: at most %d bytes", limits.Name))
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	ro, err := findRollout(st, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	out := &adminv1.GetRolloutResponse{Rollout: ro, Status: &adminv1.RolloutStatus{}}
	if a.cfg.Audit != nil {
		s, err := rollout.StatusOf(ro, a.cfg.Audit, a.cfg.Now())
		if err != nil {
			return nil, a.storeError(ctx, err)
		}
		out.Status = statusProto(s)
	}
	if state.Active(ro) {
		dps, err := a.dataplanes(ctx, st)
		if err != nil {
			return nil, err
		}
		out.Status.Dataplanes = dps
	}
	return resp(out), nil
}

func statusProto(s rollout.Status) *adminv1.RolloutStatus {
	out := &adminv1.RolloutStatus{Next: s.Next}
	for _, r := range s.Totals {
		out.Totals = append(out.Totals, &adminv1.RolloutTotals{
			Stage: r.Step.Stage, CanaryBasisPoints: r.Step.BasisPoints, Cohort: r.Cohort, Calls: r.Calls,
			AllowToDeny: r.AllowToDeny, DenyToAllow: r.DenyToAllow, EvalErrors: r.EvalErrors, Forwarded: r.Forwarded, UpstreamErrors: r.UpstreamErrors,
		})
	}
	for _, g := range s.Gates {
		out.Gates = append(out.Gates, &adminv1.RolloutGateStatus{Gate: g.Gate.Text, Value: g.Value, Judged: g.Judged, Breached: g.Breached})
	}
	for _, r := range s.Differences {
		out.Differences = append(out.Differences, &adminv1.RolloutDifference{
			Agent: r.Agent, Tool: r.Tool, Cohort: r.Cohort, Calls: r.Calls, AllowToDeny: r.AllowToDeny, DenyToAllow: r.DenyToAllow, EvalErrors: r.EvalErrors,
		})
	}
	return out
}

// ListRollouts implements RolloutService, newest first.
func (a *API) ListRollouts(ctx context.Context, req *connect.Request[adminv1.ListRolloutsRequest]) (*connect.Response[adminv1.ListRolloutsResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListRolloutsResponse{}
	st.Each(resource.Rollout, func(r *fsmv1.Resource) bool {
		if set := req.Msg.GetPolicySet(); set == "" || r.GetRollout().GetPolicySet() == set {
			out.Rollouts = append(out.Rollouts, r.GetRollout())
		}
		return true
	})
	slices.SortFunc(out.Rollouts, func(x, y *configv1.Rollout) int {
		if c := y.GetMeta().GetCreateTime().AsTime().Compare(x.GetMeta().GetCreateTime().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(x.GetMeta().GetName(), y.GetMeta().GetName())
	})
	return resp(out), nil
}

// ChangeRollout implements RolloutService: the change is decided at the
// stage the rollout is at now, so it is refused (ABORTED) if the
// controller moved the rollout on meanwhile.
func (a *API) ChangeRollout(ctx context.Context, req *connect.Request[adminv1.ChangeRolloutRequest]) (*connect.Response[adminv1.ChangeRolloutResponse], error) {
	m := req.Msg
	var action fsmv1.RolloutAction
	switch m.GetAction() {
	case adminv1.RolloutAction_ROLLOUT_ACTION_PROMOTE:
		action = fsmv1.RolloutAction_ROLLOUT_ACTION_PROMOTE
	case adminv1.RolloutAction_ROLLOUT_ACTION_PAUSE:
		action = fsmv1.RolloutAction_ROLLOUT_ACTION_PAUSE
	case adminv1.RolloutAction_ROLLOUT_ACTION_RESUME:
		action = fsmv1.RolloutAction_ROLLOUT_ACTION_RESUME
	case adminv1.RolloutAction_ROLLOUT_ACTION_ABORT:
		action = fsmv1.RolloutAction_ROLLOUT_ACTION_ABORT
	case adminv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK:
		action = fsmv1.RolloutAction_ROLLOUT_ACTION_ROLLBACK
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("action must be promote, pause, resume, abort or rollback"))
	}
	if len(m.GetName()) > limits.Name || len(m.GetReason()) > limits.PolicyMessage {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("name and reason: at most %d and %d bytes", limits.Name, limits.PolicyMessage))
	}
	reqID, err := requestID(req.Header())
	if err != nil {
		return nil, err
	}
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	ro, err := findRollout(st, m.GetName())
	if err != nil {
		return nil, err
	}
	cmd := a.command(ctx, reqID, "RolloutService.ChangeRollout")
	cmd.Op = &fsmv1.Command_RolloutChange{RolloutChange: &fsmv1.RolloutChange{
		Rollout: ro.GetMeta().GetName(), Action: action, ExpectStage: ro.GetStage(), ExpectStep: ro.GetCanaryStep(), Reason: m.GetReason(),
	}}
	res, err := a.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	done := res.GetResource().GetRollout()
	a.log.InfoContext(ctx, "rollout changed", "rollout", done.GetMeta().GetName(), "action", strings.ToLower(m.GetAction().String()),
		"stage", state.StageName(done.GetStage()), "by", callerFrom(ctx).tokenID)
	return resp(&adminv1.ChangeRolloutResponse{Rollout: done}), nil
}
