package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/learn"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// maxHistory bounds --from-history: longer than any audit retention.
const maxHistory = 10 * 366 * 24 * time.Hour

// SetLearning implements ValueListService. The tool must be pinned and the
// argument a string property of its pinned input schema, so a typo is
// refused rather than learning nothing. A list that learns already keeps
// what it learned when the tool, argument and scope stay the same (its
// seeding included); any change starts it afresh.
func (a *API) SetLearning(ctx context.Context, req *connect.Request[adminv1.SetLearningRequest]) (*connect.Response[adminv1.SetLearningResponse], error) {
	m := req.Msg
	l := &configv1.ListLearning{Meta: &configv1.ResourceMeta{Name: m.GetName()}, Tool: m.GetTool(), Argument: m.GetArgument(), Scope: m.GetScope()}
	if err := resource.Validate(resource.Wrap(l)); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if h := m.GetFromHistory(); h != nil {
		d := h.AsDuration()
		if d <= 0 || d > maxHistory {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("from_history must be positive and at most 10 years"))
		}
		l.SeedFrom = timestamppb.New(a.cfg.Now().Add(-d))
	}
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	if _, ok := st.Get(resource.ValueList, l.GetMeta().GetName()); !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("value list %q does not exist; create it first (gwctl valuelist create %s)", m.GetName(), m.GetName()))
	}
	if err := checkLearnedArgument(st, l.GetTool(), l.GetArgument()); err != nil {
		return nil, err
	}
	rev := uint64(0)
	if cur, ok := st.Get(resource.ListLearning, m.GetName()); ok {
		o := cur.GetListLearning()
		rev = o.GetMeta().GetRevision()
		if o.GetTool() == l.GetTool() && o.GetArgument() == l.GetArgument() && o.GetScope() == l.GetScope() {
			l.SeedFrom = o.GetSeedFrom() // the same learning: keep what it learned
		}
	}
	r, err := a.put(ctx, req.Header(), "ValueListService.SetLearning", resource.Wrap(l), fsmv1.WriteMode_WRITE_MODE_UPSERT, rev)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetLearningResponse{Learning: r.GetListLearning()}), nil
}

// checkLearnedArgument refuses a tool that is not pinned, and an argument
// that is not a string property of its pinned input schema.
func checkLearnedArgument(st *state.State, action, argument string) error {
	up, tool, ok := learn.Tool(st, action)
	if !ok {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("no pinned tool is called %q (tools are named <prefix>__<tool>; gwctl tool list shows them)", action))
	}
	pin, _ := st.Get(resource.ToolPin, resource.ToolPinName(up, tool))
	var schema any
	if err := json.Unmarshal(resource.ActiveVersion(pin.GetToolPin()).GetInputSchema(), &schema); err != nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("tool %q has no readable input schema, so it has no argument %q", action, argument))
	}
	for _, name := range resource.ArgumentPath(argument) {
		obj, _ := schema.(map[string]any)
		props, _ := obj["properties"].(map[string]any)
		if schema = props[name]; schema == nil {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("tool %q has no argument %q in its pinned input schema", action, argument))
		}
	}
	if obj, _ := schema.(map[string]any); obj["type"] != "string" {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("argument %q of tool %q is not a string: only strings are learned (policies compare them with context.learned[…].contains)", argument, action))
	}
	return nil
}

// StopLearning implements ValueListService.
func (a *API) StopLearning(ctx context.Context, req *connect.Request[adminv1.StopLearningRequest]) (*connect.Response[adminv1.StopLearningResponse], error) {
	if err := a.remove(ctx, req.Header(), "ValueListService.StopLearning", resource.ListLearning, req.Msg.GetName(), 0); err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("value list %q does not learn", req.Msg.GetName()))
		}
		return nil, err
	}
	return resp(&adminv1.StopLearningResponse{}), nil
}

// scopeArg is the scope an operator named: exactly one of agent, team and
// global, which must be the learning's kind of scope.
func scopeArg(l *configv1.ListLearning, agent, team string, global bool) (string, error) {
	n := 0
	for _, set := range []bool{agent != "", team != "", global} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("name exactly one scope: value list %q learns per %s (--%s)", l.GetMeta().GetName(), resource.ScopeName(l.GetScope()), resource.ScopeName(l.GetScope())))
	}
	scope := resource.ScopeGlobal
	switch {
	case agent != "":
		scope = resource.AgentScope(agent)
	case team != "":
		scope = resource.TeamScope(team)
	}
	if err := resource.ValidateScope("scope", scope, l.GetScope()); err != nil {
		return "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	return scope, nil
}

// learning reads the named learning from st.
func learningOf(st *state.State, name string) (*configv1.ListLearning, error) {
	r, ok := st.Get(resource.ListLearning, name)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("value list %q does not learn (gwctl valuelist learn %s …)", name, name))
	}
	return r.GetListLearning(), nil
}

// ApproveValues implements ValueListService.
func (a *API) ApproveValues(ctx context.Context, req *connect.Request[adminv1.ApproveValuesRequest]) (*connect.Response[adminv1.ApproveValuesResponse], error) {
	m := req.Msg
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	var (
		l      *configv1.ListLearning
		scope  string
		values []*fsmv1.LearnedValue
	)
	if m.GetRecordId() != "" {
		if len(m.GetValues()) > 0 || m.GetAgent() != "" || m.GetTeam() != "" || m.GetGlobal() {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("with record_id, the record gives the value and the scope: give no values or scope"))
		}
		rec, err := a.record(m.GetRecordId())
		if err != nil {
			return nil, err
		}
		if l, err = learningForRecord(st, m.GetName(), rec); err != nil {
			return nil, err
		}
		v, ok := learn.Argument(rec.GetArgumentsJson(), resource.ArgumentPath(l.GetArgument()))
		if !ok {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"audit record %s has no string argument %q (missing, or redacted in the record); approve the value by name (gwctl valuelist approve %s VALUE --%s …)",
				m.GetRecordId(), l.GetArgument(), l.GetMeta().GetName(), resource.ScopeName(l.GetScope())))
		}
		if scope = learn.ScopeOfRecord(st, l.GetScope(), rec); scope == "" {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the call of audit record %s has no %s scope (an agent without a team?)", m.GetRecordId(), resource.ScopeName(l.GetScope())))
		}
		values = []*fsmv1.LearnedValue{{Value: v, RecordId: m.GetRecordId()}}
	} else {
		if m.GetName() == "" || len(m.GetValues()) == 0 {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("give the list and the values to approve, or the record id of a denied call"))
		}
		if l, err = learningOf(st, m.GetName()); err != nil {
			return nil, err
		}
		if scope, err = scopeArg(l, m.GetAgent(), m.GetTeam(), m.GetGlobal()); err != nil {
			return nil, err
		}
		vs, err := membershipInput(m.GetValues())
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			values = append(values, &fsmv1.LearnedValue{Value: v})
		}
	}
	change := &fsmv1.LearnedChange{List: l.GetMeta().GetName(), Scope: scope, Add: values}
	stored, err := a.changeLearned(ctx, req.Header(), "ValueListService.ApproveValues", change)
	if err != nil {
		return nil, err
	}
	out := &adminv1.ApproveValuesResponse{Learning: stored, Scope: scope}
	for _, v := range values {
		out.Values = append(out.Values, v.GetValue())
	}
	return resp(out), nil
}

// learningForRecord finds the learning an approval from rec is for: the
// named one, which must learn from rec's tool, or the only one that does.
func learningForRecord(st *state.State, name string, rec *auditv1.Record) (*configv1.ListLearning, error) {
	if rec.GetTool() == "" || (rec.GetKind() != auditv1.EventKind_EVENT_KIND_CALL && rec.GetKind() != auditv1.EventKind_EVENT_KIND_UNSPECIFIED) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("audit record %s/%d is not a tool call", rec.GetDataplane(), rec.GetSequence()))
	}
	var candidates []*configv1.ListLearning
	st.Each(resource.ListLearning, func(r *fsmv1.Resource) bool {
		l := r.GetListLearning()
		if f, ok := learn.Records(st, l.GetTool()); ok && rec.GetUpstream() == f.Upstream && f.Matches(rec) {
			candidates = append(candidates, l)
		}
		return true
	})
	if name != "" {
		for _, l := range candidates {
			if l.GetMeta().GetName() == name {
				return l, nil
			}
		}
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("value list %q does not learn from the tool of audit record %s/%d", name, rec.GetDataplane(), rec.GetSequence()))
	}
	switch len(candidates) {
	case 0:
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("no value list learns from the tool of audit record %s/%d", rec.GetDataplane(), rec.GetSequence()))
	case 1:
		return candidates[0], nil
	}
	names := make([]string, len(candidates))
	for i, l := range candidates {
		names[i] = l.GetMeta().GetName()
	}
	return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("several value lists learn from that tool (%s): name one", strings.Join(names, ", ")))
}

// ForgetValues implements ValueListService.
func (a *API) ForgetValues(ctx context.Context, req *connect.Request[adminv1.ForgetValuesRequest]) (*connect.Response[adminv1.ForgetValuesResponse], error) {
	m := req.Msg
	st, err := a.cfg.Store.State(ctx, true)
	if err != nil {
		return nil, a.storeError(ctx, err)
	}
	l, err := learningOf(st, m.GetName())
	if err != nil {
		return nil, err
	}
	scope, err := scopeArg(l, m.GetAgent(), m.GetTeam(), m.GetGlobal())
	if err != nil {
		return nil, err
	}
	vs, err := membershipInput(m.GetValues())
	if err != nil {
		return nil, err
	}
	stored, err := a.changeLearned(ctx, req.Header(), "ValueListService.ForgetValues", &fsmv1.LearnedChange{List: l.GetMeta().GetName(), Scope: scope, Remove: vs})
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.ForgetValuesResponse{Learning: stored}), nil
}

// changeLearned applies one operator change of a learned list.
func (a *API) changeLearned(ctx context.Context, h http.Header, method string, change *fsmv1.LearnedChange) (*configv1.ListLearning, error) {
	reqID, err := requestID(h)
	if err != nil {
		return nil, err
	}
	cmd := a.command(ctx, reqID, method)
	cmd.Op = &fsmv1.Command_ChangeLearned{ChangeLearned: &fsmv1.ChangeLearned{Changes: []*fsmv1.LearnedChange{change}}}
	res, err := a.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return res.GetResource().GetListLearning(), nil
}

// ListConsumers implements AuditService.
func (a *API) ListConsumers(ctx context.Context, req *connect.Request[auditv1.ListConsumersRequest]) (*connect.Response[auditv1.ListConsumersResponse], error) {
	as, err := a.auditStore()
	if err != nil {
		return nil, err
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	out := &auditv1.ListConsumersResponse{}
	st.Each(resource.AuditCursor, func(r *fsmv1.Resource) bool {
		c := r.GetAuditCursor()
		out.Consumers = append(out.Consumers, &auditv1.Consumer{
			Name: c.GetMeta().GetName(), Batches: c.GetBatches(), Records: c.GetRecords(),
			Lag: auditconsumer.Lag(as, c), UpdateTime: c.GetMeta().GetUpdateTime(),
		})
		return len(out.Consumers) < limits.ConsumeBatch
	})
	return resp(out), nil
}
