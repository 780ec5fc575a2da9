package config_test

import (
	"context"
	"fmt"
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

// listCall is the call an adapter hands Listable for tools/list.
func listCall(c *config.Compiled, agent *configv1.Agent) *pipeline.Call {
	return &pipeline.Call{
		Protocol: "mcp",
		Method:   "tools/list",
		SourceIP: netip.MustParseAddr("10.1.2.3"),
		Start:    callAt,
		Config:   c,
		Mode:     configsyncv1.Mode_MODE_NORMAL,
		Agent:    agent,
	}
}

func actions(tools []pipeline.Tool) []string {
	out := []string{}
	for _, t := range tools {
		out = append(out, t.Action)
	}
	return out
}

func TestListable(t *testing.T) {
	finance := &pipeline.User{Source: "people", Name: "alice", Groups: []string{"finance"}}
	sales := &pipeline.User{Source: "people", Name: "bob", Groups: []string{"sales"}}
	both := []string{configtest.BalanceAction, configtest.PayAction}
	tests := []struct {
		name     string
		policies string
		agent    string // API key
		user     *pipeline.User
		edit     func(*pipeline.Call)
		want     []string
	}{
		{name: "team allowlist permits", policies: `permit(principal in Team::"payments", action, resource);`,
			agent: configtest.PayerKey, want: both},
		{name: "other team not listed", policies: `permit(principal in Team::"payments", action, resource);`,
			agent: configtest.MarketerKey, want: []string{}},
		{name: "no policies", policies: ``, agent: configtest.PayerKey, want: []string{}},
		{name: "argument-dependent forbid keeps the tool", policies: configtest.Policies,
			agent: configtest.PayerKey, want: both},
		{name: "argument-dependent forbid without has", policies: `permit(principal, action, resource);
forbid(principal, action == Action::"pay__pay", resource) when { context.arguments.amount >= 500 };`,
			agent: configtest.PayerKey, want: both},
		{name: "argument-dependent permit lists the tool", policies: `permit(principal in Team::"payments", action == Action::"pay__pay", resource) when { context.arguments.amount < 100 };`,
			agent: configtest.PayerKey, want: []string{configtest.PayAction}},
		{name: "argument-dependent permit still needs its known part", policies: `permit(principal, action == Action::"pay__pay", resource) when { principal in Team::"payments" && context.arguments.amount < 100 };`,
			agent: configtest.MarketerKey, want: []string{}},
		{name: "unconditional forbid hides", policies: `permit(principal, action, resource);
forbid(principal, action == Action::"pay__pay", resource);`,
			agent: configtest.PayerKey, want: []string{configtest.BalanceAction}},
		{name: "forbid on known context hides", policies: `permit(principal, action, resource);
forbid(principal, action == Action::"pay__pay", resource) when { principal in Team::"payments" && context.protocol == "mcp" };`,
			agent: configtest.PayerKey, want: []string{configtest.BalanceAction}},
		{name: "forbid on another team keeps", policies: `permit(principal, action, resource);
forbid(principal in Team::"marketing", action == Action::"pay__pay", resource);`,
			agent: configtest.PayerKey, want: both},
		{name: "time-dependent permit lists", policies: `permit(principal, action, resource) when { context.time.toTime() >= duration("20h") };`,
			agent: configtest.PayerKey, want: both},
		{name: "source outside the range not listed", policies: `permit(principal, action, resource) when { context.sourceIp.isInRange(ip("192.168.0.0/16")) };`,
			agent: configtest.PayerKey, want: []string{}},
		{name: "source inside the range listed", policies: `permit(principal, action, resource) when { context.sourceIp.isInRange(ip("10.0.0.0/8")) };`,
			agent: configtest.PayerKey, want: both},
		{name: "no source address leaves it unknown", policies: `permit(principal, action, resource) when { context.sourceIp.isInRange(ip("192.168.0.0/16")) };`,
			agent: configtest.PayerKey, edit: func(c *pipeline.Call) { c.SourceIP = netip.Addr{} }, want: both},
		{name: "read-only resource attribute", policies: `permit(principal, action, resource) when { resource.readOnly };`,
			agent: configtest.PayerKey, want: []string{configtest.BalanceAction}},
		{name: "forbid when degraded hides in degraded mode", policies: `permit(principal, action, resource);
forbid(principal, action, resource) when { context.degraded && !resource.readOnly };`,
			agent: configtest.PayerKey, edit: func(c *pipeline.Call) { c.Mode = configsyncv1.Mode_MODE_DEGRADED },
			want: []string{configtest.BalanceAction}},
		{name: "finance group policy without user", policies: financeListPolicy, agent: configtest.MarketerKey, want: []string{}},
		{name: "finance group policy with finance user", policies: financeListPolicy, agent: configtest.MarketerKey, user: finance,
			want: []string{configtest.PayAction}},
		{name: "finance group policy with other user", policies: financeListPolicy, agent: configtest.MarketerKey, user: sales,
			want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := configtest.Snapshot()
			s.PolicySets[0].Source = tt.policies
			c := configtest.Compile(t, s)
			call := listCall(c, mustAgent(t, c, tt.agent))
			call.User = tt.user
			if tt.edit != nil {
				tt.edit(call)
			}
			if got := actions(c.ListableTools(context.Background(), call)); !slices.Equal(got, tt.want) {
				t.Errorf("Listable() = %q, want %q", got, tt.want)
			}
		})
	}
}

const financeListPolicy = `permit(principal, action == Action::"pay__pay", resource) when { context has user && context.user in Group::"finance" };`

func TestListableWithoutEnabledAgent(t *testing.T) {
	s := configtest.Snapshot()
	s.PolicySets[0].Source = `permit(principal, action, resource);`
	c := configtest.Compile(t, s)
	if got := c.ListableTools(context.Background(), listCall(c, nil)); len(got) != 0 {
		t.Errorf("no agent: Listable() = %q", actions(got))
	}
	retired := configtest.Snapshot().Agents[2]
	if got := c.ListableTools(context.Background(), listCall(c, retired)); len(got) != 0 {
		t.Errorf("disabled agent: Listable() = %q", actions(got))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := c.ListableTools(ctx, listCall(c, mustAgent(t, c, configtest.PayerKey))); len(got) != 0 {
		t.Errorf("canceled: Listable() = %q", actions(got))
	}
}

// manyTools is a snapshot with n tools on upstream "pay" and n policies,
// each permitting the payments team one tool unless an argument is too
// large, plus one forbid per ten tools that applies unconditionally.
func manyTools(tb testing.TB, n int) *config.Compiled {
	tb.Helper()
	s := configtest.Snapshot()
	s.ToolPins = s.ToolPins[:0]
	var src strings.Builder
	for i := range n {
		name := fmt.Sprintf("t%03d", i)
		s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
			Meta:     &configv1.ResourceMeta{Name: "pay/" + name},
			Upstream: configtest.Upstream,
			Tool:     name,
			Versions: []*configv1.ToolVersion{{
				Version:     1,
				Definition:  []byte(`{"name":"` + name + `"}`),
				InputSchema: []byte(`{"type":"object","properties":{"amount":{"type":"integer"}}}`),
				Class:       configv1.ToolClass_TOOL_CLASS_MUTATING,
			}},
		})
		action := "pay__" + name
		if i%10 == 0 {
			fmt.Fprintf(&src, "forbid(principal, action == Action::%q, resource);\n", action)
			continue
		}
		fmt.Fprintf(&src, "permit(principal in Team::\"payments\", action == Action::%q, resource) when { context.arguments has amount && context.arguments.amount < %d };\n", action, i)
	}
	s.PolicySets[0].Source = src.String()
	return configtest.Compile(tb, s)
}

func TestListableManyTools(t *testing.T) {
	c := manyTools(t, 200)
	call := listCall(c, mustAgent(t, c, configtest.PayerKey))
	start := time.Now()
	got := c.ListableTools(context.Background(), call)
	t.Logf("Listable over 200 tools × 200 policies: %v", time.Since(start))
	if len(got) != 180 {
		t.Errorf("listed %d tools, want 180", len(got))
	}
	for _, tl := range got {
		if strings.HasSuffix(tl.Action, "0") {
			t.Errorf("listed forbidden %s", tl.Action)
		}
	}
	if got := c.ListableTools(context.Background(), listCall(c, mustAgent(t, c, configtest.MarketerKey))); len(got) != 0 {
		t.Errorf("marketer: listed %d tools, want 0", len(got))
	}
}

func BenchmarkListable200x200(b *testing.B) {
	c := manyTools(b, 200)
	payer, _ := c.AgentByAPIKey(configtest.PayerKey, callAt)
	call := listCall(c, payer)
	for b.Loop() {
		if got := c.ListableTools(context.Background(), call); len(got) != 180 {
			b.Fatalf("listed %d", len(got))
		}
	}
}
