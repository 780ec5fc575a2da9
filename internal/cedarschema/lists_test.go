package cedarschema_test

import (
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

func TestListRefs(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "none",
			src:  `permit(principal, action == Action::"pay__send", resource) when { context.arguments.amount < 500 };`,
		},
		{
			name: "condition",
			src:  `permit(principal, action == Action::"pay__send", resource) when { List::"payees".values.contains(context.arguments.currency) };`,
			want: []string{"payees"},
		},
		{
			name: "unless and when, repeated and sorted",
			src: `forbid(principal, action == Action::"pay__send", resource)
when { List::"zeta".values.contains(context.arguments.currency) }
unless { List::"alpha".values.contains(context.arguments.currency) && List::"zeta".name == "zeta" };`,
			want: []string{"alpha", "zeta"},
		},
		{
			name: "nested set and record literals",
			src: `permit(principal, action == Action::"pay__send", resource)
when { [List::"in-set", List::"in-set"].contains(List::"other") && {"k": [List::"in-record"]}.k.contains(List::"x") };`,
			want: []string{"in-record", "in-set", "other", "x"},
		},
		{
			name: "scope",
			src:  `permit(principal, action in [Action::"pay__send"], resource is Tool in List::"tools");`,
			want: []string{"tools"},
		},
		{
			name: "other entity types are not lists",
			src:  `permit(principal in Team::"List", action == Action::"pay__send", resource == Tool::"pay__send");`,
		},
	}
	s := mustGenerate(t, fixtureTools())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := s.ParsePolicies("lists", "lists.cedar", []byte(tt.src))
			var got []string
			if err != nil {
				// The scope case does not validate (a Tool is never in a
				// List); references are still extracted from the parsed
				// policy, which is what the FSM and data plane rely on.
				t.Logf("ParsePolicies: %v", err)
				got = refsOf(t, tt.src)
			} else {
				got = set.Lists()
				if len(set.Policies) == 1 && !slices.Equal(set.Policies[0].Lists, got) {
					t.Errorf("Policy.Lists = %q, set.Lists() = %q", set.Policies[0].Lists, got)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("lists = %q, want %q", got, tt.want)
			}
		})
	}
}

// refsOf parses src without validation and returns ListRefs over every
// policy in it.
func refsOf(t *testing.T, src string) []string {
	t.Helper()
	list, err := cedar.NewPolicyListFromBytes("lists.cedar", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var out []string
	for _, p := range list {
		out = append(out, cedarschema.ListRefs((*ast.Policy)(p.AST()))...)
	}
	return out
}

func TestListEntityInSchema(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	_, err := s.ParsePolicies("lists", "lists.cedar", []byte(`permit(principal, action == Action::"pay__send", resource)
when { List::"payees".values.contains(context.arguments.currency) && List::"payees".name == "payees" };`))
	if err != nil {
		t.Fatalf("a policy reading a list's values and name does not validate: %v", err)
	}
	_, err = s.ParsePolicies("lists", "lists.cedar", []byte(`permit(principal, action == Action::"pay__send", resource)
when { List::"payees".values.contains(context.arguments.amount) };`))
	if err == nil {
		t.Fatal("a list of strings compared with a long validates")
	}
}
