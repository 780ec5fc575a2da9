package gwctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) usageCommand() *cobra.Command {
	var (
		from, to, window, timeZone, budgetName string
		budgets                                bool
		req                                    auditv1.UsageRequest
	)
	by := newEnumFlag(auditv1.UsageGroup_USAGE_GROUP_AGENT, "USAGE_GROUP_")
	cmd := &cobra.Command{
		Use:   "usage [--by agent|team|user|model] [--window day|month | --from T --to T] [--budgets [--budget NAME]]",
		Short: "Show what model calls consumed (tokens and cost) by agent, team, user or model",
		Long: `Sums the usage of the audit records the control plane stores: calls,
input (of which cached), output (of which reasoning) tokens and cost, by
agent, team, user or model ("<upstream>/<model id>"), highest cost first.
--window month (the default) or day is the current calendar window in
--time-zone (default UTC); --from and --to (RFC 3339) give any range
instead. ESTIMATED counts calls whose tokens the gateway counted itself
(a stream that broke); UNPRICED calls of models without a price.

--budgets shows budgets instead: what each budget key consumed in its
current window and what it has left, from the replicated usage the
control-plane leader derives from the same audit records (every call
that ran counts, MCP and A2A calls included; model calls count tokens
and cost too). --by agent|team|user then selects budgets of that scope,
--window minute|hour|day|month budgets of that window, --budget one
budget.

  gwctl usage --by team --window month
  gwctl usage --budgets --by agent --window month -o json
  gwctl usage --by model --from 2026-03-01T00:00:00Z --to 2026-04-01T00:00:00Z -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if budgets {
				return a.budgetUsage(cmd, budgetName, int32(by.num), window)
			}
			req.GroupBy = auditv1.UsageGroup(by.num)
			loc, err := time.LoadLocation(timeZone)
			if err != nil {
				return fmt.Errorf("invalid --time-zone %q: %w", timeZone, err)
			}
			switch {
			case from != "" || to != "":
				for _, t := range []struct {
					flag, value string
					into        **timestamppb.Timestamp
				}{{"from", from, &req.From}, {"to", to, &req.To}} {
					if t.value == "" {
						continue
					}
					v, err := time.Parse(time.RFC3339, t.value)
					if err != nil {
						return fmt.Errorf("invalid --%s %q: want an RFC 3339 time", t.flag, t.value)
					}
					*t.into = timestamppb.New(v)
				}
			default:
				now := time.Now().In(loc)
				y, m, d := now.Date()
				start, end := time.Date(y, m, 1, 0, 0, 0, 0, loc), time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
				switch window {
				case "month":
				case "day":
					start, end = time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
				default:
					return fmt.Errorf("invalid --window %q: want day or month", window)
				}
				req.From, req.To = timestamppb.New(start), timestamppb.New(end)
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[auditv1.UsageResponse], error) {
					return s.Audit.Usage(ctx, connect.NewRequest(&req))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				rows := make([][]string, 0, len(resp.GetRows()))
				for _, r := range resp.GetRows() {
					key := r.GetKey()
					if key == "" || key == "/" {
						key = "(none)"
					}
					rows = append(rows, []string{key, fmt.Sprint(r.GetCalls()), fmt.Sprint(r.GetInputTokens()), fmt.Sprint(r.GetCachedInputTokens()),
						fmt.Sprint(r.GetOutputTokens()), fmt.Sprint(r.GetReasoningTokens()), costText(r.GetCostNanos()),
						fmt.Sprint(r.GetEstimatedCalls()), fmt.Sprint(r.GetUnpricedCalls())})
				}
				header := enumLabel(req.GetGroupBy().String(), "USAGE_GROUP_")
				return p.table([]string{header, "CALLS", "INPUT", "CACHED", "OUTPUT", "REASONING", "COST", "ESTIMATED", "UNPRICED"}, rows)
			})
		},
	}
	f := cmd.Flags()
	addEnumFlag(cmd, by, "by", "what to sum by")
	f.StringVar(&window, "window", "month", "the current calendar window: day or month")
	f.StringVar(&timeZone, "time-zone", "UTC", "IANA time zone of the window")
	f.StringVar(&from, "from", "", "start of the range (RFC 3339; instead of --window)")
	f.StringVar(&to, "to", "", "end of the range (RFC 3339; instead of --window)")
	f.StringVar(&req.Agent, "agent", "", "only this agent's calls")
	f.StringVar(&req.Team, "team", "", "only this team's calls")
	f.StringVar(&req.User, "user", "", "only calls on behalf of this user (<source>/<name>)")
	f.StringVar(&req.Model, "model", "", "only calls of this model (<upstream>/<model id>)")
	f.BoolVar(&budgets, "budgets", false, "show each budget key's consumption and what it has left in its current window")
	f.StringVar(&budgetName, "budget", "", "with --budgets: only this budget")
	cmd.MarkFlagsMutuallyExclusive("window", "from")
	cmd.MarkFlagsMutuallyExclusive("window", "to")
	return cmd
}

// budgetUsage prints what each budget key consumed in its current window
// and what it has left (gwctl usage --budgets).
func (a *app) budgetUsage(cmd *cobra.Command, name string, by int32, window string) error {
	req := &adminv1.BudgetUsageRequest{Budget: name}
	if cmd.Flags().Changed("by") {
		switch auditv1.UsageGroup(by) {
		case auditv1.UsageGroup_USAGE_GROUP_AGENT:
			req.Scope = configv1.BudgetScope_BUDGET_SCOPE_AGENT
		case auditv1.UsageGroup_USAGE_GROUP_TEAM:
			req.Scope = configv1.BudgetScope_BUDGET_SCOPE_TEAM
		case auditv1.UsageGroup_USAGE_GROUP_USER:
			req.Scope = configv1.BudgetScope_BUDGET_SCOPE_USER
		default:
			return &usageError{cmd: cmd, err: errors.New("with --budgets, --by is agent, team or user (a budget's scope)")}
		}
	}
	if cmd.Flags().Changed("window") {
		w, ok := configv1.BudgetWindow_value["BUDGET_WINDOW_"+strings.ToUpper(window)]
		if !ok || w == 0 {
			return &usageError{cmd: cmd, err: fmt.Errorf("invalid --window %q: want minute, hour, day or month", window)}
		}
		req.Window = configv1.BudgetWindow(w)
	}
	return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
		resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.BudgetUsageResponse], error) {
			return s.Budget.BudgetUsage(ctx, connect.NewRequest(req))
		})
		if err != nil {
			return err
		}
		if p.structured() {
			return p.message(resp)
		}
		if resp.GetNotTracked() {
			if err := p.linef("budgets are counted per data plane until every control-plane node supports cluster version 7; no replicated usage yet"); err != nil {
				return err
			}
		}
		left := func(n int64, text func(int64) string) string {
			if n < 0 {
				return "-"
			}
			return text(n)
		}
		rows := make([][]string, 0, len(resp.GetRows()))
		for _, r := range resp.GetRows() {
			rows = append(rows, []string{r.GetBudget(), r.GetKey(), time.Unix(r.GetWindowEnd(), 0).UTC().Format(time.RFC3339),
				fmt.Sprint(r.GetCalls()), left(r.GetRemainingCalls(), func(n int64) string { return fmt.Sprint(n) }),
				fmt.Sprint(r.GetTokens()), left(r.GetRemainingTokens(), func(n int64) string { return fmt.Sprint(n) }),
				costText(r.GetCostNanos()), left(r.GetRemainingCostNanos(), costText)})
		}
		return p.table([]string{"BUDGET", "KEY", "RESETS", "CALLS", "LEFT", "TOKENS", "LEFT", "COST", "LEFT"}, rows)
	})
}

// costText renders nano-units of the currency with four decimal places.
func costText(nanos int64) string {
	return fmt.Sprintf("%d.%04d", nanos/1_000_000_000, (nanos%1_000_000_000)/100_000)
}
