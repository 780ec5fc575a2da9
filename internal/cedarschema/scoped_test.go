package cedarschema_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// scopedTools are three tools whose "amount" argument has the given JSON
// Schema types ("" leaves the tool out).
func scopedTools(types ...string) []cedarschema.Tool {
	var out []cedarschema.Tool
	for i, typ := range types {
		if typ == "" {
			continue
		}
		out = append(out, cedarschema.Tool{
			Action: fmt.Sprintf("up__t%d", i), Upstream: "up", Name: fmt.Sprintf("t%d", i),
			InputSchema: []byte(`{"type":"object","properties":{"amount":{"type":"` + typ + `"}},"required":["amount"]}`),
		})
	}
	return out
}

// TestValidateAffectedValidatesOnlyPoliciesNamingTheChange: after a change
// of tool t0, a policy naming t0 (in its scope or its conditions), over a
// group or over every action is validated again; one naming only other
// tools is not — and that it was not is visible: it is invalid against
// the new schema, yet not reported.
func TestValidateAffectedValidatesOnlyPoliciesNamingTheChange(t *testing.T) {
	s := mustGenerate(t, scopedTools("integer", "string", "integer"))
	// t1's amount is a string: "amount > 5" does not validate for t1.
	const broken = `context.arguments.amount > 5`
	tests := []struct {
		name      string
		policy    string
		validated bool
	}{
		{"== the changed tool", `forbid(principal, action == Action::"up__t0", resource) when { context.arguments.amount > 5 };`, true},
		{"== another tool", `forbid(principal, action == Action::"up__t1", resource) when { ` + broken + ` };`, false},
		{"in [other tools]", `forbid(principal, action in [Action::"up__t1", Action::"up__t2"], resource) when { ` + broken + ` };`, false},
		{"in another tool", `forbid(principal, action in Action::"up__t1", resource) when { ` + broken + ` };`, false},
		{"in [changed, other]", `permit(principal, action in [Action::"up__t0", Action::"up__t2"], resource);`, true},
		{"in call_tool", `permit(principal, action in Action::"call_tool", resource);`, true},
		{"every action", `permit(principal, action, resource);`, true},
		{"changed tool in a condition", `permit(principal, action == Action::"up__t2", resource) when { action == Action::"up__t0" };`, true},
		{"A2A group", `permit(principal, action in Action::"a2a_send", resource);`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := cedarschema.ParseSet("s", "s.cedar", []byte(tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			n, err := s.ValidateAffected([]*cedarschema.ParsedSet{set}, []string{"up__t0"})
			want := 0
			if tc.validated {
				want = 1
			}
			if n != want || err != nil {
				t.Errorf("ValidateAffected validated %d policies (err %v), want %d and no error", n, err, want)
			}
		})
	}
}

// TestValidateAffectedMatchesValidateAll generates random schemas and
// policy sets valid against them, changes one tool at random (another
// argument type, a new tool, a removed tool) and compares what
// ValidateAffected reports for the changed tool with what ValidateAll
// reports for every policy: the same problems, in the same order.
func TestValidateAffectedMatchesValidateAll(t *testing.T) {
	types := []string{"integer", "string", "boolean", ""}
	conds := []string{
		"",
		`when { context.arguments.amount > 5 }`,
		`when { context.arguments.amount like "x*" }`,
		`when { context.arguments.amount }`,
		`when { context.arguments has amount }`,
		`when { context.arguments has amount && context.arguments.amount > 5 }`,
		`when { context.arguments has amount && context.arguments.amount like "x*" }`,
		`when { action == Action::"up__t%d" }`,
	}
	scopes := []string{
		`action == Action::"up__t%d"`,
		`action in [Action::"up__t%d", Action::"up__t%d"]`,
		`action in Action::"up__t%d"`,
		`action in Action::"call_tool"`,
		`action`,
	}
	fill := func(rng *rand.Rand, s string) string {
		for strings.Contains(s, "%d") {
			s = strings.Replace(s, "%d", fmt.Sprint(rng.IntN(4)), 1)
		}
		return s
	}
	agree, refused := 0, 0
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 14))
		before := make([]string, 4)
		for i := range before {
			before[i] = types[rng.IntN(len(types))]
		}
		old, err := cedarschema.Generate(scopedTools(before...))
		if err != nil {
			t.Fatal(err)
		}
		// Sets of policies valid against the old schema.
		sets := map[string]cedarschema.SetSource{}
		for i := range 3 {
			var src strings.Builder
			for range 40 {
				p := "permit(principal, " + fill(rng, scopes[rng.IntN(len(scopes))]) + ", resource) " + fill(rng, conds[rng.IntN(len(conds))]) + ";\n"
				if _, err := old.ParsePolicies("x", "x.cedar", []byte(p)); err == nil {
					src.WriteString(p)
				}
			}
			sets[fmt.Sprintf("set%d", i)] = cedarschema.SetSource{Filename: fmt.Sprintf("set%d.cedar", i), Source: []byte(src.String())}
		}
		after := slices.Clone(before)
		tool := rng.IntN(4)
		for after[tool] == before[tool] {
			after[tool] = types[rng.IntN(len(types))]
		}
		next, err := cedarschema.Generate(scopedTools(after...))
		if err != nil {
			t.Fatal(err)
		}
		var parsed []*cedarschema.ParsedSet
		for _, name := range slices.Sorted(maps.Keys(sets)) {
			set, err := cedarschema.ParseSet(name, sets[name].Filename, sets[name].Source)
			if err != nil {
				t.Fatal(err)
			}
			parsed = append(parsed, set)
		}
		_, scoped := next.ValidateAffected(parsed, []string{fmt.Sprintf("up__t%d", tool)})
		full := cedarschema.ValidateAll(next, sets)
		if fmt.Sprint(scoped) != fmt.Sprint(full) {
			t.Fatalf("seed %d, tool %d %q → %q: ValidateAffected reports\n%v\nValidateAll reports\n%v", seed, tool, before[tool], after[tool], scoped, full)
		}
		agree++
		if full != nil {
			refused++
		}
	}
	// The comparison means something only if both outcomes occurred.
	if refused == 0 || refused == agree {
		t.Fatalf("%d of %d changes broke a policy; want some of each", refused, agree)
	}
}
