package authz_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestListable(t *testing.T) {
	finance := &authz.User{Source: "people", Name: "alice", Groups: []string{"finance"}}
	sales := &authz.User{Source: "people", Name: "bob", Groups: []string{"sales"}}
	both := []string{authztest.BalanceAction, authztest.PayAction}
	tests := []struct {
		name     string
		policies string
		agent    string
		user     *authz.User
		edit     func(*authz.Request)
		want     []string
	}{
		{name: "team allowlist permits", policies: `permit(principal in Team::"payments", action, resource);`,
			agent: authztest.Payer, want: both},
		{name: "other team not listed", policies: `permit(principal in Team::"payments", action, resource);`,
			agent: authztest.Marketer, want: []string{}},
		{name: "no policies", policies: ``, agent: authztest.Payer, want: []string{}},
		{name: "argument-dependent forbid keeps the tool", policies: authztest.Policies,
			agent: authztest.Payer, want: both},
		{name: "argument-dependent forbid without has", policies: `permit(principal, action, resource);
forbid(principal, action == Action::"pay__pay", resource) when { context.arguments.amount >= 500 };`,
			agent: authztest.Payer, want: both},
		{name: "argument-dependent permit lists the tool", policies: `permit(principal in Team::"payments", action == Action::"pay__pay", resource) when { context.arguments.amount < 100 };`,
			agent: authztest.Payer, want: []string{authztest.PayAction}},
		{name: "argument-dependent permit still needs its known part", policies: `permit(principal, action == Action::"pay__pay", resource) when { principal in Team::"payments" && context.arguments.amount < 100 };`,
			agent: authztest.Marketer, want: []string{}},
		{name: "unconditional forbid hides", policies: `permit(principal, action, resource);
forbid(principal, action == Action::"pay__pay", resource);`,
			agent: authztest.Payer, want: []string{authztest.BalanceAction}},
		{name: "forbid on known context hides", policies: `permit(principal, action, resource);
forbid(principal, action == Action::"pay__pay", resource) when { principal in Team::"payments" && context.protocol == "mcp" };`,
			agent: authztest.Payer, want: []string{authztest.BalanceAction}},
		{name: "forbid on another team keeps", policies: `permit(principal, action, resource);
forbid(principal in Team::"marketing", action == Action::"pay__pay", resource);`,
			agent: authztest.Payer, want: both},
		{name: "time-dependent permit lists", policies: `permit(principal, action, resource) when { context.time.toTime() >= duration("20h") };`,
			agent: authztest.Payer, want: both},
		{name: "source outside the range not listed", policies: `permit(principal, action, resource) when { context.sourceIp.isInRange(ip("192.168.0.0/16")) };`,
			agent: authztest.Payer, want: []string{}},
		{name: "source inside the range listed", policies: `permit(principal, action, resource) when { context.sourceIp.isInRange(ip("10.0.0.0/8")) };`,
			agent: authztest.Payer, want: both},
		{name: "no source address leaves it unknown", policies: `permit(principal, action, resource) when { context.sourceIp.isInRange(ip("192.168.0.0/16")) };`,
			agent: authztest.Payer, edit: func(r *authz.Request) { r.Context.SourceIP = netip.Addr{} }, want: both},
		{name: "read-only resource attribute", policies: `permit(principal, action, resource) when { resource.readOnly };`,
			agent: authztest.Payer, want: []string{authztest.BalanceAction}},
		{name: "forbid when degraded hides in degraded mode", policies: `permit(principal, action, resource);
forbid(principal, action, resource) when { context.degraded && !resource.readOnly };`,
			agent: authztest.Payer, edit: func(r *authz.Request) { r.Context.Degraded = true },
			want: []string{authztest.BalanceAction}},
		{name: "a forbid on findings keeps the tool (findings depend on arguments)", policies: `permit(principal, action, resource);
forbid(principal, action == Action::"pay__pay", resource) when { context.findings.contains("exfiltration") };`,
			agent: authztest.Payer, want: both},
		{name: "a permit only without findings lists the tool", policies: `permit(principal, action, resource) when { context.findings.isEmpty() };`,
			agent: authztest.Payer, want: both},
		{name: "finance group policy without user", policies: financeListPolicy, agent: authztest.Marketer, want: []string{}},
		{name: "finance group policy with finance user", policies: financeListPolicy, agent: authztest.Marketer, user: finance,
			want: []string{authztest.PayAction}},
		{name: "finance group policy with other user", policies: financeListPolicy, agent: authztest.Marketer, user: sales,
			want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := authztest.Snapshot()
			s.PolicySets[0].Source = tt.policies
			e := authztest.Compile(t, s)
			req := listRequest(tt.agent)
			req.User = tt.user
			if tt.edit != nil {
				tt.edit(req)
			}
			if got := listed(e.Listable(context.Background(), req, authz.ResourceTool)); !slices.Equal(got, tt.want) {
				t.Errorf("Listable() = %q, want %q", got, tt.want)
			}
		})
	}
}

const financeListPolicy = `permit(principal, action == Action::"pay__pay", resource) when { context has user && context.user in Group::"finance" };`

func TestListableWithoutEnabledAgent(t *testing.T) {
	s := authztest.Snapshot()
	s.PolicySets[0].Source = `permit(principal, action, resource);`
	e := authztest.Compile(t, s)
	for name, agent := range map[string]string{"no agent": "", "disabled agent": authztest.Retired, "unknown agent": "nobody"} {
		if got := e.Listable(context.Background(), listRequest(agent), authz.ResourceTool); len(got) != 0 {
			t.Errorf("%s: Listable() = %q", name, got)
		}
	}
	if got := e.Listable(context.Background(), listRequest(authztest.Payer), "Model"); len(got) != 0 {
		t.Errorf("a resource type the gateway does not serve: Listable() = %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := e.Listable(ctx, listRequest(authztest.Payer), authz.ResourceTool); len(got) != 0 {
		t.Errorf("canceled: Listable() = %q", got)
	}
}

// manyTools is a snapshot with n tools on upstream "pay" and n policies,
// each permitting the payments team one tool unless an argument is too
// large, plus one forbid per ten tools that applies unconditionally.
func manyTools(tb testing.TB, n int) *authz.Engine {
	tb.Helper()
	s := authztest.Snapshot()
	s.ToolPins = s.ToolPins[:0]
	var src strings.Builder
	for i := range n {
		name := fmt.Sprintf("t%03d", i)
		s.ToolPins = append(s.ToolPins, &configv1.ToolPin{
			Meta:     &configv1.ResourceMeta{Name: "pay/" + name},
			Upstream: authztest.Upstream,
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
	return authztest.Compile(tb, s)
}

func TestListableManyTools(t *testing.T) {
	e := manyTools(t, 200)
	start := time.Now()
	got := e.Listable(context.Background(), listRequest(authztest.Payer), authz.ResourceTool)
	t.Logf("Listable over 200 tools × 200 policies: %v", time.Since(start))
	if len(got) != 180 {
		t.Errorf("listed %d tools, want 180", len(got))
	}
	for _, action := range got {
		if strings.HasSuffix(action, "0") {
			t.Errorf("listed forbidden %s", action)
		}
	}
	if got := e.Listable(context.Background(), listRequest(authztest.Marketer), authz.ResourceTool); len(got) != 0 {
		t.Errorf("marketer: listed %d tools, want 0", len(got))
	}
}

func BenchmarkListable200x200(b *testing.B) {
	e := manyTools(b, 200)
	req := listRequest(authztest.Payer)
	for b.Loop() {
		if got := e.Listable(context.Background(), req, authz.ResourceTool); len(got) != 180 {
			b.Fatalf("listed %d", len(got))
		}
	}
}
