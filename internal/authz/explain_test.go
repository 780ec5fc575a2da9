package authz_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
)

// explainPolicies put one policy per annotated block, so positions are
// easy to state: a policy starts at its first annotation.
const explainPolicies = `@id("team")
permit(principal in Team::"payments", action in Action::"call_tool", resource);

@id("cap")
forbid(principal, action == Action::"pay__pay", resource)
  when { context.arguments.amount >= 500 };
`

func TestExplain(t *testing.T) {
	e := authztest.Compile(t, authztest.WithPolicies(explainPolicies))
	ctx := context.Background()
	tests := []struct {
		name        string
		req         *authz.Request
		wantAllowed bool
		wantRefs    []authz.PolicyRef
		wantError   string
	}{
		{name: "permit", req: newRequest(authztest.Payer, authztest.PayAction, `{"amount": 1, "to": "acme"}`), wantAllowed: true,
			wantRefs: []authz.PolicyRef{{ID: "payments/team", Effect: "permit", File: authztest.PolicyFile, Line: 1, Column: 1}}},
		{name: "forbid", req: newRequest(authztest.Payer, authztest.PayAction, `{"amount": 900, "to": "acme"}`),
			wantRefs: []authz.PolicyRef{{ID: "payments/cap", Effect: "forbid", File: authztest.PolicyFile, Line: 4, Column: 1}}},
		{name: "default deny", req: newRequest(authztest.Marketer, authztest.PayAction, `{"amount": 1, "to": "acme"}`), wantRefs: []authz.PolicyRef{}},
		{name: "disabled agent is a deny with the reason", req: newRequest(authztest.Retired, authztest.BalanceAction, `{}`),
			wantRefs: []authz.PolicyRef{}, wantError: `agent "retired" is not an enabled agent`},
		{name: "empty action is the tool's own", req: func() *authz.Request {
			r := newRequest(authztest.Payer, "", `{}`)
			r.Resource = authz.ToolResource(authztest.BalanceAction)
			return r
		}(), wantAllowed: true, wantRefs: []authz.PolicyRef{{ID: "payments/team", Effect: "permit", File: authztest.PolicyFile, Line: 1, Column: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := e.Explain(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Decision.Allowed != tt.wantAllowed || !slices.Equal(ex.Policies, tt.wantRefs) || ex.Version != authztest.Version {
				t.Errorf("Explain = %+v, want allowed %v by %+v at version %d", ex, tt.wantAllowed, tt.wantRefs, authztest.Version)
			}
			if got := strings.Join(ex.Decision.Errors, "\n"); (tt.wantError == "") != (got == "") || !strings.Contains(got, tt.wantError) {
				t.Errorf("errors = %q, want %q", ex.Decision.Errors, tt.wantError)
			}
		})
	}
	if got := (authz.PolicyRef{ID: "payments/cap", File: "payments.cedar", Line: 4, Column: 1}).String(); got != "payments/cap (payments.cedar:4:1)" {
		t.Errorf("String() = %q", got)
	}
	if _, ok := e.Policy("payments/nope"); ok {
		t.Error("Policy found a policy that does not exist")
	}
}

// TestQuestionsAboutNothingAreErrors: Explain and WhoCan refuse names that
// do not exist, while Decide and Permissible deny them.
func TestQuestionsAboutNothingAreErrors(t *testing.T) {
	e := authztest.Compile(t, authztest.Snapshot())
	ctx := context.Background()
	tool := func(agent, action string, r authz.Resource) *authz.Request {
		req := newRequest(agent, action, `{}`)
		req.Resource = r
		return req
	}
	tests := []struct {
		name     string
		req      *authz.Request
		kind     error
		fragment string
		whoCan   bool // WhoCan refuses it too
	}{
		{name: "unknown agent", req: newRequest("nobody", authztest.BalanceAction, `{}`), kind: authz.ErrUnknownAgent, fragment: `no agent "nobody" in configuration version 42`},
		{name: "unknown tool", req: newRequest(authztest.Payer, "pay__steal", `{}`), kind: authz.ErrUnknownResource, fragment: `no tool "pay__steal"`, whoCan: true},
		{name: "unknown resource type", req: tool(authztest.Payer, "x", authz.Resource{Type: "Model", ID: "x"}), kind: authz.ErrUnknownResource, fragment: `resource type "Model"`, whoCan: true},
		{name: "no resource type", req: tool(authztest.Payer, "x", authz.Resource{ID: "x"}), kind: authz.ErrInvalidRequest, fragment: "no resource type", whoCan: true},
		{name: "action of another tool", req: tool(authztest.Payer, authztest.PayAction, authz.ToolResource(authztest.BalanceAction)),
			kind: authz.ErrInvalidRequest, fragment: `action "pay__pay" does not apply to tool "pay__balance"`, whoCan: true},
		{name: "user without a source", req: func() *authz.Request {
			r := newRequest(authztest.Payer, authztest.BalanceAction, `{}`)
			r.User = &authz.User{Name: "alice"}
			return r
		}(), kind: authz.ErrInvalidRequest, fragment: "a user needs an identity source and a name", whoCan: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Explain(ctx, tt.req)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.fragment) {
				t.Errorf("Explain: err = %v, want %v mentioning %q", err, tt.kind, tt.fragment)
			}
			if tt.whoCan {
				if _, err := e.WhoCan(ctx, tt.req); !errors.Is(err, tt.kind) {
					t.Errorf("WhoCan: err = %v, want %v", err, tt.kind)
				}
			}
			if d := e.Decide(ctx, tt.req); d.Allowed && tt.req.User == nil {
				t.Errorf("Decide allowed it: %+v", d)
			}
			if e.Permissible(ctx, tt.req) && tt.req.User == nil {
				t.Error("Permissible said yes")
			}
		})
	}
}

func TestWhoCanAndPermissible(t *testing.T) {
	ctx := context.Background()
	// Finance users let any agent read the balance; marketer is
	// forbidden everything in degraded mode.
	e := authztest.Compile(t, authztest.WithPolicies(authztest.Policies+`
permit(principal, action == Action::"pay__balance", resource) when { context has user && context.user in Group::"finance" };
forbid(principal == Agent::"marketer", action, resource) when { context.degraded };
`))
	finance := &authz.User{Source: "corp", Name: "alice", Groups: []string{"finance"}}
	tests := []struct {
		name     string
		action   string
		user     *authz.User
		degraded bool
		want     []string
	}{
		{name: "team rule; retired is disabled", action: authztest.PayAction, want: []string{"payer"}},
		{name: "balance without a user", action: authztest.BalanceAction, want: []string{"payer"}},
		{name: "balance for a finance user", action: authztest.BalanceAction, user: finance, want: []string{"marketer", "payer"}},
		{name: "balance for a finance user, degraded", action: authztest.BalanceAction, user: finance, degraded: true, want: []string{"payer"}},
		{name: "balance for another user", action: authztest.BalanceAction, user: &authz.User{Source: "corp", Name: "bob"}, want: []string{"payer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &authz.Request{User: tt.user, Action: tt.action, Resource: authz.ToolResource(tt.action), Context: authz.Context{Degraded: tt.degraded}}
			got, err := e.WhoCan(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("WhoCan = %v, want %v", got, tt.want)
			}
			// WhoCan is Permissible asked of every enabled agent.
			for _, agent := range []string{authztest.Payer, authztest.Marketer, authztest.Retired} {
				q := *req
				q.Agent = agent
				if p := e.Permissible(ctx, &q); p != slices.Contains(tt.want, agent) {
					t.Errorf("Permissible(%s) = %v, WhoCan %v", agent, p, got)
				}
			}
		})
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.WhoCan(canceled, &authz.Request{Resource: authz.ToolResource(authztest.PayAction)}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled WhoCan: err = %v", err)
	}
}

func TestContextDefaults(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := authz.Context{}.WithDefaults(now)
	if got.SourceIP != netip.MustParseAddr("127.0.0.1") || !got.Time.Equal(now) || got.Protocol != "mcp" || got.Degraded {
		t.Errorf("defaults = %+v", got)
	}
	given := authz.Context{Protocol: "a2a", Time: now.Add(time.Hour), SourceIP: newRequest("", "", "").Context.SourceIP, Degraded: true}
	if kept := given.WithDefaults(now); !reflect.DeepEqual(kept, given) {
		t.Errorf("WithDefaults changed given values: %+v, want %+v", kept, given)
	}
}
