package limits

import (
	"fmt"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// LLM upstreams, model prices and budgets.
const (
	// LLMModels bounds the models of one LLM upstream.
	LLMModels = 256
	// LLMModelID bounds a model's id.
	LLMModelID = 128
	// LLMAliases bounds the aliases of one model.
	LLMAliases = 8
	// LLMAlias bounds one alias.
	LLMAlias = 64
	// Prices bounds the entries of one model's price table.
	Prices = 64
	// BudgetMatch bounds each of a budget's match lists.
	BudgetMatch = 64
	// TimeZone bounds a budget's time zone name.
	TimeZone = 64
)

// llmUpstream checks the LLM part of an upstream.
func llmUpstream(l *configv1.LlmUpstream) error {
	if len(l.GetModels()) > LLMModels {
		return exceeded("llm.models", "at most %d models", LLMModels)
	}
	for i, m := range l.GetModels() {
		f := fmt.Sprintf("llm.models[%d]", i)
		if len(m.GetId()) > LLMModelID {
			return exceeded(f+".id", "at most %d bytes", LLMModelID)
		}
		if len(m.GetAliases()) > LLMAliases {
			return exceeded(f+".aliases", "at most %d aliases", LLMAliases)
		}
		for j, a := range m.GetAliases() {
			if len(a) > LLMAlias {
				return exceeded(fmt.Sprintf("%s.aliases[%d]", f, j), "at most %d bytes", LLMAlias)
			}
		}
	}
	return nil
}

// ModelPrice checks a model's price table.
func ModelPrice(p *configv1.ModelPrice) error {
	if err := Meta(p.GetMeta()); err != nil {
		return err
	}
	if len(p.GetUpstream()) > Name {
		return exceeded("upstream", "at most %d bytes", Name)
	}
	if len(p.GetModel()) > LLMModelID {
		return exceeded("model", "at most %d bytes", LLMModelID)
	}
	if len(p.GetPrices()) > Prices {
		return exceeded("prices", "at most %d entries", Prices)
	}
	return nil
}

// Budget checks a budget.
func Budget(b *configv1.Budget) error {
	if err := Meta(b.GetMeta()); err != nil {
		return err
	}
	if len(b.GetTimeZone()) > TimeZone {
		return exceeded("time_zone", "at most %d bytes", TimeZone)
	}
	for _, l := range []struct {
		field  string
		values []string
	}{{"agents", b.GetAgents()}, {"teams", b.GetTeams()}, {"upstreams", b.GetUpstreams()}, {"models", b.GetModels()}} {
		if len(l.values) > BudgetMatch {
			return exceeded(l.field, "at most %d entries", BudgetMatch)
		}
		for i, v := range l.values {
			if len(v) > Name {
				return exceeded(fmt.Sprintf("%s[%d]", l.field, i), "at most %d bytes", Name)
			}
		}
	}
	return nil
}

// Bounds of the replicated budget usage.
const (
	// BudgetUsageKeys bounds the key windows one budget's usage tracks,
	// and the entries of one batch's delta for a budget. A budget scoped by
	// agent, team or user tracks one entry per key in its current window.
	BudgetUsageKeys = 10_000
	// BudgetUsageBudgets bounds the budgets one batch adds usage to.
	BudgetUsageBudgets = 1_000
	// BudgetKey bounds a budget key ("user <source>/<name>").
	BudgetKey = 512
)

// BudgetUsage checks a budget's usage.
func BudgetUsage(u *configv1.BudgetUsage) error {
	if err := Meta(u.GetMeta()); err != nil {
		return err
	}
	return BudgetKeyUsages("keys", u.GetKeys())
}

// BudgetKeyUsages checks the entries of a usage or of a batch's delta:
// how many, key sizes, windows that run forward and units that are not
// negative.
func BudgetKeyUsages(field string, keys []*configv1.BudgetKeyUsage) error {
	if len(keys) > BudgetUsageKeys {
		return exceeded(field, "at most %d key windows", BudgetUsageKeys)
	}
	for i, k := range keys {
		f := fmt.Sprintf("%s[%d]", field, i)
		if len(k.GetKey()) > BudgetKey {
			return exceeded(f+".key", "at most %d bytes", BudgetKey)
		}
		if k.GetWindowEnd() <= k.GetWindowStart() {
			return exceeded(f+".window_end", "must be after window_start")
		}
		if k.GetCalls() < 0 || k.GetTokens() < 0 || k.GetCostNanos() < 0 {
			return exceeded(f, "units are not negative")
		}
	}
	return nil
}
