package authz_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
)

func TestDecisionCache(t *testing.T) {
	ctx := context.Background()
	type step struct {
		args        string
		user        *authz.User
		findings    []string
		wantAllowed bool
		wantCached  int // entries after the call
	}
	tests := []struct {
		name     string
		policies string
		action   string
		steps    []step
	}{
		{
			name: "repeat call hits", policies: authztest.Policies, action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
			},
		},
		{
			name: "read argument values key the cache", policies: authztest.Policies, action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 900, "to": "bob"}`, wantAllowed: false, wantCached: 2},
				{args: `{"amount": 9e2, "to": "bob"}`, wantAllowed: false, wantCached: 2},  // the same Cedar value
				{args: `{"amount": 100, "to": "carol"}`, wantAllowed: true, wantCached: 2}, // "to" is not read
			},
		},
		{
			name: "arguments nobody reads do not key the cache",
			policies: `permit(principal in Team::"payments", action, resource);
forbid(principal, action, resource) when { context.degraded };`,
			action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 900, "to": "eve"}`, wantAllowed: true, wantCached: 1},
			},
		},
		{
			name: "conversion errors are never cached", policies: authztest.Policies, action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": "100", "to": "bob"}`, wantCached: 0},
				{args: `{"amount": 100, "to": 7}`, wantCached: 0},
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 100, "to": 7}`, wantCached: 1}, // amount is cached as allowed; "to" is still checked
			},
		},
		{
			name: "a policy reading the time disables caching",
			policies: authztest.Policies + `forbid(principal, action, resource) when { context.time.toTime() >= duration("18h") };
`,
			action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 0},
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 0},
			},
		},
		{
			name: "a time policy on another action leaves this one cached",
			policies: authztest.Policies + `forbid(principal, action == Action::"pay__balance", resource) when { context.time.toTime() >= duration("18h") };
`,
			action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
			},
		},
		{
			name: "the user keys the cache when read",
			policies: `permit(principal, action, resource) when { context has user && context.user in Group::"finance" };
`,
			action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 1, "to": "bob"}`, wantAllowed: false, wantCached: 1},
				{args: `{"amount": 1, "to": "bob"}`, user: &authz.User{Source: "corp-idp", Name: "ann", Groups: []string{"finance"}}, wantAllowed: true, wantCached: 2},
				{args: `{"amount": 1, "to": "bob"}`, user: &authz.User{Source: "corp-idp", Name: "ann"}, wantAllowed: false, wantCached: 3},
				{args: `{"amount": 1, "to": "bob"}`, user: &authz.User{Source: "corp-idp", Name: "ann", Groups: []string{"finance"}}, wantAllowed: true, wantCached: 3},
			},
		},
		{
			name: "findings key the cache when read",
			policies: authztest.Policies + `forbid(principal, action, resource) when { context.findings.contains("exfiltration") };
`,
			action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 1, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 1, "to": "bob"}`, findings: []string{"exfiltration", "exfiltration.url_payload"}, wantAllowed: false, wantCached: 2},
				{args: `{"amount": 1, "to": "bob"}`, findings: []string{"exfiltration.url_payload", "exfiltration"}, wantAllowed: false, wantCached: 2},
				{args: `{"amount": 1, "to": "bob"}`, findings: []string{"pii"}, wantAllowed: true, wantCached: 3},
			},
		},
		{
			name: "findings nobody reads do not key the cache", policies: authztest.Policies, action: authztest.PayAction,
			steps: []step{
				{args: `{"amount": 1, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 1, "to": "bob"}`, findings: []string{"pii"}, wantAllowed: true, wantCached: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := authztest.Compile(t, authztest.WithPolicies(tt.policies))
			for i, s := range tt.steps {
				req := newRequest(authztest.Payer, tt.action, s.args)
				req.User = s.user
				req.Context.Findings = s.findings
				got := e.Decide(ctx, req)
				if want := e.DecideUnindexed(req); got.Allowed != want.Allowed || !slices.Equal(got.Policies, want.Policies) || !slices.Equal(got.Errors, want.Errors) {
					t.Errorf("step %d: Authorize = %+v, full evaluation %+v", i, got, want)
				}
				if got.Allowed != s.wantAllowed {
					t.Errorf("step %d: Allowed = %v, want %v (%+v)", i, got.Allowed, s.wantAllowed, got)
				}
				if n := e.CachedDecisions(); n != s.wantCached {
					t.Errorf("step %d: %d cached decisions, want %d", i, n, s.wantCached)
				}
			}
		})
	}
}

func TestDecisionCacheIsPerCompiled(t *testing.T) {
	ctx := context.Background()
	old := authztest.Compile(t, authztest.Snapshot())
	req := newRequest(authztest.Payer, authztest.PayAction, `{"amount": 100, "to": "bob"}`)
	if d := old.Decide(ctx, req); !d.Allowed {
		t.Fatalf("old version denied: %+v", d)
	}
	next := authztest.WithPolicies(`forbid(principal, action, resource);`)
	next.Version++
	e := authztest.Compile(t, next)
	if n := e.CachedDecisions(); n != 0 {
		t.Fatalf("a new version starts with %d cached decisions", n)
	}
	if d := e.Decide(ctx, req); d.Allowed || !slices.Equal(d.Policies, []string{"payments/policy0"}) {
		t.Errorf("new version decided %+v, want denied by payments/policy0", d)
	}
	if n := old.CachedDecisions(); n != 1 {
		t.Errorf("old version has %d cached decisions, want 1", n)
	}
}

func TestDecisionCacheReturnsCopies(t *testing.T) {
	e := authztest.Compile(t, authztest.Snapshot())
	req := newRequest(authztest.Payer, authztest.PayAction, `{"amount": 100, "to": "bob"}`)
	first := e.Decide(context.Background(), req)
	first.Policies[0] = "tampered"
	if d := e.Decide(context.Background(), req); !slices.Equal(d.Policies, []string{"payments/policy0"}) {
		t.Errorf("cached decision changed by a caller: %+v", d)
	}
}

func TestDecisionCacheIsBounded(t *testing.T) {
	e := authztest.Compile(t, authztest.Snapshot(), authz.WithDecisionCache(4))
	for i := range 20 {
		e.Decide(context.Background(), newRequest(authztest.Payer, authztest.PayAction, fmt.Sprintf(`{"amount": %d, "to": "bob"}`, i+1)))
	}
	if n := e.CachedDecisions(); n != 4 {
		t.Errorf("%d cached decisions, want the bound 4", n)
	}
	off := authztest.Compile(t, authztest.Snapshot(), authz.WithDecisionCache(0))
	off.Decide(context.Background(), newRequest(authztest.Payer, authztest.PayAction, `{"amount": 1, "to": "bob"}`))
	if n := off.CachedDecisions(); n != 0 {
		t.Errorf("disabled cache holds %d decisions", n)
	}
}

// TestDecisionCacheConcurrent is for the race detector: many goroutines
// filling and reading a small cache agree with full evaluation.
func TestDecisionCacheConcurrent(t *testing.T) {
	e := authztest.Compile(t, authztest.Snapshot(), authz.WithDecisionCache(8))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				amount := (g*200+i)%40*25 + 1
				req := newRequest(authztest.Payer, authztest.PayAction, fmt.Sprintf(`{"amount": %d, "to": "bob"}`, amount))
				if got, want := e.Decide(context.Background(), req), amount < 500; got.Allowed != want {
					t.Errorf("amount %d: Allowed = %v, want %v", amount, got.Allowed, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
