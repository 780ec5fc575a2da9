package adminapi

import (
	"context"
	"errors"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
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
		Mode: b.GetMode(),
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

// maxUsageRows bounds the rows of one BudgetUsage answer.
const maxUsageRows = 100_000

// BudgetUsage implements BudgetService: the replicated usage of each
// budget's keys in their current windows (as the leader's budget consumer
// derived it from the audit store), with what each has left.
func (a *API) BudgetUsage(ctx context.Context, req *connect.Request[adminv1.BudgetUsageRequest]) (*connect.Response[adminv1.BudgetUsageResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	out := &adminv1.BudgetUsageResponse{NotTracked: !clusterversion.Supports(st.Voters(), clusterversion.FleetBudgets)}
	now := time.Now().Unix()
	st.Each(resource.Budget, func(r *fsmv1.Resource) bool {
		b := r.GetBudget()
		if (m.GetBudget() != "" && m.GetBudget() != b.GetMeta().GetName()) ||
			(m.GetScope() != configv1.BudgetScope_BUDGET_SCOPE_UNSPECIFIED && m.GetScope() != b.GetScope()) ||
			(m.GetWindow() != configv1.BudgetWindow_BUDGET_WINDOW_UNSPECIFIED && m.GetWindow() != b.GetWindow()) {
			return true
		}
		u, _ := st.Get(resource.BudgetUsage, b.GetMeta().GetName())
		for _, k := range u.GetBudgetUsage().GetKeys() {
			if k.GetWindowEnd() <= now || k.GetWindowStart() > now {
				continue
			}
			row := &adminv1.BudgetKeyRow{
				Budget: b.GetMeta().GetName(), Key: k.GetKey(), WindowStart: k.GetWindowStart(), WindowEnd: k.GetWindowEnd(),
				Calls: k.GetCalls(), Tokens: k.GetTokens(), CostNanos: k.GetCostNanos(),
				MaxCalls: b.GetMaxCalls(), MaxTokens: b.GetMaxTokens(), MaxCostNanos: budgetkey.CostNanos(b),
			}
			row.RemainingCalls = remaining(row.GetMaxCalls(), row.GetCalls())
			row.RemainingTokens = remaining(row.GetMaxTokens(), row.GetTokens())
			row.RemainingCostNanos = remaining(row.GetMaxCostNanos(), row.GetCostNanos())
			out.Rows = append(out.Rows, row)
			if len(out.Rows) >= maxUsageRows {
				return false
			}
		}
		return true
	})
	return resp(out), nil
}

// remaining is what a limit leaves after used: -1 without a limit.
func remaining(limit, used int64) int64 {
	if limit <= 0 {
		return -1
	}
	return max(limit-used, 0)
}
