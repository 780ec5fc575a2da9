package adminapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/controlplane/replay"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// versions returns the kept versions of set name, oldest first, and the
// active version. A set written before history existed has only its
// active version, taken from the set itself.
func versions(st *state.State, name string) ([]*configv1.PolicyVersion, *configv1.PolicySet, error) {
	r, ok := st.Get(resource.PolicySet, name)
	if !ok {
		return nil, nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("policy set %q does not exist", name))
	}
	ps := r.GetPolicySet()
	if h, ok := st.Get(resource.PolicyHistory, name); ok {
		return h.GetPolicyHistory().GetVersions(), ps, nil
	}
	return []*configv1.PolicyVersion{{
		Version: ps.GetVersion(), Source: ps.GetSource(), Filename: ps.GetFilename(), PolicyIds: ps.GetPolicyIds(),
		Time: ps.GetMeta().GetUpdateTime(), Actor: ps.GetMeta().GetUpdatedBy(), Message: ps.GetMessage(),
	}}, ps, nil
}

// ListPolicyVersions implements PolicyService.
func (a *API) ListPolicyVersions(ctx context.Context, req *connect.Request[adminv1.ListPolicyVersionsRequest]) (*connect.Response[adminv1.ListPolicyVersionsResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	vs, ps, err := versions(st, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListPolicyVersionsResponse{ActiveVersion: ps.GetVersion()}
	for _, v := range vs {
		c := proto.CloneOf(v)
		c.Source = ""
		out.Versions = append(out.Versions, c)
	}
	return resp(out), nil
}

// GetPolicyVersion implements PolicyService.
func (a *API) GetPolicyVersion(ctx context.Context, req *connect.Request[adminv1.GetPolicyVersionRequest]) (*connect.Response[adminv1.GetPolicyVersionResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	vs, ps, err := versions(st, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	want := req.Msg.GetVersion()
	if want == 0 {
		want = ps.GetVersion()
	}
	for _, v := range vs {
		if v.GetVersion() == want {
			return resp(&adminv1.GetPolicyVersionResponse{Version: v, ActiveVersion: ps.GetVersion()}), nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("policy set %q keeps no version %d (it keeps %s)", req.Msg.GetName(), want, keptText(vs)))
}

func keptText(vs []*configv1.PolicyVersion) string {
	if len(vs) == 0 {
		return "none"
	}
	return fmt.Sprintf("versions %d to %d", vs[0].GetVersion(), vs[len(vs)-1].GetVersion())
}

// RollbackPolicySet implements PolicyService: the kept version becomes the
// set's next version, through one put that the state machine checks
// against the history (PolicySet.restores).
func (a *API) RollbackPolicySet(ctx context.Context, req *connect.Request[adminv1.RollbackPolicySetRequest]) (*connect.Response[adminv1.RollbackPolicySetResponse], error) {
	m := req.Msg
	if len(m.GetMessage()) > limits.PolicyMessage {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("message: at most %d bytes", limits.PolicyMessage))
	}
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	vs, ps, err := versions(st, m.GetName())
	if err != nil {
		return nil, err
	}
	if ro, ok := st.ActiveRollout(); ok && ro.GetPolicySet() == m.GetName() {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("policy set %q is in rollout %s (%s); roll the rollout back instead: gwctl rollout rollback %s",
			m.GetName(), ro.GetMeta().GetName(), state.StageName(ro.GetStage()), ro.GetMeta().GetName()))
	}
	var target *configv1.PolicyVersion
	for _, v := range vs {
		switch {
		case m.GetToVersion() != 0 && v.GetVersion() == m.GetToVersion():
			target = v
		case m.GetToVersion() == 0 && v.GetVersion() < ps.GetVersion():
			target = v // the newest before the active one
		}
	}
	switch {
	case target == nil && m.GetToVersion() == 0:
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("policy set %q keeps no version before its active version %d", m.GetName(), ps.GetVersion()))
	case target == nil:
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("policy set %q keeps no version %d (it keeps %s)", m.GetName(), m.GetToVersion(), keptText(vs)))
	case target.GetVersion() == ps.GetVersion():
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("version %d is policy set %q's active version", target.GetVersion(), m.GetName()))
	}
	next := proto.CloneOf(ps)
	next.Source, next.Filename, next.Restores = target.GetSource(), target.GetFilename(), target.GetVersion()
	next.Message = m.GetMessage()
	if next.Message == "" {
		next.Message = fmt.Sprintf("rollback to version %d", target.GetVersion())
	}
	r, err := a.put(ctx, req.Header(), "PolicyService.RollbackPolicySet", resource.Wrap(next), fsmv1.WriteMode_WRITE_MODE_UPDATE, ps.GetMeta().GetRevision())
	if err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "policy set rolled back", "policy_set", m.GetName(), "restored", target.GetVersion(), "version", r.GetPolicySet().GetVersion(), "by", callerFrom(ctx).tokenID)
	return resp(&adminv1.RollbackPolicySetResponse{PolicySet: r.GetPolicySet(), Restored: target.GetVersion()}), nil
}

// SetPolicyTests implements PolicyService.
func (a *API) SetPolicyTests(ctx context.Context, req *connect.Request[adminv1.SetPolicyTestsRequest]) (*connect.Response[adminv1.SetPolicyTestsResponse], error) {
	t := &configv1.PolicyTests{Meta: &configv1.ResourceMeta{Name: req.Msg.GetName()}, Cases: req.Msg.GetCases()}
	r, err := a.put(ctx, req.Header(), "PolicyService.SetPolicyTests", resource.Wrap(t), fsmv1.WriteMode_WRITE_MODE_UPSERT, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetPolicyTestsResponse{Tests: r.GetPolicyTests()}), nil
}

// GetPolicyTests implements PolicyService.
func (a *API) GetPolicyTests(ctx context.Context, req *connect.Request[adminv1.GetPolicyTestsRequest]) (*connect.Response[adminv1.GetPolicyTestsResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.PolicyTests, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetPolicyTestsResponse{Tests: r.GetPolicyTests()}), nil
}

// DeletePolicyTests implements PolicyService.
func (a *API) DeletePolicyTests(ctx context.Context, req *connect.Request[adminv1.DeletePolicyTestsRequest]) (*connect.Response[adminv1.DeletePolicyTestsResponse], error) {
	if err := a.remove(ctx, req.Header(), "PolicyService.DeletePolicyTests", resource.PolicyTests, req.Msg.GetName(), 0); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeletePolicyTestsResponse{}), nil
}

// checkCandidate checks a candidate's bounds before anything parses it.
func checkCandidate(name, source, filename string) error {
	if err := resource.ValidateName("name", name); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	if len(source) > limits.PolicySetSource {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("source: at most %d bytes", limits.PolicySetSource))
	}
	if len(filename) > limits.PolicyFilename || strings.ContainsAny(filename, "\x00\n") {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("filename: one line of at most %d bytes", limits.PolicyFilename))
	}
	if err := limits.CheckCedar([]byte(source)); err != nil {
		var le *limits.Error
		if errors.As(err, &le) {
			if filename == "" {
				filename = name + ".cedar"
			}
			return connect.NewError(connect.CodeInvalidArgument, errors.New(le.In(filename)))
		}
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return nil
}

// candidateError maps a candidate that does not compile to
// INVALID_ARGUMENT naming every problem (file:line:col).
func candidateError(ctx context.Context, a *API, err error) error {
	var aerr *authz.Error
	if errors.As(err, &aerr) {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the candidate does not validate:\n- %s", strings.Join(aerr.Problems, "\n- ")))
	}
	return a.storeError(ctx, err)
}

// ReplayPolicySet implements PolicyService over this node's audit store.
func (a *API) ReplayPolicySet(ctx context.Context, req *connect.Request[adminv1.ReplayPolicySetRequest]) (*connect.Response[adminv1.ReplayPolicySetResponse], error) {
	m := req.Msg
	if a.cfg.Audit == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("this node keeps no audit store"))
	}
	if err := checkCandidate(m.GetName(), m.GetSource(), m.GetFilename()); err != nil {
		return nil, err
	}
	if len(m.GetAgent()) > limits.Name || len(m.GetTool()) > limits.Name {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("agent and tool: at most %d bytes", limits.Name))
	}
	if m.GetMaxExamples() < 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("max_examples must not be negative"))
	}
	o := replay.Options{Set: m.GetName(), Source: m.GetSource(), Filename: m.GetFilename(), Agent: m.GetAgent(), Tool: m.GetTool(), MaxExamples: int(m.GetMaxExamples())}
	if m.GetFrom() != nil {
		o.From = m.GetFrom().AsTime()
	}
	if m.GetTo() != nil {
		o.To = m.GetTo().AsTime()
	}
	if !o.From.IsZero() && !o.To.IsZero() && !o.From.Before(o.To) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("from must be before to"))
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	rep, err := replay.Run(ctx, st, a.cfg.Audit, o)
	if err != nil {
		return nil, candidateError(ctx, a, err)
	}
	out := &adminv1.ReplayPolicySetResponse{
		ConfigVersion: rep.ConfigVersion, Records: rep.Records, Undecided: rep.Undecided, Judged: rep.Judged,
		AllowToDeny: rep.AllowToDeny, DenyToAllow: rep.DenyToAllow, DeadPolicies: rep.DeadPolicies, Truncated: rep.Truncated,
	}
	for _, c := range rep.ChangeCounts {
		out.ChangeCounts = append(out.ChangeCounts, &adminv1.ReplayChangeCount{Agent: c.Agent, Tool: c.Tool, AllowToDeny: c.AllowToDeny, DenyToAllow: c.DenyToAllow})
	}
	for _, c := range rep.Changes {
		out.Changes = append(out.Changes, &adminv1.ReplayChange{
			Time: timestamppb.New(c.Time), Dataplane: c.Dataplane, Sequence: c.Sequence, Agent: c.Agent, Tool: c.Tool,
			Recorded: c.Recorded, Candidate: c.Candidate, RecordedPolicies: c.RecordedPolicies, CandidatePolicies: c.CandidatePolicies,
		})
	}
	for _, u := range rep.Unjudged {
		out.Unjudged = append(out.Unjudged, &adminv1.ReplayUnjudged{Reason: u.Reason, Count: u.Count, Examples: u.Examples})
	}
	return resp(out), nil
}
