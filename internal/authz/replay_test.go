package authz_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
)

func TestReads(t *testing.T) {
	tests := []struct {
		name   string
		source string
		agent  string
		action string
		want   authz.ContextUse
	}{
		{name: "the fixture's forbid reads the amount", source: authztest.Policies, agent: authztest.Payer, action: authztest.PayAction,
			want: authz.ContextUse{Arguments: [][]string{{"amount"}}}},
		{name: "policies of another action read nothing of this one", source: authztest.Policies, agent: authztest.Payer, action: authztest.BalanceAction},
		{name: "a path below an attribute, and one read by has", source: `permit(principal, action == Action::"pay__pay", resource) when { context.arguments has memo && context.arguments.to == "x" };`,
			agent: authztest.Payer, action: authztest.PayAction, want: authz.ContextUse{Arguments: [][]string{{"memo"}, {"to"}}}},
		{name: "the arguments whole", source: `permit(principal, action == Action::"pay__pay", resource) when { context.arguments == {"amount": 1, "to": "x"} };`,
			agent: authztest.Payer, action: authztest.PayAction, want: authz.ContextUse{AllArguments: true}},
		{name: "the user", source: `permit(principal, action == Action::"pay__pay", resource) when { context has user };`,
			agent: authztest.Payer, action: authztest.PayAction, want: authz.ContextUse{User: true}},
		{name: "the time keeps the paths", source: `permit(principal, action == Action::"pay__pay", resource) when { context.time > datetime("2020-01-01") && context.arguments.amount > 1 };`,
			agent: authztest.Payer, action: authztest.PayAction, want: authz.ContextUse{Arguments: [][]string{{"amount"}}}},
		{name: "a policy of another agent", source: `permit(principal == Agent::"marketer", action == Action::"pay__pay", resource) when { context.arguments.amount > 1 };`,
			agent: authztest.Payer, action: authztest.PayAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := authztest.Compile(t, authztest.WithPolicies(tt.source))
			got := e.Reads(tt.agent, tt.action)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("Reads = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMatched(t *testing.T) {
	const src = `@id("team") permit(principal in Team::"payments", action in Action::"call_tool", resource);
@id("small") permit(principal, action == Action::"pay__pay", resource) when { context.arguments.amount < 10 };
@id("big") forbid(principal, action == Action::"pay__pay", resource) when { context.arguments.amount >= 500 };
@id("never") permit(principal, action == Action::"pay__pay", resource) when { context.arguments.to == "nobody" };
`
	e := authztest.Compile(t, authztest.WithPolicies(src))
	tests := []struct {
		name    string
		req     *authz.Request
		allowed bool
		matched []string
	}{
		{name: "two permits", req: newRequest(authztest.Payer, authztest.PayAction, `{"amount":5,"to":"x"}`), allowed: true,
			matched: []string{"payments/small", "payments/team"}},
		{name: "a forbid over a permit", req: newRequest(authztest.Payer, authztest.PayAction, `{"amount":700,"to":"x"}`),
			matched: []string{"payments/big", "payments/team"}},
		{name: "default deny matches nothing", req: newRequest(authztest.Marketer, authztest.PayAction, `{"amount":50,"to":"x"}`)},
		{name: "a request that cannot be built", req: newRequest(authztest.Payer, authztest.PayAction, `{"amount":"lots"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, matched := e.Matched(context.Background(), tt.req)
			if d.Allowed != tt.allowed || !slices.Equal(matched, tt.matched) {
				t.Fatalf("Matched = %v, %v; want allowed %t, %v", d.Allowed, matched, tt.allowed, tt.matched)
			}
		})
	}
	if ids := e.PolicyIDs(); !slices.Equal(ids, []string{"payments/big", "payments/never", "payments/small", "payments/team"}) {
		t.Fatalf("PolicyIDs = %v", ids)
	}
}

// TestPlaceholders: values a recorded call no longer holds are replaced by
// placeholders of their schema types, so a call whose policies do not read
// them decides; without placeholders it is refused before any policy.
func TestPlaceholders(t *testing.T) {
	e := authztest.Compile(t, authztest.WithPolicies(`permit(principal, action == Action::"pay__pay", resource) when { context.arguments.to == "acme" };`))
	tests := []struct {
		name         string
		args         string
		placeholders [][]string
		allowed      bool
		undecided    bool
	}{
		{name: "a redacted integer is a placeholder", args: `{"amount":"[REDACTED]","to":"acme"}`, placeholders: [][]string{{"amount"}}, allowed: true},
		{name: "without the placeholder the call does not convert", args: `{"amount":"[REDACTED]","to":"acme"}`, undecided: true},
		{name: "the whole arguments", args: ``, placeholders: [][]string{{}}},
		{name: "a missing required argument", args: `{"to":"acme"}`, placeholders: [][]string{{"amount"}}, allowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(authztest.Payer, authztest.PayAction, tt.args)
			req.Placeholders = tt.placeholders
			d := e.Decide(context.Background(), req)
			if d.Allowed != tt.allowed || d.Undecided != tt.undecided {
				t.Fatalf("Decide = %+v; want allowed %t, undecided %t", d, tt.allowed, tt.undecided)
			}
		})
	}
}
