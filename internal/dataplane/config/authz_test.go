package config_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// callAt is when test calls start: 12:30 UTC on the fixture's day.
var callAt = configtest.VersionTime.Add(30 * time.Minute)

// newCall is the call an adapter would hand the pipeline for agent on
// action with args, already authenticated.
func newCall(c *config.Compiled, agent *configv1.Agent, action, args string) *pipeline.Call {
	return &pipeline.Call{
		Protocol:  "mcp",
		Method:    "tools/call",
		Op:        pipeline.OpCall,
		Target:    pipeline.Target{Kind: pipeline.KindTool, Name: action},
		Arguments: json.RawMessage(args),
		SourceIP:  netip.MustParseAddr("10.1.2.3"),
		Start:     callAt,
		Config:    c,
		Mode:      configsyncv1.Mode_MODE_NORMAL,
		Agent:     agent,
	}
}

func mustAgent(t *testing.T, c *config.Compiled, key string) *configv1.Agent {
	t.Helper()
	a, ok := c.AgentByAPIKey(key, callAt)
	if !ok {
		t.Fatalf("AgentByAPIKey(%q) refused", key)
	}
	return a
}

// adapterPolicies read every part of the call the adapter maps: the agent
// (as principal), the tool, the arguments, the mode, the source address,
// the protocol and the time.
const adapterPolicies = `@id("team")
permit(principal in Team::"payments", action in Action::"call_tool", resource);
@id("cap")
forbid(principal, action == Action::"pay__pay", resource) when { context.arguments.amount >= 500 };
@id("degraded")
forbid(principal, action, resource) when { context.degraded && !resource.readOnly };
@id("source")
forbid(principal, action, resource) when { context.sourceIp.isInRange(ip("192.0.2.0/24")) };
@id("protocol")
forbid(principal, action, resource) when { context.protocol == "a2a" };
@id("night")
forbid(principal, action == Action::"pay__balance", resource) when { context.time.toTime() < duration("6h") };
`

// TestAuthorizeMapsTheCall checks the adapter from pipeline calls to the
// policy engine: each field of the call reaches the policies, the
// determining policies and errors come back, and the decoded arguments are
// recorded for the Validate stage. The engine's own semantics are tested
// in package authz.
func TestAuthorizeMapsTheCall(t *testing.T) {
	s := configtest.Snapshot()
	s.PolicySets[0].Source = adapterPolicies
	c := configtest.Compile(t, s)
	payer := mustAgent(t, c, configtest.PayerKey)
	marketer := mustAgent(t, c, configtest.MarketerKey)
	tests := []struct {
		name         string
		agent        *configv1.Agent
		action, args string
		edit         func(*pipeline.Call)
		wantAllowed  bool
		wantPolicies []string
		wantError    string
		wantInvalid  bool
	}{
		{name: "permitted", agent: payer, action: configtest.PayAction, args: `{"amount": 100, "to": "bob"}`,
			wantAllowed: true, wantPolicies: []string{"payments/team"}},
		{name: "arguments", agent: payer, action: configtest.PayAction, args: `{"amount": 900, "to": "bob"}`,
			wantPolicies: []string{"payments/cap"}},
		{name: "agent", agent: marketer, action: configtest.PayAction, args: `{"amount": 1, "to": "bob"}`},
		{name: "degraded mode", agent: payer, action: configtest.PayAction, args: `{"amount": 1, "to": "bob"}`,
			edit: func(c *pipeline.Call) { c.Mode = configsyncv1.Mode_MODE_DEGRADED }, wantPolicies: []string{"payments/degraded"}},
		{name: "degraded mode, read-only tool", agent: payer, action: configtest.BalanceAction, args: `{}`,
			edit: func(c *pipeline.Call) { c.Mode = configsyncv1.Mode_MODE_DEGRADED }, wantAllowed: true, wantPolicies: []string{"payments/team"}},
		{name: "source address", agent: payer, action: configtest.BalanceAction, args: `{}`,
			edit: func(c *pipeline.Call) { c.SourceIP = netip.MustParseAddr("192.0.2.9") }, wantPolicies: []string{"payments/source"}},
		{name: "protocol", agent: payer, action: configtest.BalanceAction, args: `{}`,
			edit: func(c *pipeline.Call) { c.Protocol = "a2a" }, wantPolicies: []string{"payments/protocol"}},
		{name: "time", agent: payer, action: configtest.BalanceAction, args: `{}`,
			edit: func(c *pipeline.Call) { c.Start = callAt.Add(-10 * time.Hour) }, wantPolicies: []string{"payments/night"}},
		{name: "invalid arguments", agent: payer, action: configtest.PayAction, args: `{"amount": "lots", "to": "bob"}`,
			wantError: "arguments/amount: want integer, got string", wantInvalid: true},
		{name: "no agent", agent: nil, action: configtest.PayAction, args: `{}`, wantError: "no authenticated agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := newCall(c, tt.agent, tt.action, tt.args)
			if tt.edit != nil {
				tt.edit(call)
			}
			d := c.Authorize(context.Background(), call)
			if d.Allowed != tt.wantAllowed || !slices.Equal(d.Policies, tt.wantPolicies) || d.InvalidArguments != tt.wantInvalid {
				t.Errorf("decision = %+v, want allowed %v by %q, invalid arguments %v", d, tt.wantAllowed, tt.wantPolicies, tt.wantInvalid)
			}
			switch {
			case tt.wantError == "" && len(d.Errors) > 0:
				t.Errorf("errors = %q, want none", d.Errors)
			case tt.wantError != "" && (len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tt.wantError)):
				t.Errorf("errors = %q, want one containing %q", d.Errors, tt.wantError)
			}
		})
	}
}

func TestAuthorizeRecordsDecodedArguments(t *testing.T) {
	c := configtest.Compile(t, configtest.Snapshot())
	call := newCall(c, mustAgent(t, c, configtest.PayerKey), configtest.PayAction, `{"amount": 100, "to": "bob"}`)
	c.Authorize(context.Background(), call)
	got, ok := call.DecodedArguments()
	args, _ := got.(map[string]any)
	if !ok || args["amount"] != json.Number("100") || args["to"] != "bob" {
		t.Errorf("DecodedArguments() = %#v, %v; want the arguments with amount as json.Number", got, ok)
	}
	bad := newCall(c, mustAgent(t, c, configtest.PayerKey), configtest.PayAction, `{"amount": 1,`)
	c.Authorize(context.Background(), bad)
	if got, ok := bad.DecodedArguments(); ok {
		t.Errorf("malformed arguments: DecodedArguments() = %#v, want none", got)
	}
}

func TestListableAndContentUpstreams(t *testing.T) {
	s := configtest.Snapshot()
	s.PolicySets[0].Source = `permit(principal in Team::"payments", action == Action::"pay__balance", resource);`
	c := configtest.Compile(t, s)
	ctx := context.Background()
	payer := newCall(c, mustAgent(t, c, configtest.PayerKey), "", "")
	payer.Method = "tools/list"
	got := c.Listable(ctx, payer, pipeline.KindTool)
	if len(got) != 1 || got[0].Name != configtest.BalanceAction || !got[0].Tool.ReadOnly() || got[0].Upstream != configtest.Upstream {
		t.Errorf("Listable(payer) = %+v, want the read-only %s of %s", got, configtest.BalanceAction, configtest.Upstream)
	}
	if ups := c.Listable(ctx, payer, pipeline.KindResource); len(ups) != 1 || ups[0].Upstream != configtest.Upstream {
		t.Errorf("Listable(payer, resources) = %+v, want %s", ups, configtest.Upstream)
	}
	marketer := newCall(c, mustAgent(t, c, configtest.MarketerKey), "", "")
	if got := c.Listable(ctx, marketer, pipeline.KindTool); len(got) != 0 {
		t.Errorf("Listable(marketer) = %+v, want none", got)
	}
	if ups := c.Listable(ctx, marketer, pipeline.KindPrompt); len(ups) != 0 {
		t.Errorf("Listable(marketer, prompts) = %+v, want none", ups)
	}
	if got := c.Listable(ctx, newCall(c, nil, "", ""), pipeline.KindTool); len(got) != 0 {
		t.Errorf("Listable without an agent = %+v, want none", got)
	}
}

// TestAuthorizeContentOperations: every operation on an upstream's
// content follows the content rule (the agent may use some tool of the
// upstream), except unsubscribing, which any agent may do; an operation
// no rule decides is denied.
func TestAuthorizeContentOperations(t *testing.T) {
	s := configtest.Snapshot()
	s.PolicySets[0].Source = `permit(principal in Team::"payments", action == Action::"pay__balance", resource);`
	c := configtest.Compile(t, s)
	ctx := context.Background()
	payer, marketer := mustAgent(t, c, configtest.PayerKey), mustAgent(t, c, configtest.MarketerKey)
	tests := []struct {
		name        string
		op          pipeline.Operation
		kind        pipeline.Kind
		payer, mark bool
	}{
		{"read", pipeline.OpRead, pipeline.KindResource, true, false},
		{"get prompt", pipeline.OpGet, pipeline.KindPrompt, true, false},
		{"complete a prompt", pipeline.OpComplete, pipeline.KindPrompt, true, false},
		{"complete a resource template", pipeline.OpComplete, pipeline.KindResource, true, false},
		{"subscribe", pipeline.OpSubscribe, pipeline.KindResource, true, false},
		{"unsubscribe", pipeline.OpUnsubscribe, pipeline.KindResource, true, true},
		{"call a resource", pipeline.OpCall, pipeline.KindResource, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, who := range []struct {
				agent *configv1.Agent
				want  bool
			}{{payer, tt.payer}, {marketer, tt.mark}} {
				call := newCall(c, who.agent, "", "")
				call.Op = tt.op
				call.Target = pipeline.Target{Kind: tt.kind, Name: "pay__doc://x", Upstream: configtest.Upstream, Own: "doc://x"}
				if d := c.Authorize(ctx, call); d.Allowed != who.want {
					t.Errorf("%s by %s: allowed %v, want %v (%+v)", tt.name, who.agent.GetMeta().GetName(), d.Allowed, who.want, d)
				}
			}
		})
	}
}
