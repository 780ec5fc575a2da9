package limit

import (
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/budgetkey"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// budget is a configured budget, compiled.
type budget struct {
	def                          *configv1.Budget
	name                         string
	window                       configv1.BudgetWindow
	loc                          *time.Location
	maxCalls, maxTokens, maxCost int64
	// shadow: the budget counts calls and refuses none (the calls it
	// would refuse are noted on the call and counted by metrics).
	shadow bool
}

// compile compiles budgets. A budget whose time zone this data plane does
// not know is counted in UTC (the control plane checks zones when budgets
// are written).
func compile(bs []*configv1.Budget) []*budget {
	out := make([]*budget, 0, len(bs))
	for _, b := range bs {
		out = append(out, &budget{
			def: b, name: b.GetMeta().GetName(), window: b.GetWindow(), loc: budgetkey.Location(b.GetTimeZone()),
			maxCalls: b.GetMaxCalls(), maxTokens: b.GetMaxTokens(), maxCost: budgetkey.CostNanos(b),
			shadow: b.GetMode() == configv1.BudgetMode_BUDGET_MODE_SHADOW,
		})
	}
	return out
}

// amount renders n of unit (cost in the currency, from nano-units).
func amount(unit string, n int64) string {
	if unit == "cost" {
		return fmt.Sprintf("%.4f", float64(n)/1e9)
	}
	return fmt.Sprint(n)
}

func windowName(w configv1.BudgetWindow) string {
	switch w {
	case configv1.BudgetWindow_BUDGET_WINDOW_MINUTE:
		return "minute"
	case configv1.BudgetWindow_BUDGET_WINDOW_HOUR:
		return "hour"
	case configv1.BudgetWindow_BUDGET_WINDOW_DAY:
		return "day"
	}
	return "month"
}

func add(a, b Units) Units {
	return Units{Calls: addSat(a.Calls, b.Calls), Tokens: addSat(a.Tokens, b.Tokens), Cost: addSat(a.Cost, b.Cost)}
}

func sub(a, b Units) Units {
	return Units{Calls: max(a.Calls-b.Calls, 0), Tokens: max(a.Tokens-b.Tokens, 0), Cost: max(a.Cost-b.Cost, 0)}
}

func addSat(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
