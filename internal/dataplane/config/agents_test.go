package config_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// remotePolicies: payments may do everything with travel but book; the
// marketer may only read.
const remotePolicies = `permit(principal in Team::"payments", action, resource == RemoteAgent::"travel");
forbid(principal, action == Action::"a2a:send_message", resource) when { context has skill && context.skill == "book" };
forbid(principal, action, resource is RemoteAgent) when { context.messageBytes > 100 };
permit(principal == Agent::"marketer", action in Action::"a2a_read", resource is RemoteAgent);
`

func TestRemoteAgents(t *testing.T) {
	snap := authztest.AddRemoteAgents(configtest.Snapshot())
	snap.PolicySets[0].Source = remotePolicies
	snap.TaskIdKey = bytes.Repeat([]byte{3}, 32)
	c := configtest.Compile(t, snap)
	if !bytes.Equal(c.TaskIDKey(), snap.TaskIdKey) {
		t.Errorf("TaskIDKey = %x", c.TaskIDKey())
	}
	travel, ok := c.Agent(authztest.Travel)
	if !ok || travel.Kind != pipeline.KindAgent || travel.Class != configv1.ToolClass_TOOL_CLASS_MUTATING || len(travel.Definition) == 0 {
		t.Fatalf("Agent(travel) = %+v, %v", travel, ok)
	}
	if _, ok := c.Agent(configtest.Upstream); ok {
		t.Error("an MCP upstream is a remote agent")
	}
	var pins []string
	for _, p := range c.Pins() {
		pins = append(pins, string(p.Kind)+":"+p.Upstream+"/"+p.Name)
	}
	if !slices.Equal(pins, []string{"tool:pay/balance", "tool:pay/pay", "agent:travel/agent-card", "agent:weather/agent-card"}) {
		t.Errorf("Pins = %v", pins)
	}

	payer, marketer := mustAgent(t, c, configtest.PayerKey), mustAgent(t, c, configtest.MarketerKey)
	call := func(agent *configv1.Agent, op pipeline.Operation, remote, skill string, size int64) *pipeline.Call {
		cl := newCall(c, agent, "", "")
		cl.Protocol, cl.Op, cl.Arguments = "a2a", op, nil
		cl.Target = pipeline.Target{Kind: pipeline.KindAgent, Name: remote, Upstream: remote}
		cl.Message = &pipeline.Message{Skill: skill, Bytes: size}
		return cl
	}
	tests := []struct {
		name    string
		call    *pipeline.Call
		allowed bool
	}{
		{"send", call(payer, pipeline.OpCall, authztest.Travel, "search", 10), true},
		{"send a forbidden skill", call(payer, pipeline.OpCall, authztest.Travel, "book", 10), false},
		{"send too much", call(payer, pipeline.OpCall, authztest.Travel, "", 101), false},
		{"cancel", call(payer, pipeline.OpCancel, authztest.Travel, "", 0), true},
		{"another agent", call(payer, pipeline.OpGet, authztest.Weather, "", 0), false},
		{"marketer reads", call(marketer, pipeline.OpQuery, authztest.Weather, "", 0), true},
		{"marketer subscribes", call(marketer, pipeline.OpSubscribe, authztest.Travel, "", 0), true},
		{"marketer sends", call(marketer, pipeline.OpCall, authztest.Travel, "", 0), false},
		{"a list is no decision", call(payer, pipeline.OpList, authztest.Travel, "", 0), false},
	}
	for _, tt := range tests {
		if d := c.Authorize(context.Background(), tt.call); d.Allowed != tt.allowed {
			t.Errorf("%s: allowed = %v (%v %v), want %v", tt.name, d.Allowed, d.Policies, d.Errors, tt.allowed)
		}
	}

	list := func(agent *configv1.Agent, remote string) []string {
		cl := call(agent, pipeline.OpList, "", "", 0)
		cl.Target = pipeline.Target{Kind: pipeline.KindSkill, Upstream: remote}
		var out []string
		for _, t := range c.Listable(context.Background(), cl, pipeline.KindSkill) {
			out = append(out, "+"+t.Name)
		}
		return out
	}
	if got := list(payer, authztest.Travel); !slices.Equal(got, []string{"+", "+search"}) {
		t.Errorf("payer's view of travel = %v", got)
	}
	if got := list(marketer, authztest.Travel); !slices.Equal(got, []string{"+"}) {
		t.Errorf("marketer's view of travel = %v, want the agent without skills", got)
	}
	if got := list(payer, authztest.Weather); len(got) != 0 {
		t.Errorf("payer's view of weather = %v, want nothing", got)
	}
}
