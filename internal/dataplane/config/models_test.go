package config_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

func llmSnapshot() *snapshotv1.Snapshot {
	s := configtest.Snapshot()
	s.Upstreams = append(s.Upstreams, &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "openai"}, Protocol: configv1.Protocol_PROTOCOL_LLM, Url: "https://api.openai.com/v1",
		Llm: &configv1.LlmUpstream{Provider: configv1.LlmProvider_LLM_PROVIDER_OPENAI, Models: []*configv1.LlmModel{
			{Id: "gpt-4o", OutputCap: 8000}, {Id: "gpt-4o-mini", Aliases: []string{"fast", "cheap"}},
		}},
	})
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.ModelPrices = []*configv1.ModelPrice{{
		Meta: &configv1.ResourceMeta{Name: "openai/gpt-4o"}, Upstream: "openai", Model: "gpt-4o",
		Prices: []*configv1.PriceEntry{
			{EffectiveTime: timestamppb.New(jan.AddDate(0, 1, 0)), InputMicros: 2_000_000, OutputMicros: 8_000_000},
			{EffectiveTime: timestamppb.New(jan), InputMicros: 2_500_000, CachedInputMicros: proto.Int64(1_250_000), OutputMicros: 10_000_000},
		},
	}}
	s.Budgets = []*configv1.Budget{{Meta: &configv1.ResourceMeta{Name: "b"}, Scope: configv1.BudgetScope_BUDGET_SCOPE_AGENT,
		Window: configv1.BudgetWindow_BUDGET_WINDOW_DAY, TimeZone: "America/New_York", MaxTokens: 10}}
	return s
}

func TestCompileModels(t *testing.T) {
	c := configtest.Compile(t, llmSnapshot())
	m, ok := c.Model("openai/gpt-4o")
	if !ok || m.Upstream != "openai" || m.Own != "gpt-4o" || m.OutputCap != 8000 || len(m.Prices) != 2 {
		t.Fatalf("Model(openai/gpt-4o) = %+v, %v", m, ok)
	}
	// Prices in order of effective time; an unset cached price is the
	// input price.
	feb := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
	if p := m.PriceAt(feb); p == nil || p.Input != 2_000_000 || p.CachedInput != 2_000_000 || p.CacheWrite != 2_000_000 {
		t.Errorf("price in February: %+v", p)
	}
	if p := m.PriceAt(feb.AddDate(0, -1, 0)); p == nil || p.CachedInput != 1_250_000 {
		t.Errorf("price in January: %+v", p)
	}
	for _, alias := range []string{"fast", "cheap", "openai/gpt-4o-mini"} {
		if m, ok := c.Model(alias); !ok || m.Name != "openai/gpt-4o-mini" || m.OutputCap != config.DefaultOutputCap || m.Prices != nil {
			t.Errorf("Model(%q) = %+v, %v", alias, m, ok)
		}
	}
	if _, ok := c.Model("gpt-4o"); ok {
		t.Error("a model is found by its id without the prefix")
	}
	if got := c.Budgets(); len(got) != 1 || got[0].GetTimeZone() != "America/New_York" {
		t.Errorf("budgets %v", got)
	}
}

func TestCompileRefusesBadModelsAndBudgets(t *testing.T) {
	tests := []struct {
		name   string
		change func(*snapshotv1.Snapshot)
		want   string
	}{
		{"an alias two models answer to", func(s *snapshotv1.Snapshot) {
			s.Upstreams[1].Llm.Models[0].Aliases = []string{"fast"}
		}, `model name "fast"`},
		{"an unknown time zone", func(s *snapshotv1.Snapshot) { s.Budgets[0].TimeZone = "Mars/Olympus" }, `time zone "Mars/Olympus"`},
		{"too many models", func(s *snapshotv1.Snapshot) {
			for i := range 300 {
				s.Upstreams[1].Llm.Models = append(s.Upstreams[1].Llm.Models, &configv1.LlmModel{Id: "m" + strings.Repeat("x", i%5) + string(rune('a'+i%26))})
			}
		}, "llm.models"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmSnapshot()
			tt.change(s)
			_, err := config.Compile(configtest.Marshal(t, s))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile = %v, want a problem mentioning %s", err, tt.want)
			}
		})
	}
}
