package authz_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// a2aPolicies: the payments team may read every remote agent's tasks and
// send to travel's search skill with small messages; nobody may cancel.
const a2aPolicies = `permit(principal in Team::"payments", action in Action::"a2a_read", resource is RemoteAgent);
@id("search")
permit(principal in Team::"payments", action == Action::"a2a:send_message", resource == RemoteAgent::"travel")
  when { context has skill && context.skill == "search" && context.messageBytes < 1000 };
@id("no-cancel")
forbid(principal, action == Action::"a2a:cancel_task", resource);
permit(principal == Agent::"marketer", action in Action::"a2a_send", resource in Upstream::"weather")
  when { resource.readOnly && resource.skills.contains("forecast") };
`

func a2aEngine(t *testing.T, opts ...authz.Option) *authz.Engine {
	t.Helper()
	return authztest.Compile(t, authztest.AddRemoteAgents(authztest.WithPolicies(a2aPolicies)), opts...)
}

func a2aRequest(agent, action, remote, skill string, size int64) *authz.Request {
	return &authz.Request{
		Agent: agent, Action: action, Resource: authz.RemoteAgentResource(remote),
		Context: authz.Context{Protocol: "a2a", Time: callAt, SourceIP: netip.MustParseAddr("10.1.2.3"), Skill: skill, MessageBytes: size},
	}
}

func TestDecideRemoteAgent(t *testing.T) {
	for _, cache := range []int{0, 100} {
		e := a2aEngine(t, authz.WithDecisionCache(cache))
		tests := []struct {
			name    string
			req     *authz.Request
			allowed bool
		}{
			{"send to permitted skill", a2aRequest(authztest.Payer, cedarschema.ActionA2ASendMessage, authztest.Travel, "search", 10), true},
			{"send to another skill", a2aRequest(authztest.Payer, cedarschema.ActionA2ASendMessage, authztest.Travel, "book", 10), false},
			{"send without a skill", a2aRequest(authztest.Payer, cedarschema.ActionA2ASendMessage, authztest.Travel, "", 10), false},
			{"message too large", a2aRequest(authztest.Payer, cedarschema.ActionA2ASendMessage, authztest.Travel, "search", 1000), false},
			// Same action and skill, another agent: a cached decision
			// must not leak across resources.
			{"send to another agent", a2aRequest(authztest.Payer, cedarschema.ActionA2ASendMessage, authztest.Weather, "search", 10), false},
			{"read", a2aRequest(authztest.Payer, cedarschema.ActionA2AGetTask, authztest.Weather, "", 0), true},
			{"cancel is forbidden", a2aRequest(authztest.Marketer, cedarschema.ActionA2ACancelTask, authztest.Weather, "", 0), false},
			{"resource attributes", a2aRequest(authztest.Marketer, cedarschema.ActionA2ASendMessage, authztest.Weather, "", 0), true},
			{"other team reads nothing", a2aRequest(authztest.Marketer, cedarschema.ActionA2AListTasks, authztest.Travel, "", 0), false},
		}
		for _, tt := range tests {
			// Twice: the second may come from the cache.
			for range 2 {
				if d := e.Decide(context.Background(), tt.req); d.Allowed != tt.allowed {
					t.Errorf("cache %d: %s: allowed = %v (%v, %v), want %v", cache, tt.name, d.Allowed, d.Policies, d.Errors, tt.allowed)
				}
			}
		}
	}
}

func TestDecideRemoteAgentRefusesWrongTargets(t *testing.T) {
	e := a2aEngine(t)
	tests := []struct {
		name string
		req  *authz.Request
		want error
	}{
		{"tool action on a remote agent", a2aRequest(authztest.Payer, authztest.PayAction, authztest.Travel, "", 0), authz.ErrInvalidRequest},
		{"no action", a2aRequest(authztest.Payer, "", authztest.Travel, "", 0), authz.ErrInvalidRequest},
		{"unknown remote agent", a2aRequest(authztest.Payer, cedarschema.ActionA2AGetTask, "nope", "", 0), authz.ErrUnknownResource},
		{"mcp upstream", a2aRequest(authztest.Payer, cedarschema.ActionA2AGetTask, authztest.Upstream, "", 0), authz.ErrUnknownResource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := e.Decide(context.Background(), tt.req); d.Allowed || len(d.Errors) == 0 {
				t.Errorf("Decide = %+v, want a denial with an error", d)
			}
			if _, err := e.Explain(context.Background(), tt.req); !errors.Is(err, tt.want) {
				t.Errorf("Explain error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPermittedSkillsAndListing(t *testing.T) {
	e := a2aEngine(t)
	ctx := context.Background()
	if got := e.PermittedSkills(ctx, listRequest(authztest.Payer), authztest.Travel); !slices.Equal(got, []string{"search"}) {
		t.Errorf("payer's travel skills = %v, want [search]", got)
	}
	if got := e.PermittedSkills(ctx, listRequest(authztest.Marketer), authztest.Weather); !slices.Equal(got, []string{"forecast"}) {
		t.Errorf("marketer's weather skills = %v, want [forecast]", got)
	}
	if got := e.PermittedSkills(ctx, listRequest(authztest.Marketer), authztest.Travel); len(got) != 0 {
		t.Errorf("marketer's travel skills = %v, want none", got)
	}
	if got := e.Listable(ctx, listRequest(authztest.Payer), authz.ResourceRemoteAgent); !slices.Equal(got, []string{authztest.Travel, authztest.Weather}) {
		t.Errorf("payer's remote agents = %v", got)
	}
	if got := e.Listable(ctx, listRequest(authztest.Marketer), authz.ResourceRemoteAgent); !slices.Equal(got, []string{authztest.Weather}) {
		t.Errorf("marketer's remote agents = %v", got)
	}
	who, err := e.WhoCan(ctx, &authz.Request{Action: cedarschema.ActionA2ASendMessage, Resource: authz.RemoteAgentResource(authztest.Travel)})
	if err != nil || !slices.Equal(who, []string{authztest.Payer}) {
		t.Errorf("who can send to travel = %v, %v", who, err)
	}
}

func TestCompileRefusesBadCardPins(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *configv1.ToolPin, u *configv1.Upstream)
		want   string
	}{
		{"tool pin on an A2A upstream", func(p *configv1.ToolPin, _ *configv1.Upstream) { p.Kind = configv1.PinKind_PIN_KIND_UNSPECIFIED }, "its only pin is its agent card"},
		{"card on an MCP upstream", func(_ *configv1.ToolPin, u *configv1.Upstream) { u.Protocol = configv1.Protocol_PROTOCOL_MCP }, "does not speak A2A"},
		{"card without a name", func(p *configv1.ToolPin, _ *configv1.Upstream) { p.Versions[0].Definition = []byte(`{"skills":[]}`) }, `no "name"`},
		{"wrong tool name", func(p *configv1.ToolPin, _ *configv1.Upstream) { p.Tool = "card" }, "agent-card"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := authztest.AddRemoteAgents(authztest.Snapshot())
			var pin *configv1.ToolPin
			for _, p := range s.ToolPins {
				if p.GetUpstream() == authztest.Travel {
					pin = p
				}
			}
			tt.change(pin, s.Upstreams[1])
			_, err := authz.Compile(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}
