package adminapi

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// budgetInput copies the caller-controlled fields of a budget.
func budgetInput(b *configv1.Budget) *configv1.Budget {
	return &configv1.Budget{
		Meta: inputMeta(b.GetMeta()), Scope: b.GetScope(), Window: b.GetWindow(), TimeZone: b.GetTimeZone(),
		MaxCalls: b.GetMaxCalls(), MaxTokens: b.GetMaxTokens(), MaxCostMicros: b.GetMaxCostMicros(),
		Agents: slices.Clone(b.GetAgents()), Teams: slices.Clone(b.GetTeams()),
		Upstreams: slices.Clone(b.GetUpstreams()), Models: slices.Clone(b.GetModels()),
	}
}

// SetBudget implements BudgetService.
func (a *API) SetBudget(ctx context.Context, req *connect.Request[adminv1.SetBudgetRequest]) (*connect.Response[adminv1.SetBudgetResponse], error) {
	if req.Msg.GetBudget() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("budget is required"))
	}
	r, err := a.put(ctx, req.Header(), "BudgetService.SetBudget", resource.Wrap(budgetInput(req.Msg.GetBudget())), fsmv1.WriteMode_WRITE_MODE_UPSERT, req.Msg.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetBudgetResponse{Budget: r.GetBudget()}), nil
}

// GetBudget implements BudgetService.
func (a *API) GetBudget(ctx context.Context, req *connect.Request[adminv1.GetBudgetRequest]) (*connect.Response[adminv1.GetBudgetResponse], error) {
	r, err := a.get(ctx, req.Header(), resource.Budget, req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetBudgetResponse{Budget: r.GetBudget()}), nil
}

// ListBudgets implements BudgetService.
func (a *API) ListBudgets(ctx context.Context, req *connect.Request[adminv1.ListBudgetsRequest]) (*connect.Response[adminv1.ListBudgetsResponse], error) {
	items, next, err := a.list(ctx, req.Header(), resource.Budget, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListBudgetsResponse{NextPageToken: next}
	for _, r := range items {
		out.Budgets = append(out.Budgets, r.GetBudget())
	}
	return resp(out), nil
}

// DeleteBudget implements BudgetService.
func (a *API) DeleteBudget(ctx context.Context, req *connect.Request[adminv1.DeleteBudgetRequest]) (*connect.Response[adminv1.DeleteBudgetResponse], error) {
	if err := a.remove(ctx, req.Header(), "BudgetService.DeleteBudget", resource.Budget, req.Msg.GetName(), req.Msg.GetExpectedRevision()); err != nil {
		return nil, err
	}
	return resp(&adminv1.DeleteBudgetResponse{}), nil
}
