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

// alertRuleInput copies the caller-controlled fields of a rule and checks
// them: the fields, and the webhook URL against the egress policy (the
// leader dials under it again on every delivery).
func (a *API) alertRuleInput(ctx context.Context, in *configv1.AlertRule) (*fsmv1.Resource, error) {
	if in == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("rule is required"))
	}
	r := proto.CloneOf(in)
	r.Meta = inputMeta(in.GetMeta())
	w := resource.Wrap(r)
	if err := resource.Validate(w); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err := a.checkEgress(ctx, "webhook.url", r.GetWebhook().GetUrl(), false); err != nil {
		return nil, err
	}
	return w, nil
}

// CreateAlertRule implements AlertService.
func (a *API) CreateAlertRule(ctx context.Context, req *connect.Request[adminv1.CreateAlertRuleRequest]) (*connect.Response[adminv1.CreateAlertRuleResponse], error) {
	w, err := a.alertRuleInput(ctx, req.Msg.GetRule())
	if err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "AlertService.CreateAlertRule", w, fsmv1.WriteMode_WRITE_MODE_CREATE, 0)
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.CreateAlertRuleResponse{Rule: r.GetAlertRule()}), nil
}

// GetAlertRule implements AlertService.
func (a *API) GetAlertRule(ctx context.Context, req *connect.Request[adminv1.GetAlertRuleRequest]) (*connect.Response[adminv1.GetAlertRuleResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.AlertRule, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetAlertRuleResponse{Rule: r.GetAlertRule()}), nil
}

// ListAlertRules implements AlertService.
func (a *API) ListAlertRules(ctx context.Context, req *connect.Request[adminv1.ListAlertRulesRequest]) (*connect.Response[adminv1.ListAlertRulesResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.AlertRule, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListAlertRulesResponse{NextPageToken: next}
	for _, r := range items {
		out.Rules = append(out.Rules, r.GetAlertRule())
	}
	return resp(out), nil
}

// UpdateAlertRule implements AlertService.
func (a *API) UpdateAlertRule(ctx context.Context, req *connect.Request[adminv1.UpdateAlertRuleRequest]) (*connect.Response[adminv1.UpdateAlertRuleResponse], error) {
	w, err := a.alertRuleInput(ctx, req.Msg.GetRule())
	if err != nil {
		return nil, err
	}
	r, err := a.put(ctx, req.Header(), "AlertService.UpdateAlertRule", w, fsmv1.WriteMode_WRITE_MODE_UPDATE, req.Msg.GetRule().GetMeta().GetRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.UpdateAlertRuleResponse{Rule: r.GetAlertRule()}), nil
}

// DeleteAlertRule implements AlertService.
func (a *API) DeleteAlertRule(ctx context.Context, req *connect.Request[adminv1.DeleteAlertRuleRequest]) (*connect.Response[adminv1.DeleteAlertRuleResponse], error) {
	if err := a.remove(ctx, req.Header(), "AlertService.DeleteAlertRule", resource.AlertRule, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteAlertRuleResponse{}), nil
}

// ListAlerts implements AlertService.
func (a *API) ListAlerts(ctx context.Context, req *connect.Request[adminv1.ListAlertsRequest]) (*connect.Response[adminv1.ListAlertsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.Alert, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListAlertsResponse{NextPageToken: next}
	for _, r := range items {
		out.Alerts = append(out.Alerts, r.GetAlert())
	}
	return resp(out), nil
}

// DropAlert implements AlertService.
func (a *API) DropAlert(ctx context.Context, req *connect.Request[adminv1.DropAlertRequest]) (*connect.Response[adminv1.DropAlertResponse], error) {
	if err := a.remove(ctx, req.Header(), "AlertService.DropAlert", resource.Alert, req.Msg.GetName(), 0); err != nil {
		return nil, err
	}
	return resp(&adminv1.DropAlertResponse{}), nil
}
