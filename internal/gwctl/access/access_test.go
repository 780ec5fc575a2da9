package access_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/gwctl/access"
)

func newEvaluator(t *testing.T, files []access.PolicyFile, only bool) *access.Evaluator {
	t.Helper()
	ev, err := access.New(authztest.Snapshot(), files, only)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestCheckExplainsTheDecision(t *testing.T) {
	ev := newEvaluator(t, nil, false)
	ctx := context.Background()
	tests := []struct {
		name        string
		q           access.Question
		wantAllowed bool
		wantPolicy  string // "id@line", "" for none
		wantError   string
		wantInvalid bool
	}{
		{name: "permitted by the team rule",
			q:           access.Question{Agent: "payer", Tool: authztest.PayAction, Arguments: []byte(`{"amount": 100, "to": "acme"}`)},
			wantAllowed: true, wantPolicy: "payments/policy0@1"},
		{name: "forbidden by the amount limit",
			q:          access.Question{Agent: "payer", Tool: authztest.PayAction, Arguments: []byte(`{"amount": 600, "to": "acme"}`)},
			wantPolicy: "payments/policy1@2"},
		{name: "other team: default deny",
			q: access.Question{Agent: "marketer", Tool: authztest.PayAction, Arguments: []byte(`{"amount": 1, "to": "acme"}`)}},
		{name: "disabled agent",
			q:         access.Question{Agent: "retired", Tool: authztest.BalanceAction},
			wantError: "not an enabled agent"},
		{name: "arguments of the wrong type",
			q:           access.Question{Agent: "payer", Tool: authztest.PayAction, Arguments: []byte(`{"amount": "lots", "to": "acme"}`)},
			wantInvalid: true, wantError: "amount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, err := ev.Check(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if ans.Allowed != tt.wantAllowed {
				t.Fatalf("allowed = %v, want %v (%+v)", ans.Allowed, tt.wantAllowed, ans)
			}
			if ans.Version != authztest.Version {
				t.Errorf("version = %d, want %d", ans.Version, authztest.Version)
			}
			var got string
			if len(ans.Policies) > 1 {
				t.Fatalf("policies = %v, want at most one", ans.Policies)
			}
			if len(ans.Policies) == 1 {
				p := ans.Policies[0]
				got = p.ID + "@" + string(rune('0'+p.Line))
				if p.File != authztest.PolicyFile || p.Column != 1 {
					t.Errorf("position = %s:%d:%d, want %s:_:1", p.File, p.Line, p.Column, authztest.PolicyFile)
				}
				if !strings.Contains(p.String(), authztest.PolicyFile+":") {
					t.Errorf("String() = %q, want the file position", p.String())
				}
			}
			if got != tt.wantPolicy {
				t.Errorf("policy = %q, want %q", got, tt.wantPolicy)
			}
			if tt.wantError != "" && !strings.Contains(strings.Join(ans.Errors, "\n"), tt.wantError) {
				t.Errorf("errors = %v, want one containing %q", ans.Errors, tt.wantError)
			}
			if tt.wantError == "" && len(ans.Errors) > 0 {
				t.Errorf("errors = %v, want none", ans.Errors)
			}
			if ans.InvalidArguments != tt.wantInvalid {
				t.Errorf("invalid arguments = %v, want %v", ans.InvalidArguments, tt.wantInvalid)
			}
		})
	}
}

func TestCheckRefusesUnknownNames(t *testing.T) {
	ev := newEvaluator(t, nil, false)
	ctx := context.Background()
	if _, err := ev.Check(ctx, access.Question{Agent: "nobody", Tool: authztest.PayAction}); err == nil || !strings.Contains(err.Error(), `no agent "nobody"`) {
		t.Errorf("unknown agent: err = %v", err)
	}
	if _, err := ev.Check(ctx, access.Question{Agent: "payer", Tool: "pay__nothing"}); err == nil || !strings.Contains(err.Error(), `no tool "pay__nothing"`) {
		t.Errorf("unknown tool: err = %v", err)
	}
	if _, err := ev.WhoCan(ctx, access.WhoCanQuestion{Tool: "pay__nothing"}); err == nil {
		t.Error("who-can of an unknown tool: no error")
	}
	if _, err := ev.Check(ctx, access.Question{Agent: "payer", Tool: authztest.PayAction, User: &access.User{Name: "alice"}}); err == nil {
		t.Error("user without a source: no error")
	}
}

func TestWhoCan(t *testing.T) {
	ctx := context.Background()
	ev := newEvaluator(t, nil, false)
	ans, err := ev.WhoCan(ctx, access.WhoCanQuestion{Tool: authztest.PayAction})
	if err != nil {
		t.Fatal(err)
	}
	got := ans.Agents
	// marketer's team is not permitted; retired is disabled.
	if want := []string{"payer"}; !slices.Equal(got, want) || ans.Version != authztest.Version || ans.Tool != authztest.PayAction {
		t.Errorf("who-can %s = %v, want %v", authztest.PayAction, got, want)
	}

	// A candidate set that lets finance users act through any agent on
	// the read-only tool, and forbids marketer everything.
	ev = newEvaluator(t, []access.PolicyFile{{Name: "extra", Filename: "extra.cedar", Source: `
permit(principal, action == Action::"pay__balance", resource) when { context has user && context.user in Group::"finance" };
forbid(principal == Agent::"marketer", action, resource);
`}}, false)
	finance := &access.User{Source: "corp", Name: "alice", Groups: []string{"finance"}}
	other := &access.User{Source: "corp", Name: "bob", Groups: []string{"sales"}}
	for _, c := range []struct {
		user *access.User
		want []string
	}{
		{nil, []string{"payer"}},
		{other, []string{"payer"}},
		{finance, []string{"payer"}}, // marketer is forbidden outright
	} {
		ans, err := ev.WhoCan(ctx, access.WhoCanQuestion{Tool: authztest.BalanceAction, User: c.user})
		if err != nil {
			t.Fatal(err)
		}
		if got := ans.Agents; !slices.Equal(got, c.want) {
			t.Errorf("who-can %s as %+v = %v, want %v", authztest.BalanceAction, c.user, got, c.want)
		}
	}

	// Without the forbid, the finance user opens the tool to marketer too.
	ev = newEvaluator(t, []access.PolicyFile{{Name: "extra", Filename: "extra.cedar", Source: `
permit(principal, action == Action::"pay__balance", resource) when { context has user && context.user in Group::"finance" };
`}}, false)
	ans, err = ev.WhoCan(ctx, access.WhoCanQuestion{Tool: authztest.BalanceAction, User: finance})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ans.Agents, []string{"marketer", "payer"}; !slices.Equal(got, want) {
		t.Errorf("who-can with a finance user = %v, want %v", got, want)
	}
	check, err := ev.Check(ctx, access.Question{Agent: "marketer", Tool: authztest.BalanceAction, User: finance})
	if err != nil {
		t.Fatal(err)
	}
	if !check.Allowed || len(check.Policies) != 1 || check.Policies[0].ID != "extra/policy0" {
		t.Errorf("check as finance user = %+v, want allowed by extra/policy0", check)
	}
}

func TestPolicyFilesReplaceAndOnly(t *testing.T) {
	ctx := context.Background()
	// Replacing the fixture's set with a narrower one.
	ev := newEvaluator(t, []access.PolicyFile{{Name: authztest.PolicySet, Filename: "narrow.cedar",
		Source: `permit(principal == Agent::"marketer", action == Action::"pay__balance", resource);`}}, false)
	ans, err := ev.WhoCan(ctx, access.WhoCanQuestion{Tool: authztest.PayAction})
	if err != nil {
		t.Fatal(err)
	}
	if got := ans.Agents; len(got) != 0 {
		t.Errorf("after replacing the set, who-can pay = %v, want nobody", got)
	}
	// --only drops the configuration's sets even under another name.
	ev = newEvaluator(t, []access.PolicyFile{{Name: "other", Filename: "other.cedar",
		Source: `permit(principal == Agent::"marketer", action, resource);`}}, true)
	ans, err = ev.WhoCan(ctx, access.WhoCanQuestion{Tool: authztest.PayAction})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ans.Agents, []string{"marketer"}; !slices.Equal(got, want) {
		t.Errorf("only: who-can = %v, want %v", got, want)
	}
}

func TestInvalidPolicyFileIsRefusedWithPosition(t *testing.T) {
	_, err := access.New(authztest.Snapshot(), []access.PolicyFile{{Name: "bad", Filename: "bad.cedar",
		Source: "permit(principal, action, resource) when { context.arguments.nope > 1 };"}}, false)
	if err == nil {
		t.Fatal("an invalid policy compiled")
	}
	if !strings.Contains(err.Error(), "bad.cedar:1:") {
		t.Errorf("err = %v, want a bad.cedar:1: position", err)
	}
}
