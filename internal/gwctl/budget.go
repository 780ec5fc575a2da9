package gwctl

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func (a *app) budgetCommand() *cobra.Command {
	cmd := group("budget", "Manage budgets: calls, tokens and cost per agent, team or user per day or month")
	cmd.AddCommand(a.budgetSet(), a.budgetGet(), a.budgetList(), a.budgetDelete())
	return cmd
}

func (a *app) budgetSet() *cobra.Command {
	var (
		meta                       metaFlags
		timeZone, maxCost, mode    string
		maxCalls, maxTokens        int64
		agents, teams, ups, models []string
	)
	scope := newEnumFlag(configv1.BudgetScope_BUDGET_SCOPE_UNSPECIFIED, "BUDGET_SCOPE_")
	window := newEnumFlag(configv1.BudgetWindow_BUDGET_WINDOW_UNSPECIFIED, "BUDGET_WINDOW_")
	cmd := &cobra.Command{
		Use:   "set NAME --scope agent|team|user|global --window minute|hour|day|month [--max-cost AMOUNT] [--max-tokens N] [--max-calls N] [--mode enforce|shadow]",
		Short: "Create or replace a budget",
		Long: `Sets a budget: what the calls of each key (each agent, each team, each
verified user, or everyone together: --scope) may consume in a calendar
window (--window, aligned in --time-zone; default UTC). --max-cost is in the
price tables' currency, --max-tokens counts input plus output tokens as the
provider reports them, --max-calls counts calls; set at least one. --agent,
--team, --upstream and --model (as agents name it) narrow which calls count.

Every call reserves its worst case before it runs (its input estimate plus
its max_tokens, or the model's output cap, at the model's price) and
settles on what the provider reports after, so parallel calls cannot
overshoot together; a call that would exceed the budget is refused with
HTTP 429 and Retry-After (the window's end) before it reaches the provider.
A model without a price is refused while a cost budget applies.

--mode shadow counts every call exactly as an enforced budget would and
refuses none: a call it would have refused runs, is counted in
portcullis_dataplane_budget_refused_total{mode="shadow"} and names the
budget in its audit record (shadow_budgets). Try a budget in shadow first,
then set it again with --mode enforce: it keeps what it counted. (A mode
needs cluster version 7.)

  gwctl budget set research-monthly --scope team --team research --window month \
      --time-zone Europe/Oslo --max-cost 500`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := meta.build(args[0])
			if err != nil {
				return err
			}
			b := &configv1.Budget{
				Meta: m, Scope: configv1.BudgetScope(scope.num), Window: configv1.BudgetWindow(window.num), TimeZone: timeZone,
				MaxCalls: maxCalls, MaxTokens: maxTokens, Agents: agents, Teams: teams, Upstreams: ups, Models: models,
			}
			switch mode {
			case "enforce":
				// Unset means enforce, and needs no newer cluster version.
			case "shadow":
				b.Mode = configv1.BudgetMode_BUDGET_MODE_SHADOW
			default:
				return &usageError{cmd: cmd, err: fmt.Errorf("--mode %q: want enforce or shadow", mode)}
			}
			if maxCost != "" {
				if b.MaxCostMicros, err = parseMicros("max-cost", maxCost); err != nil {
					return err
				}
			}
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.SetBudgetResponse], error) {
					return s.Budget.SetBudget(ctx, connect.NewRequest(&adminv1.SetBudgetRequest{Budget: b}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("budget %q set: %s, %s", args[0], budgetText(resp.GetBudget()), budgetMode(resp.GetBudget()))
			})
		},
	}
	meta.register(cmd)
	f := cmd.Flags()
	addEnumFlag(cmd, scope, "scope", "whose calls share one budget")
	addEnumFlag(cmd, window, "window", "the calendar window the budget resets on")
	f.StringVar(&timeZone, "time-zone", "", "IANA time zone the windows are aligned in (default UTC)")
	f.StringVar(&maxCost, "max-cost", "", "cost per key and window, in the price tables' currency")
	f.Int64Var(&maxTokens, "max-tokens", 0, "input plus output tokens per key and window")
	f.Int64Var(&maxCalls, "max-calls", 0, "calls per key and window")
	f.StringVar(&mode, "mode", "enforce", "enforce, or shadow: count would-be refusals and refuse nothing")
	f.StringArrayVar(&agents, "agent", nil, "count only calls of this agent (repeatable)")
	f.StringArrayVar(&teams, "team", nil, "count only calls of agents of this team (repeatable)")
	f.StringArrayVar(&ups, "upstream", nil, "count only calls to this upstream (repeatable)")
	f.StringArrayVar(&models, "model", nil, "count only calls of this model, as agents name it (repeatable)")
	_ = cmd.MarkFlagRequired("scope")
	_ = cmd.MarkFlagRequired("window")
	return cmd
}

// budgetText says what a budget limits.
func budgetText(b *configv1.Budget) string {
	var limits []string
	if b.GetMaxCostMicros() > 0 {
		limits = append(limits, "cost "+microsText(b.GetMaxCostMicros()))
	}
	if b.GetMaxTokens() > 0 {
		limits = append(limits, fmt.Sprintf("%d tokens", b.GetMaxTokens()))
	}
	if b.GetMaxCalls() > 0 {
		limits = append(limits, fmt.Sprintf("%d calls", b.GetMaxCalls()))
	}
	tz := b.GetTimeZone()
	if tz == "" {
		tz = "UTC"
	}
	return fmt.Sprintf("%s per %s per %s (%s)", strings.Join(limits, ", "),
		enumLabel(b.GetScope().String(), "BUDGET_SCOPE_"), enumLabel(b.GetWindow().String(), "BUDGET_WINDOW_"), tz)
}

// budgetMode is "enforce" or "shadow".
func budgetMode(b *configv1.Budget) string {
	if b.GetMode() == configv1.BudgetMode_BUDGET_MODE_SHADOW {
		return "shadow"
	}
	return "enforce"
}

// budgetMatch says which calls a budget counts.
func budgetMatch(b *configv1.Budget) string {
	var m []string
	for _, l := range []struct {
		name   string
		values []string
	}{{"agent", b.GetAgents()}, {"team", b.GetTeams()}, {"upstream", b.GetUpstreams()}, {"model", b.GetModels()}} {
		if len(l.values) > 0 {
			m = append(m, l.name+" "+strings.Join(l.values, ","))
		}
	}
	if len(m) == 0 {
		return "every call"
	}
	return strings.Join(m, "; ")
}

func (a *app) budgetGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a budget",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.GetBudgetResponse], error) {
					return s.Budget.GetBudget(ctx, connect.NewRequest(&adminv1.GetBudgetRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				b := resp.GetBudget()
				fs := append(metaFields(b.GetMeta(), "Name"), field{"Limit", budgetText(b)}, field{"Mode", budgetMode(b)}, field{"Counts", budgetMatch(b)})
				return p.fields(append(fs, metaTrailer(b.GetMeta())...))
			})
		},
	}
}

func (a *app) budgetList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List budgets",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				budgets, err := listAll(ctx, func(ctx context.Context, token string) ([]*configv1.Budget, string, error) {
					resp, err := client.Read(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.ListBudgetsResponse], error) {
						return s.Budget.ListBudgets(ctx, connect.NewRequest(&adminv1.ListBudgetsRequest{PageSize: pageSize, PageToken: token}))
					})
					return resp.GetBudgets(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(&adminv1.ListBudgetsResponse{Budgets: budgets})
				}
				rows := make([][]string, 0, len(budgets))
				for _, b := range budgets {
					rows = append(rows, []string{b.GetMeta().GetName(), budgetText(b), budgetMode(b), budgetMatch(b), fmt.Sprint(b.GetMeta().GetRevision())})
				}
				return p.table([]string{"NAME", "LIMIT", "MODE", "COUNTS", "REVISION"}, rows)
			})
		},
	}
}

func (a *app) budgetDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a budget",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := client.Write(ctx, c, func(ctx context.Context, s *client.Services) (*connect.Response[adminv1.DeleteBudgetResponse], error) {
					return s.Budget.DeleteBudget(ctx, connect.NewRequest(&adminv1.DeleteBudgetRequest{Name: args[0]}))
				})
				if err != nil {
					return err
				}
				if p.structured() {
					return p.message(resp)
				}
				return p.linef("budget %q deleted", args[0])
			})
		},
	}
}
