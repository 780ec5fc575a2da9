package cedarschema_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

func TestLearnedRefs(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"none", `permit(principal, action, resource) when { context.arguments.amount < 5 };`, nil},
		{"dot and brackets", `permit(principal, action, resource) when { context.learned.payees.contains("a") || context.learned["pay-ees"].contains("b") };`, []string{"pay-ees", "payees"}},
		{"has", `permit(principal, action, resource) when { context.learned has payees };`, []string{"payees"}},
		{"not under context", `permit(principal, action, resource) when { principal.learned.x == 1 };`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := cedar.NewPolicyListFromBytes("t.cedar", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := cedarschema.LearnedRefs((*ast.Policy)(ps[0].AST())); !slices.Equal(got, tt.want) {
				t.Fatalf("LearnedRefs = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLearnedContext: context.learned exists exactly while lists learn,
// with one Set<String> per list, and a policy naming a list that does not
// learn is refused with what to do.
func TestLearnedContext(t *testing.T) {
	const src = `permit(principal, action in Action::"call_tool", resource) when { context.learned["pay-ees"].contains("acme") };`
	without, err := cedarschema.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(without.Cedar()), "learned") {
		t.Fatalf("schema without learned lists declares learned:\n%s", without.Cedar())
	}
	with, err := cedarschema.Generate(nil, cedarschema.WithLearned([]string{"pay-ees", "other"}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(with.Learned(), []string{"other", "pay-ees"}) || !strings.Contains(string(with.Cedar()), `"pay-ees": Set<String>`) {
		t.Fatalf("learned %v, schema\n%s", with.Learned(), with.Cedar())
	}
	if _, err := with.ParsePolicies("p", "p.cedar", []byte(src)); err != nil {
		t.Fatalf("a policy reading a learned list is refused: %v", err)
	}
	// Every action's context carries the learned sets — tools', remote
	// agents' and models' — so a policy over every action reading them
	// validates.
	const everyAction = `forbid(principal, action, resource) when { context.learned["pay-ees"].contains("mallory") };`
	if _, err := with.ParsePolicies("p", "p.cedar", []byte(everyAction)); err != nil {
		t.Fatalf("a policy over every action reading a learned list is refused: %v", err)
	}
	for _, s := range []*cedarschema.Schema{without} {
		_, err := s.ParsePolicies("p", "p.cedar", []byte(src))
		if err == nil || !strings.Contains(err.Error(), `value list "pay-ees" does not learn`) || !strings.Contains(err.Error(), "gwctl valuelist learn pay-ees") {
			t.Fatalf("ParsePolicies = %v", err)
		}
	}
	if _, err := cedarschema.Generate(nil, cedarschema.WithLearned([]string{"a", "a"})); err == nil {
		t.Fatal("a list learned twice was accepted")
	}
}
