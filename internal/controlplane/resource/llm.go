package resource

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // budgets name IANA zones; not every host has them

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

var (
	modelIDRE = regexp.MustCompile(`^[A-Za-z0-9._:@-][A-Za-z0-9._:@/-]{0,127}$`)
	aliasRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// Bounds of LLM settings.
const (
	// MaxOutputCap bounds a model's output cap.
	MaxOutputCap = 100_000_000
	// MaxPriceMicros bounds a price: 10,000 units of the currency per
	// million tokens.
	MaxPriceMicros = 10_000_000_000
)

// ValidateModelID checks a provider's model id.
func ValidateModelID(field, id string) error {
	if !modelIDRE.MatchString(id) {
		return invalid(field, "%q is not a valid model id: use 1-128 characters of A-Z, a-z, 0-9 and ._:@/-, not starting with '/'", id)
	}
	return nil
}

// validateLLM checks an upstream's LLM settings.
func validateLLM(u *configv1.Upstream) error {
	l := u.GetLlm()
	if u.GetProtocol() != configv1.Protocol_PROTOCOL_LLM {
		if l != nil {
			return invalid("llm", "is for LLM upstreams only")
		}
		return nil
	}
	switch l.GetProvider() {
	case configv1.LlmProvider_LLM_PROVIDER_OPENAI, configv1.LlmProvider_LLM_PROVIDER_ANTHROPIC, configv1.LlmProvider_LLM_PROVIDER_OPENAI_COMPATIBLE:
	default:
		return invalid("llm.provider", "is required for an LLM upstream: openai, anthropic or openai-compatible")
	}
	ids, aliases := map[string]bool{}, map[string]bool{}
	for i, m := range l.GetModels() {
		f := "llm.models[" + itoa(i) + "]"
		if err := ValidateModelID(f+".id", m.GetId()); err != nil {
			return err
		}
		if ids[m.GetId()] {
			return invalid(f+".id", "model %q is listed twice", m.GetId())
		}
		ids[m.GetId()] = true
		if m.GetOutputCap() < 0 || m.GetOutputCap() > MaxOutputCap {
			return invalid(f+".output_cap", "must be between 0 (default 4096) and %d", MaxOutputCap)
		}
		for j, a := range m.GetAliases() {
			if !aliasRE.MatchString(a) {
				return invalid(f+".aliases["+itoa(j)+"]", "%q: use 1-64 characters of A-Z, a-z, 0-9, '_', '.' and '-'", a)
			}
			if aliases[a] {
				return invalid(f+".aliases["+itoa(j)+"]", "alias %q is given twice", a)
			}
			aliases[a] = true
		}
	}
	return nil
}

// ModelPriceName is the resource name of the price table of a model.
func ModelPriceName(upstream, model string) string { return upstream + "/" + model }

func validateModelPrice(p *configv1.ModelPrice) error {
	if err := ValidateName("upstream", p.GetUpstream()); err != nil {
		return err
	}
	if err := ValidateModelID("model", p.GetModel()); err != nil {
		return err
	}
	if p.GetMeta().GetName() != ModelPriceName(p.GetUpstream(), p.GetModel()) {
		return invalid("meta.name", "must be %q", ModelPriceName(p.GetUpstream(), p.GetModel()))
	}
	if len(p.GetPrices()) == 0 {
		return invalid("prices", "give at least one price")
	}
	var last time.Time
	for i, e := range p.GetPrices() {
		f := "prices[" + itoa(i) + "]"
		t := time.Time{}
		if e.GetEffectiveTime() != nil {
			if err := e.GetEffectiveTime().CheckValid(); err != nil {
				return invalid(f+".effective_time", "is not a valid time")
			}
			t = e.GetEffectiveTime().AsTime()
		}
		if i > 0 && !t.After(last) {
			return invalid(f+".effective_time", "prices must be in order of effective time, each later than the one before")
		}
		last = t
		for _, v := range []struct {
			name string
			n    int64
		}{{"input_micros", e.GetInputMicros()}, {"output_micros", e.GetOutputMicros()}, {"cached_input_micros", e.GetCachedInputMicros()}, {"cache_write_micros", e.GetCacheWriteMicros()}} {
			if v.n < 0 || v.n > MaxPriceMicros {
				return invalid(f+"."+v.name, "must be between 0 and %d micro-units per million tokens", int64(MaxPriceMicros))
			}
		}
	}
	return nil
}

func validateBudget(b *configv1.Budget) error {
	if err := ValidateName("meta.name", b.GetMeta().GetName()); err != nil {
		return err
	}
	switch b.GetScope() {
	case configv1.BudgetScope_BUDGET_SCOPE_AGENT, configv1.BudgetScope_BUDGET_SCOPE_TEAM, configv1.BudgetScope_BUDGET_SCOPE_USER, configv1.BudgetScope_BUDGET_SCOPE_GLOBAL:
	default:
		return invalid("scope", "is required: agent, team, user or global")
	}
	switch b.GetWindow() {
	case configv1.BudgetWindow_BUDGET_WINDOW_MINUTE, configv1.BudgetWindow_BUDGET_WINDOW_HOUR, configv1.BudgetWindow_BUDGET_WINDOW_DAY, configv1.BudgetWindow_BUDGET_WINDOW_MONTH:
	default:
		return invalid("window", "is required: minute, hour, day or month")
	}
	if _, err := time.LoadLocation(b.GetTimeZone()); err != nil || strings.EqualFold(b.GetTimeZone(), "local") {
		return invalid("time_zone", "%q is not an IANA time zone (such as Europe/Oslo; empty for UTC)", b.GetTimeZone())
	}
	if b.GetMaxCalls() < 0 || b.GetMaxTokens() < 0 || b.GetMaxCostMicros() < 0 {
		return invalid("max_calls", "limits cannot be negative")
	}
	if b.GetMaxCalls() == 0 && b.GetMaxTokens() == 0 && b.GetMaxCostMicros() == 0 {
		return invalid("max_calls", "set at least one limit: max_calls, max_tokens or max_cost_micros")
	}
	if b.GetMaxCostMicros() > 1<<53 {
		return invalid("max_cost_micros", "at most %d", int64(1<<53))
	}
	switch b.GetMode() {
	case configv1.BudgetMode_BUDGET_MODE_UNSPECIFIED, configv1.BudgetMode_BUDGET_MODE_ENFORCE, configv1.BudgetMode_BUDGET_MODE_SHADOW:
	default:
		return invalid("mode", "must be enforce or shadow")
	}
	for _, l := range []struct {
		field  string
		values []string
		check  func(string, string) error
	}{
		{"agents", b.GetAgents(), ValidateName}, {"teams", b.GetTeams(), ValidateName},
		{"upstreams", b.GetUpstreams(), ValidateName}, {"models", b.GetModels(), validateModelName},
	} {
		for i, v := range l.values {
			f := l.field + "[" + itoa(i) + "]"
			if err := l.check(f, v); err != nil {
				return err
			}
			if slices.Contains(l.values[:i], v) {
				return invalid(f, "%q is given twice", v)
			}
		}
	}
	return nil
}

// validateModelName checks a model as agents name it: "<prefix>/<id>",
// an id alone, or an alias.
func validateModelName(field, name string) error {
	if aliasRE.MatchString(name) {
		return nil
	}
	prefix, id, ok := strings.Cut(name, "/")
	if !ok || !prefixRE.MatchString(prefix) || ValidateModelID(field, id) != nil {
		return invalid(field, "%q is not a model name: <prefix>/<model id> or an alias", name)
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
