package adminapi

import (
	"context"
	"fmt"
	"maps"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// ApplyPolicySet implements PolicyService. The store parses and strictly
// validates the set against the schema of the state it is applied to, so a
// concurrent pin change can never slip an invalid set in; a dry run does
// the same against this node's state.
func (a *API) ApplyPolicySet(ctx context.Context, req *connect.Request[adminv1.ApplyPolicySetRequest]) (*connect.Response[adminv1.ApplyPolicySetResponse], error) {
	m := req.Msg
	ps := &configv1.PolicySet{
		Meta:         &configv1.ResourceMeta{Name: m.GetName(), Owner: m.GetOwner(), Description: m.GetDescription(), Labels: m.GetLabels()},
		Source:       m.GetSource(),
		Filename:     m.GetFilename(),
		Disabled:     m.GetDisabled(),
		Message:      m.GetMessage(),
		HistoryLimit: m.GetHistoryLimit(),
	}
	if ps.Filename == "" {
		ps.Filename = m.GetName() + ".cedar"
	}
	if err := resource.Validate(resource.Wrap(ps)); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	if m.GetDryRun() {
		schema, err := st.CedarSchema()
		if err != nil {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("generate the Cedar schema: %w", err))
		}
		parsed, err := schema.ParsePolicies(ps.GetMeta().GetName(), ps.GetFilename(), []byte(ps.GetSource()))
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
		for _, p := range parsed.Policies {
			ps.PolicyIds = append(ps.PolicyIds, p.ID)
		}
		// The same reference check the store makes on a real apply.
		ps.ValueLists = parsed.Lists()
		for _, name := range ps.ValueLists {
			if _, ok := st.Get(resource.ValueList, name); !ok {
				return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("policy set %q refers to value list %q, which does not exist; create it first (gwctl valuelist create %s)", ps.GetMeta().GetName(), name, name))
			}
		}
		return resp(&adminv1.ApplyPolicySetResponse{PolicySet: ps}), nil
	}
	if cur, ok := st.Get(resource.PolicySet, m.GetName()); ok && samePolicySet(cur.GetPolicySet(), ps) &&
		(m.GetExpectedRevision() == 0 || m.GetExpectedRevision() == cur.GetPolicySet().GetMeta().GetRevision()) {
		return resp(&adminv1.ApplyPolicySetResponse{PolicySet: cur.GetPolicySet(), Unchanged: true}), nil
	}
	r, err := a.put(ctx, req.Header(), "PolicyService.ApplyPolicySet", resource.Wrap(ps), fsmv1.WriteMode_WRITE_MODE_UPSERT, m.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.ApplyPolicySetResponse{PolicySet: r.GetPolicySet()}), nil
}

func samePolicySet(cur, in *configv1.PolicySet) bool {
	return cur.GetSource() == in.GetSource() && cur.GetFilename() == in.GetFilename() &&
		(in.GetHistoryLimit() == 0 || in.GetHistoryLimit() == cur.GetHistoryLimit()) &&
		cur.GetDisabled() == in.GetDisabled() && cur.GetMeta().GetOwner() == in.GetMeta().GetOwner() &&
		cur.GetMeta().GetDescription() == in.GetMeta().GetDescription() &&
		maps.Equal(cur.GetMeta().GetLabels(), in.GetMeta().GetLabels())
}

// GetPolicySet implements PolicyService.
func (a *API) GetPolicySet(ctx context.Context, req *connect.Request[adminv1.GetPolicySetRequest]) (*connect.Response[adminv1.GetPolicySetResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.PolicySet, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetPolicySetResponse{PolicySet: r.GetPolicySet()}), nil
}

// ListPolicySets implements PolicyService.
func (a *API) ListPolicySets(ctx context.Context, req *connect.Request[adminv1.ListPolicySetsRequest]) (*connect.Response[adminv1.ListPolicySetsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.PolicySet, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListPolicySetsResponse{NextPageToken: next}
	for _, r := range items {
		out.PolicySets = append(out.PolicySets, r.GetPolicySet())
	}
	return resp(out), nil
}

// DeletePolicySet implements PolicyService.
func (a *API) DeletePolicySet(ctx context.Context, req *connect.Request[adminv1.DeletePolicySetRequest]) (*connect.Response[adminv1.DeletePolicySetResponse], error) {
	if err := a.remove(ctx, req.Header(), "PolicyService.DeletePolicySet", resource.PolicySet, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeletePolicySetResponse{}), nil
}

// GetCedarSchema implements PolicyService.
func (a *API) GetCedarSchema(ctx context.Context, req *connect.Request[adminv1.GetCedarSchemaRequest]) (*connect.Response[adminv1.GetCedarSchemaResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	schema, err := st.CedarSchema()
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("generate the Cedar schema: %w", err))
	}
	js, err := schema.JSON()
	if err != nil {
		return nil, edge.Internal(ctx, a.log, "encode the Cedar schema as JSON", err)
	}
	return resp(&adminv1.GetCedarSchemaResponse{Cedar: string(schema.Cedar()), Json: string(js)}), nil
}
