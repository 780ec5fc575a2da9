package adminapi

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// inspectionRuleInput copies the caller-controlled fields of a rule and
// checks it: its fields, and its classifier's URL against the egress
// policy (data planes dial it under the same policy).
func (a *API) inspectionRuleInput(ctx context.Context, in *configv1.InspectionRule) (*configv1.InspectionRule, error) {
	if in == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("rule is required"))
	}
	r := proto.CloneOf(in)
	r.Meta = inputMeta(in.GetMeta())
	if err := resource.Validate(resource.Wrap(r)); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if c := r.GetClassifier(); c != nil {
		if err := a.checkEgress(ctx, "classifier.url", c.GetUrl(), false); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// CreateInspectionRule implements InspectionService.
func (a *API) CreateInspectionRule(ctx context.Context, req *connect.Request[adminv1.CreateInspectionRuleRequest]) (*connect.Response[adminv1.CreateInspectionRuleResponse], error) {
	in, err := a.inspectionRuleInput(ctx, req.Msg.GetRule())
	if err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "InspectionService.CreateInspectionRule", resource.Wrap(in), fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.CreateInspectionRuleResponse{Rule: r.GetInspectionRule()}), nil
}

// GetInspectionRule implements InspectionService.
func (a *API) GetInspectionRule(ctx context.Context, req *connect.Request[adminv1.GetInspectionRuleRequest]) (*connect.Response[adminv1.GetInspectionRuleResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.InspectionRule, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetInspectionRuleResponse{Rule: r.GetInspectionRule()}), nil
}

// ListInspectionRules implements InspectionService.
func (a *API) ListInspectionRules(ctx context.Context, req *connect.Request[adminv1.ListInspectionRulesRequest]) (*connect.Response[adminv1.ListInspectionRulesResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.InspectionRule, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListInspectionRulesResponse{NextPageToken: next}
	for _, r := range items {
		out.Rules = append(out.Rules, r.GetInspectionRule())
	}
	return resp(out), nil
}

// UpdateInspectionRule implements InspectionService.
func (a *API) UpdateInspectionRule(ctx context.Context, req *connect.Request[adminv1.UpdateInspectionRuleRequest]) (*connect.Response[adminv1.UpdateInspectionRuleResponse], error) {
	in, err := a.inspectionRuleInput(ctx, req.Msg.GetRule())
	if err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "InspectionService.UpdateInspectionRule", resource.Wrap(in), fsmv1.WriteMode_WRITE_MODE_UPDATE, req.Msg.GetRule().GetMeta().GetRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.UpdateInspectionRuleResponse{Rule: r.GetInspectionRule()}), nil
}

// DeleteInspectionRule implements InspectionService.
func (a *API) DeleteInspectionRule(ctx context.Context, req *connect.Request[adminv1.DeleteInspectionRuleRequest]) (*connect.Response[adminv1.DeleteInspectionRuleResponse], error) {
	if err := a.remove(ctx, req.Header(), "InspectionService.DeleteInspectionRule", resource.InspectionRule, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteInspectionRuleResponse{}), nil
}
