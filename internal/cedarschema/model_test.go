package cedarschema_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

func TestModelDeclarations(t *testing.T) {
	text := string(mustGenerate(t, fixtureTools()).Cedar())
	for _, fragment := range []string{
		"entity Model in Upstream {\n\tname: String,\n\tprovider: String,\n\treadOnly: Bool,\n\tversion: Long\n};",
		"action llm_complete;",
		"action \"llm:complete\" in llm_complete appliesTo {\n\tprincipal: Agent,\n\tresource: Model,",
		"\t\testimatedCost?: decimal,\n\t\tfindings: Set<String>,\n\t\tinputTokens: Long,\n\t\tmaxTokens: Long,",
		"\t\tstream: Bool,\n\t\ttime: datetime,\n\t\ttools: Set<String>,",
	} {
		if !strings.Contains(text, fragment) {
			t.Errorf("schema lacks\n%s\nschema:\n%s", fragment, text)
		}
	}
	without, err := cedarschema.Generate(fixtureTools(), cedarschema.WithoutModels())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(without.Cedar()), "Model") || strings.Contains(string(without.Cedar()), "llm_complete") {
		t.Errorf("WithoutModels declares models:\n%s", without.Cedar())
	}
}

func TestModelPolicies(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	tests := []struct {
		name   string
		policy string
		ok     bool
	}{
		{"the group, scoped by upstream", `permit(principal in Team::"research", action in Action::"llm_complete", resource in Upstream::"openai");`, true},
		{"the context", `forbid(principal, action == Action::"llm:complete", resource) when { context.maxTokens > 8000 || context.stream || context.tools.contains("web_search") || (context has estimatedCost && context.estimatedCost.greaterThan(decimal("0.50"))) || context.inputTokens > 100000 };`, true},
		{"runtime inspection's findings", `forbid(principal, action in Action::"llm_complete", resource) when { context.findings.contains("secrets") };`, true},
		{"a model by name", `permit(principal, action, resource == Model::"openai/gpt-4o") when { resource.provider == "openai" };`, true},
		// Policies over every action still validate: a model has a tool's
		// attributes and an empty arguments record.
		{"every action, tool attributes", `permit(principal, action, resource) when { resource.readOnly && resource.version > 0 };`, true},
		{"every action, guarded arguments", `forbid(principal, action, resource) when { context.arguments has amount };`, true},
		{"estimated cost must be guarded", `forbid(principal, action == Action::"llm:complete", resource) when { context.estimatedCost.greaterThan(decimal("1.0")) };`, false},
		{"the group is not callable", `permit(principal, action == Action::"llm_complete", resource);`, false},
		{"model context on a tool", `permit(principal, action in Action::"call_tool", resource) when { context.maxTokens < 10 };`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ParsePolicies("p", "p.cedar", []byte(tt.policy))
			if (err == nil) != tt.ok {
				t.Errorf("ParsePolicies = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
