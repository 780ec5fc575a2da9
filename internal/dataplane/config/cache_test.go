package config_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// withPolicies is the fixture with its policy set's source replaced.
func withPolicies(src string) *snapshotv1.Snapshot {
	s := configtest.Snapshot()
	s.PolicySets[0].Source = src
	return s
}

func TestDecisionCache(t *testing.T) {
	ctx := context.Background()
	type step struct {
		args        string
		user        *pipeline.User
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
			name: "repeat call hits", policies: configtest.Policies, action: configtest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
			},
		},
		{
			name: "read argument values key the cache", policies: configtest.Policies, action: configtest.PayAction,
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
			action: configtest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 900, "to": "eve"}`, wantAllowed: true, wantCached: 1},
			},
		},
		{
			name: "conversion errors are never cached", policies: configtest.Policies, action: configtest.PayAction,
			steps: []step{
				{args: `{"amount": "100", "to": "bob"}`, wantCached: 0},
				{args: `{"amount": 100, "to": 7}`, wantCached: 0},
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
				{args: `{"amount": 100, "to": 7}`, wantCached: 1}, // amount is cached as allowed; "to" is still checked
			},
		},
		{
			name: "a policy reading the time disables caching",
			policies: configtest.Policies + `forbid(principal, action, resource) when { context.time.toTime() >= duration("18h") };
`,
			action: configtest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 0},
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 0},
			},
		},
		{
			name: "a time policy on another action leaves this one cached",
			policies: configtest.Policies + `forbid(principal, action == Action::"pay__balance", resource) when { context.time.toTime() >= duration("18h") };
`,
			action: configtest.PayAction,
			steps: []step{
				{args: `{"amount": 100, "to": "bob"}`, wantAllowed: true, wantCached: 1},
			},
		},
		{
			name: "the user keys the cache when read",
			policies: `permit(principal, action, resource) when { context has user && context.user in Group::"finance" };
`,
			action: configtest.PayAction,
			steps: []step{
				{args: `{"amount": 1, "to": "bob"}`, wantAllowed: false, wantCached: 1},
				{args: `{"amount": 1, "to": "bob"}`, user: &pipeline.User{Source: configtest.JWTSource, Name: "ann", Groups: []string{"finance"}}, wantAllowed: true, wantCached: 2},
				{args: `{"amount": 1, "to": "bob"}`, user: &pipeline.User{Source: configtest.JWTSource, Name: "ann"}, wantAllowed: false, wantCached: 3},
				{args: `{"amount": 1, "to": "bob"}`, user: &pipeline.User{Source: configtest.JWTSource, Name: "ann", Groups: []string{"finance"}}, wantAllowed: true, wantCached: 3},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configtest.Compile(t, withPolicies(tt.policies))
			payer := mustAgent(t, c, configtest.PayerKey)
			for i, s := range tt.steps {
				call := newCall(c, payer, tt.action, s.args)
				call.User = s.user
				got := c.Authorize(ctx, call)
				if want := c.AuthorizeUnindexed(call); got.Allowed != want.Allowed || !slices.Equal(got.Policies, want.Policies) || !slices.Equal(got.Errors, want.Errors) {
					t.Errorf("step %d: Authorize = %+v, full evaluation %+v", i, got, want)
				}
				if got.Allowed != s.wantAllowed {
					t.Errorf("step %d: Allowed = %v, want %v (%+v)", i, got.Allowed, s.wantAllowed, got)
				}
				if n := c.CachedDecisions(); n != s.wantCached {
					t.Errorf("step %d: %d cached decisions, want %d", i, n, s.wantCached)
				}
			}
		})
	}
}

func TestDecisionCacheIsPerCompiled(t *testing.T) {
	ctx := context.Background()
	old := configtest.Compile(t, configtest.Snapshot())
	call := newCall(old, mustAgent(t, old, configtest.PayerKey), configtest.PayAction, `{"amount": 100, "to": "bob"}`)
	if d := old.Authorize(ctx, call); !d.Allowed {
		t.Fatalf("old version denied: %+v", d)
	}
	next := withPolicies(`forbid(principal, action, resource);`)
	next.Version++
	c := configtest.Compile(t, next)
	if n := c.CachedDecisions(); n != 0 {
		t.Fatalf("a new version starts with %d cached decisions", n)
	}
	if d := c.Authorize(ctx, call); d.Allowed || !slices.Equal(d.Policies, []string{"payments/policy0"}) {
		t.Errorf("new version decided %+v, want denied by payments/policy0", d)
	}
	if n := old.CachedDecisions(); n != 1 {
		t.Errorf("old version has %d cached decisions, want 1", n)
	}
}

func TestDecisionCacheReturnsCopies(t *testing.T) {
	c := configtest.Compile(t, configtest.Snapshot())
	call := newCall(c, mustAgent(t, c, configtest.PayerKey), configtest.PayAction, `{"amount": 100, "to": "bob"}`)
	first := c.Authorize(context.Background(), call)
	first.Policies[0] = "tampered"
	if d := c.Authorize(context.Background(), call); !slices.Equal(d.Policies, []string{"payments/policy0"}) {
		t.Errorf("cached decision changed by a caller: %+v", d)
	}
}

func TestDecisionCacheIsBounded(t *testing.T) {
	c, err := config.Compile(configtest.Marshal(t, configtest.Snapshot()), config.WithDecisionCache(4))
	if err != nil {
		t.Fatal(err)
	}
	payer := mustAgent(t, c, configtest.PayerKey)
	for i := range 20 {
		c.Authorize(context.Background(), newCall(c, payer, configtest.PayAction, fmt.Sprintf(`{"amount": %d, "to": "bob"}`, i+1)))
	}
	if n := c.CachedDecisions(); n != 4 {
		t.Errorf("%d cached decisions, want the bound 4", n)
	}
	off, err := config.Compile(configtest.Marshal(t, configtest.Snapshot()), config.WithDecisionCache(0))
	if err != nil {
		t.Fatal(err)
	}
	off.Authorize(context.Background(), newCall(off, payer, configtest.PayAction, `{"amount": 1, "to": "bob"}`))
	if n := off.CachedDecisions(); n != 0 {
		t.Errorf("disabled cache holds %d decisions", n)
	}
}

// TestDecisionCacheConcurrent is for the race detector: many goroutines
// filling and reading a small cache agree with full evaluation.
func TestDecisionCacheConcurrent(t *testing.T) {
	c, err := config.Compile(configtest.Marshal(t, configtest.Snapshot()), config.WithDecisionCache(8))
	if err != nil {
		t.Fatal(err)
	}
	payer := mustAgent(t, c, configtest.PayerKey)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				amount := (g*200+i)%40*25 + 1
				call := newCall(c, payer, configtest.PayAction, fmt.Sprintf(`{"amount": %d, "to": "bob"}`, amount))
				if got, want := c.Authorize(context.Background(), call), amount < 500; got.Allowed != want {
					t.Errorf("amount %d: Allowed = %v, want %v", amount, got.Allowed, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
