package authz_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/cedarschema"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// learnedPolicies permit the payments team to pay only counterparties in
// the caller's learned set of "payees".
const learnedPolicies = `permit(principal in Team::"payments", action == Action::"pay__balance", resource);
@id("known-payee")
permit(principal, action == Action::"pay__pay", resource)
when { context.learned["payees"].contains(context.arguments.to) };
`

// learnedSnapshot is the fixture with learnedPolicies, the list "payees"
// (own value "globex") learning per scope, and the given learned sets.
func learnedSnapshot(scope configv1.LearningScope, sets ...*configv1.LearnedSet) *snapshotv1.Snapshot {
	s := authztest.WithPolicies(learnedPolicies)
	s.Agents = append(s.Agents, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "loner"}})
	s.ValueLists = []*configv1.ValueList{{Meta: &configv1.ResourceMeta{Name: "payees"}, Values: []string{"globex"}}}
	s.ListLearnings = []*configv1.ListLearning{{Meta: &configv1.ResourceMeta{Name: "payees"}, Tool: "pay__pay", Argument: "to", Scope: scope, Seeded: true, Sets: sets}}
	return s
}

// TestDecideLearnedLists: each agent reads its own scope's set together
// with the list's own values; nothing of another scope.
func TestDecideLearnedLists(t *testing.T) {
	sets := []*configv1.LearnedSet{
		{Scope: "agent:payer", Values: []string{"acme"}},
		{Scope: "agent:marketer", Values: []string{"hooli"}},
		{Scope: "team:payments", Values: []string{"initech"}},
		{Scope: "global", Values: []string{"umbrella"}},
	}
	tests := []struct {
		scope configv1.LearningScope
		agent string
		allow []string
	}{
		{configv1.LearningScope_LEARNING_SCOPE_AGENT, authztest.Payer, []string{"acme", "globex"}},
		{configv1.LearningScope_LEARNING_SCOPE_AGENT, authztest.Marketer, []string{"globex", "hooli"}},
		{configv1.LearningScope_LEARNING_SCOPE_TEAM, authztest.Payer, []string{"globex", "initech"}},
		{configv1.LearningScope_LEARNING_SCOPE_TEAM, "loner", []string{"globex"}},
		{configv1.LearningScope_LEARNING_SCOPE_GLOBAL, authztest.Marketer, []string{"globex", "umbrella"}},
	}
	for _, tt := range tests {
		t.Run(tt.scope.String()+"/"+tt.agent, func(t *testing.T) {
			e := authztest.Compile(t, learnedSnapshot(tt.scope, sets...))
			var allowed []string
			for _, to := range []string{"acme", "globex", "hooli", "initech", "umbrella", "mallory"} {
				// Twice: the second answer comes from the decision cache.
				for range 2 {
					d := e.Decide(context.Background(), newRequest(tt.agent, authztest.PayAction, `{"amount": 10, "to": "`+to+`"}`))
					if len(d.Errors) > 0 {
						t.Fatalf("pay %s: %v", to, d.Errors)
					}
					if d.Allowed && !slices.Contains(allowed, to) {
						allowed = append(allowed, to)
					}
				}
			}
			if !slices.Equal(allowed, tt.allow) {
				t.Fatalf("%s may pay %v, want %v", tt.agent, allowed, tt.allow)
			}
			// Listing knows the learned sets: the tool is listable for
			// whoever has a set (the list's own value is in every one).
			if !slices.Contains(e.Listable(context.Background(), listRequest(tt.agent), authz.ResourceTool), authztest.PayAction) {
				t.Fatalf("pay__pay not listable for %s", tt.agent)
			}
		})
	}
}

func TestCompileLearnedLists(t *testing.T) {
	t.Run("learning of a missing list", func(t *testing.T) {
		s := learnedSnapshot(configv1.LearningScope_LEARNING_SCOPE_AGENT)
		s.ValueLists = nil
		_, err := authz.Compile(s)
		if err == nil || !strings.Contains(err.Error(), `learned list "payees": value list "payees" does not exist`) {
			t.Fatalf("Compile = %v", err)
		}
	})
	t.Run("policy reading a list that does not learn", func(t *testing.T) {
		s := learnedSnapshot(configv1.LearningScope_LEARNING_SCOPE_AGENT)
		s.ListLearnings = nil
		_, err := authz.Compile(s)
		if err == nil || !strings.Contains(err.Error(), `value list "payees" does not learn`) {
			t.Fatalf("Compile = %v", err)
		}
	})
	t.Run("without learnings, no learned context", func(t *testing.T) {
		e := authztest.Compile(t, authztest.Snapshot())
		if d := e.Decide(context.Background(), newRequest(authztest.Payer, authztest.PayAction, `{"amount": 10, "to": "x"}`)); !d.Allowed {
			t.Fatalf("decision %+v", d)
		}
	})
}

// TestDecideLearnedListsOnRemoteAgents: remote-agent actions carry the
// caller's learned sets too, so a policy over every action that reads
// context.learned validates, and a remote-agent decision (and the skills
// a card shows) can depend on them.
func TestDecideLearnedListsOnRemoteAgents(t *testing.T) {
	s := learnedSnapshot(configv1.LearningScope_LEARNING_SCOPE_AGENT,
		&configv1.LearnedSet{Scope: "agent:payer", Values: []string{"search"}})
	s = authztest.AddRemoteAgents(s)
	s.PolicySets[0].Source += `@id("learned-skills")
permit(principal, action == Action::"a2a:send_message", resource == RemoteAgent::"travel")
  when { context has skill && context.learned["payees"].contains(context.skill) };
@id("never-mallory")
forbid(principal, action, resource) when { context.learned["payees"].contains("mallory") };
`
	e := authztest.Compile(t, s)
	tests := []struct {
		agent, skill string
		allowed      bool
	}{
		{authztest.Payer, "search", true},
		{authztest.Payer, "book", false},
		{authztest.Marketer, "search", false},
	}
	for _, tt := range tests {
		for range 2 { // the second answer may come from the cache
			d := e.Decide(context.Background(), a2aRequest(tt.agent, cedarschema.ActionA2ASendMessage, authztest.Travel, tt.skill, 10))
			if len(d.Errors) > 0 || d.Allowed != tt.allowed {
				t.Fatalf("%s sends to skill %s: allowed %v (%v), want %v", tt.agent, tt.skill, d.Allowed, d.Errors, tt.allowed)
			}
		}
	}
	if got := e.PermittedSkills(context.Background(), a2aRequest(authztest.Payer, "", "", "", 0), authztest.Travel); !slices.Equal(got, []string{"search"}) {
		t.Fatalf("payer is shown skills %v, want [search]", got)
	}
	if got := e.PermittedSkills(context.Background(), a2aRequest(authztest.Marketer, "", "", "", 0), authztest.Travel); len(got) != 0 {
		t.Fatalf("marketer is shown skills %v, want none", got)
	}
}

// TestDecideLearnedListsOnModels: a model call carries the caller's
// learned sets too (the request validates while a list learns), and a
// model policy can read them.
func TestDecideLearnedListsOnModels(t *testing.T) {
	s := learnedSnapshot(configv1.LearningScope_LEARNING_SCOPE_AGENT,
		&configv1.LearnedSet{Scope: "agent:payer", Values: []string{"acme"}})
	s.Upstreams = modelSnapshot("").Upstreams
	s.PolicySets[0].Source += `@id("learned-model")
permit(principal, action == Action::"llm:complete", resource == Model::"openai/gpt-4o")
  when { context.learned["payees"].contains("acme") };
`
	e := authztest.Compile(t, s)
	for agent, allowed := range map[string]bool{authztest.Payer: true, authztest.Marketer: false} {
		d := e.Decide(context.Background(), modelRequest(agent, "openai/gpt-4o", authz.ModelContext{MaxTokens: 10}))
		if len(d.Errors) > 0 || d.Allowed != allowed {
			t.Fatalf("%s calls the model: allowed %v (%v), want %v", agent, d.Allowed, d.Errors, allowed)
		}
		listed := slices.Contains(e.Listable(context.Background(), listRequest(agent), authz.ResourceModel), "openai/gpt-4o")
		if listed != allowed {
			t.Fatalf("the model is listed for %s: %v, want %v", agent, listed, allowed)
		}
	}
}
