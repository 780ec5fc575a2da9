package authz_test

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// modelPolicies: the payments team may call any model of upstream
// "openai" but not stream from mini, nor offer it web search, nor spend
// over 0.50 a call, nor ask for more than 8,000 tokens; marketing may call
// claude.
const modelPolicies = `permit(principal in Team::"payments", action in Action::"llm_complete", resource in Upstream::"openai");
@id("no-stream-mini") forbid(principal, action, resource == Model::"openai/gpt-4o-mini") when { context.stream };
@id("no-search") forbid(principal, action == Action::"llm:complete", resource) when { context.tools.contains("web_search") };
@id("cost-cap") forbid(principal, action in Action::"llm_complete", resource) when { context has estimatedCost && context.estimatedCost.greaterThan(decimal("0.50")) };
@id("size-cap") forbid(principal, action in Action::"llm_complete", resource) when { context.maxTokens > 8000 };
permit(principal in Team::"marketing", action, resource == Model::"anthropic/claude") when { resource.provider == "anthropic" };
`

func modelSnapshot(policies string) *snapshotv1.Snapshot {
	s := authztest.WithPolicies(policies)
	s.Upstreams = append(s.Upstreams,
		&configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "openai"}, Protocol: configv1.Protocol_PROTOCOL_LLM, Url: "https://api.openai.com/v1",
			Llm: &configv1.LlmUpstream{Provider: configv1.LlmProvider_LLM_PROVIDER_OPENAI, Models: []*configv1.LlmModel{{Id: "gpt-4o"}, {Id: "gpt-4o-mini", Aliases: []string{"fast"}}}}},
		&configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "claude-up"}, ToolPrefix: proto.String("anthropic"), Protocol: configv1.Protocol_PROTOCOL_LLM, Url: "https://api.anthropic.com",
			Llm: &configv1.LlmUpstream{Provider: configv1.LlmProvider_LLM_PROVIDER_ANTHROPIC, Models: []*configv1.LlmModel{{Id: "claude"}}}},
	)
	return s
}

func modelRequest(agent, model string, mc authz.ModelContext) *authz.Request {
	return &authz.Request{
		Agent:    agent,
		Resource: authz.ModelResource(model),
		Context:  authz.Context{Protocol: "llm", Time: callAt, SourceIP: netip.MustParseAddr("10.1.2.3"), Model: mc},
	}
}

func nanos(n int64) *int64 { return &n }

func TestDecideModelCalls(t *testing.T) {
	e := authztest.Compile(t, modelSnapshot(modelPolicies))
	ctx := context.Background()
	tests := []struct {
		name     string
		req      *authz.Request
		allowed  bool
		policies []string
		errs     string
	}{
		{"payments, plain call", modelRequest(authztest.Payer, "openai/gpt-4o", authz.ModelContext{MaxTokens: 100, InputTokens: 10}), true, []string{"payments/policy0"}, ""},
		{"payments, streaming mini", modelRequest(authztest.Payer, "openai/gpt-4o-mini", authz.ModelContext{MaxTokens: 100, Stream: true}), false, []string{"payments/no-stream-mini"}, ""},
		{"payments, web search", modelRequest(authztest.Payer, "openai/gpt-4o", authz.ModelContext{MaxTokens: 100, Tools: []string{"lookup", "web_search"}}), false, []string{"payments/no-search"}, ""},
		// 0.5000001 rounds up to 0.5001: over the cap.
		{"payments, over the cost cap", modelRequest(authztest.Payer, "openai/gpt-4o", authz.ModelContext{MaxTokens: 100, EstimatedCostNanos: nanos(500_000_100)}), false, []string{"payments/cost-cap"}, ""},
		{"payments, at the cost cap", modelRequest(authztest.Payer, "openai/gpt-4o", authz.ModelContext{MaxTokens: 100, EstimatedCostNanos: nanos(500_000_000)}), true, []string{"payments/policy0"}, ""},
		{"payments, too many tokens", modelRequest(authztest.Payer, "openai/gpt-4o", authz.ModelContext{MaxTokens: 9000}), false, []string{"payments/size-cap"}, ""},
		{"payments, another upstream", modelRequest(authztest.Payer, "anthropic/claude", authz.ModelContext{MaxTokens: 10}), false, nil, ""},
		{"marketing, claude", modelRequest(authztest.Marketer, "anthropic/claude", authz.ModelContext{MaxTokens: 10}), true, []string{"payments/policy5"}, ""},
		{"unknown model", modelRequest(authztest.Payer, "openai/gpt-5", authz.ModelContext{}), false, nil, "no model"},
		{"an alias is not a model entity", modelRequest(authztest.Payer, "fast", authz.ModelContext{}), false, nil, "no model"},
		{"a disabled agent", modelRequest(authztest.Retired, "openai/gpt-4o", authz.ModelContext{}), false, nil, "not an enabled agent"},
		{"a tool action on a model", func() *authz.Request {
			r := modelRequest(authztest.Payer, "openai/gpt-4o", authz.ModelContext{})
			r.Action = authztest.PayAction
			return r
		}(), false, nil, "does not apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(ctx, tt.req)
			if d.Allowed != tt.allowed || !reflect.DeepEqual(d.Policies, tt.policies) {
				t.Errorf("decision %v %v (errors %v), want %v %v", d.Allowed, d.Policies, d.Errors, tt.allowed, tt.policies)
			}
			if tt.errs != "" && (len(d.Errors) == 0 || !strings.Contains(d.Errors[0], tt.errs)) {
				t.Errorf("errors %v, want one mentioning %q", d.Errors, tt.errs)
			}
		})
	}
}

func TestListableModels(t *testing.T) {
	e := authztest.Compile(t, modelSnapshot(modelPolicies))
	ctx := context.Background()
	// The stream and size forbids depend on what a call asks, so they do
	// not hide a model.
	if got := e.Listable(ctx, listRequest(authztest.Payer), authz.ResourceModel); !reflect.DeepEqual(got, []string{"openai/gpt-4o", "openai/gpt-4o-mini"}) {
		t.Errorf("payer lists %v", got)
	}
	if got := e.Listable(ctx, listRequest(authztest.Marketer), authz.ResourceModel); !reflect.DeepEqual(got, []string{"anthropic/claude"}) {
		t.Errorf("marketer lists %v", got)
	}
	forbidAll := modelPolicies + `forbid(principal == Agent::"payer", action, resource == Model::"openai/gpt-4o");`
	e = authztest.Compile(t, modelSnapshot(forbidAll))
	if got := e.Listable(ctx, listRequest(authztest.Payer), authz.ResourceModel); !reflect.DeepEqual(got, []string{"openai/gpt-4o-mini"}) {
		t.Errorf("payer with gpt-4o forbidden lists %v", got)
	}
}

func TestModelNamesMustNotCollide(t *testing.T) {
	s := modelSnapshot(modelPolicies)
	s.Upstreams = append(s.Upstreams, &configv1.Upstream{Meta: &configv1.ResourceMeta{Name: "other"}, ToolPrefix: proto.String("openai"), Protocol: configv1.Protocol_PROTOCOL_LLM,
		Llm: &configv1.LlmUpstream{Models: []*configv1.LlmModel{{Id: "gpt-4o"}}}})
	if _, err := authz.Compile(s); err == nil || !strings.Contains(err.Error(), `model "openai/gpt-4o"`) {
		t.Errorf("Compile = %v, want a clash of model names", err)
	}
}

func TestModelPoliciesNeedTheModelDeclarations(t *testing.T) {
	s, err := cedarschema.Generate(nil, cedarschema.WithoutModels())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ParsePolicies("p", "p.cedar", []byte(modelPolicies)); err == nil {
		t.Error("model policies validate against a schema without models")
	}
}
