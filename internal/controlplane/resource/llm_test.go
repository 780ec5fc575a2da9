package resource_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestValidateLLM(t *testing.T) {
	llm := func(change func(*configv1.Upstream)) *configv1.Upstream {
		u := &configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "openai"}, Protocol: configv1.Protocol_PROTOCOL_LLM, Url: "https://api.openai.com/v1",
			Llm: &configv1.LlmUpstream{Provider: configv1.LlmProvider_LLM_PROVIDER_OPENAI, Models: []*configv1.LlmModel{
				{Id: "gpt-4o"}, {Id: "accounts/fw/models/llama-v3:8b@latest", Aliases: []string{"llama"}, OutputCap: 2048},
			}}}
		if change != nil {
			change(u)
		}
		return u
	}
	price := func(change func(*configv1.ModelPrice)) *configv1.ModelPrice {
		p := &configv1.ModelPrice{Meta: &configv1.ResourceMeta{Name: "openai/gpt-4o"}, Upstream: "openai", Model: "gpt-4o",
			Prices: []*configv1.PriceEntry{{InputMicros: 2_500_000, OutputMicros: 10_000_000}, {EffectiveTime: timestamppb.Now(), InputMicros: 1, CachedInputMicros: proto.Int64(0)}}}
		if change != nil {
			change(p)
		}
		return p
	}
	budget := func(change func(*configv1.Budget)) *configv1.Budget {
		b := &configv1.Budget{Meta: &configv1.ResourceMeta{Name: "monthly"}, Scope: configv1.BudgetScope_BUDGET_SCOPE_TEAM,
			Window: configv1.BudgetWindow_BUDGET_WINDOW_MONTH, TimeZone: "Europe/Oslo", MaxCostMicros: 500_000_000,
			Teams: []string{"research"}, Models: []string{"openai/gpt-4o", "fast"}}
		if change != nil {
			change(b)
		}
		return b
	}
	tests := []struct {
		name  string
		res   proto.Message
		field string // "" for valid
	}{
		{"an LLM upstream", llm(nil), ""},
		{"no provider", llm(func(u *configv1.Upstream) { u.Llm.Provider = 0 }), "llm.provider"},
		{"LLM settings on an MCP upstream", llm(func(u *configv1.Upstream) { u.Protocol = configv1.Protocol_PROTOCOL_MCP }), "llm"},
		{"a model id with a space", llm(func(u *configv1.Upstream) { u.Llm.Models[0].Id = "gpt 4o" }), "llm.models[0].id"},
		{"a model id starting with a slash", llm(func(u *configv1.Upstream) { u.Llm.Models[0].Id = "/x" }), "llm.models[0].id"},
		{"a model twice", llm(func(u *configv1.Upstream) { u.Llm.Models[1].Id = "gpt-4o" }), "llm.models[1].id"},
		{"an alias with a slash", llm(func(u *configv1.Upstream) { u.Llm.Models[1].Aliases = []string{"a/b"} }), "llm.models[1].aliases[0]"},
		{"a negative output cap", llm(func(u *configv1.Upstream) { u.Llm.Models[0].OutputCap = -1 }), "llm.models[0].output_cap"},
		{"a price table", price(nil), ""},
		{"a price named otherwise", price(func(p *configv1.ModelPrice) { p.Meta.Name = "x" }), "meta.name"},
		{"no prices", price(func(p *configv1.ModelPrice) { p.Prices = nil }), "prices"},
		{"prices out of order", price(func(p *configv1.ModelPrice) { p.Prices[0], p.Prices[1] = p.Prices[1], p.Prices[0] }), "prices[1].effective_time"},
		{"a negative price", price(func(p *configv1.ModelPrice) { p.Prices[0].OutputMicros = -1 }), "prices[0].output_micros"},
		{"a budget", budget(nil), ""},
		{"no scope", budget(func(b *configv1.Budget) { b.Scope = 0 }), "scope"},
		{"no window", budget(func(b *configv1.Budget) { b.Window = 0 }), "window"},
		{"an unknown zone", budget(func(b *configv1.Budget) { b.TimeZone = "Mars/Olympus" }), "time_zone"},
		{"no limit", budget(func(b *configv1.Budget) { b.MaxCostMicros = 0 }), "max_calls"},
		{"a negative limit", budget(func(b *configv1.Budget) { b.MaxTokens = -5 }), "max_calls"},
		{"a model name that is no name", budget(func(b *configv1.Budget) { b.Models = []string{"a b"} }), "models[0]"},
		{"a team twice", budget(func(b *configv1.Budget) { b.Teams = []string{"x", "x"} }), "teams[1]"},
		{"a shadow budget", budget(func(b *configv1.Budget) { b.Mode = configv1.BudgetMode_BUDGET_MODE_SHADOW }), ""},
		{"an enforced budget", budget(func(b *configv1.Budget) { b.Mode = configv1.BudgetMode_BUDGET_MODE_ENFORCE }), ""},
		{"an unknown mode", budget(func(b *configv1.Budget) { b.Mode = 9 }), "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.Validate(resource.Wrap(tt.res))
			var ie *resource.InvalidError
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.field != "" && (!errors.As(err, &ie) || ie.Field != tt.field):
				t.Errorf("Validate = %v, want an error on %s", err, tt.field)
			}
			if err != nil && strings.Contains(err.Error(), "%!") {
				t.Errorf("malformed message: %v", err)
			}
		})
	}
}
