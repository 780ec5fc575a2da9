package limits_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/portcullis-gw/portcullis/internal/limits"
)

func rep(s string, n int) string { return strings.Repeat(s, n) }

// when wraps an expression in one permit policy.
func when(expr string) string {
	return "permit(principal, action, resource) when { " + expr + " };\n"
}

func TestCheckCedar(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want is "" for accepted, else a part of the message.
		want string
		// line and col are the reported position when want is set.
		line, col int
	}{
		{name: "empty", src: ""},
		{name: "an ordinary policy set", src: `@id("cap")
forbid(principal, action == Action::"pay__send", resource)
when { context.arguments has amount && context.arguments.amount > 500 }
unless { principal in Team::"finance" };
permit(principal in Team::"payments", action in [Action::"pay__send", Action::"pay__balance"], resource is Tool in Upstream::"pay")
when { if context.arguments has memo then context.arguments.memo like "*invoice*" else true };
`},
		// The braces of "when { … }" are one of the levels.
		{name: "brackets at the limit", src: when(rep("(", limits.CedarNesting-1) + "true" + rep(")", limits.CedarNesting-1))},
		{name: "brackets over the limit", src: when(rep("(", limits.CedarNesting) + "true" + rep(")", limits.CedarNesting)),
			want: "brackets nest more than 64 levels deep", line: 1, col: 107},
		{name: "500,000 parentheses", src: when(rep("(", 500_000) + "true" + rep(")", 500_000)), want: "brackets nest", line: 1, col: 107},
		{name: "sets and records nest too", src: when("[" + rep("{a: [", 40) + "1" + rep("]}", 40) + "]"), want: "brackets nest"},
		{name: "brackets in strings and comments do not count",
			src: "// " + rep("(", 1000) + "\n/* " + rep("[", 1000) + " */\n" + when(`principal.name == "`+rep("{", 1000)+`\"" || principal.name == "x"`)},
		{name: "a quote escaped inside a string", src: when(`principal.name == "\"(((" && true`)},
		{name: "an unterminated block comment hides the rest", src: "/* " + rep("(", 100)},
		{name: "a long || chain", src: when(rep(`principal.name == "a" || `, 300) + "true")},
		{name: "a || chain over the depth", src: when(rep(`principal.name == "a" || `, limits.CedarDepth) + "true"), want: "the expression is deeper than 1024 levels"},
		{name: "a ! chain over the depth", src: when(rep("!", 100_000) + "true"), want: "deeper than 1024"},
		{name: "an if chain over the depth", src: when(rep("if true then ", 2000) + "true" + rep(" else false", 2000)), want: "deeper than 1024"},
		{name: "an unfinished if chain", src: "permit(principal, action, resource) when { " + rep("if ", 100_000), want: "deeper than 1024"},
		{name: "a has chain over the depth", src: when("context has " + strings.TrimSuffix(rep("a.", 600), ".")), want: "deeper than 1024"},
		{name: "when clauses over the depth", src: "permit(principal, action, resource) " + rep("when { true } ", 600) + ";", want: "deeper than 1024"},
		{name: "many short policies", src: rep("permit(principal, action, resource);\n", 1000)},
		{name: "too many policies", src: rep("permit(principal,action,resource);", limits.PoliciesPerSet+1), want: "more than 20000 policies"},
		{name: "too many bytes", src: rep(" ", limits.PolicySetSource+1), want: "at most 1048576 bytes"},
		{name: "a Unicode column", src: "// é\n" + "permit(principal, action, resource) when { \"é\" == " + rep("(", 70) + "1" + rep(")", 70) + " };",
			want: "brackets nest", line: 2, col: 114},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := limits.CheckCedar([]byte(tt.src))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckCedar = %v, want nil", err)
				}
				return
			}
			var le *limits.Error
			if !errors.As(err, &le) || !strings.Contains(le.Msg, tt.want) {
				t.Fatalf("CheckCedar = %v, want a *limits.Error containing %q", err, tt.want)
			}
			if le.Field != "source" || !errors.Is(err, limits.ErrExceeded) {
				t.Errorf("field %q, errors.Is(ErrExceeded) = %v", le.Field, errors.Is(err, limits.ErrExceeded))
			}
			if tt.line != 0 && (le.Line != tt.line || le.Column != tt.col) {
				t.Errorf("position %d:%d, want %d:%d", le.Line, le.Column, tt.line, tt.col)
			}
		})
	}
}

// TestCheckCedarAllocations checks that the scan costs the same however
// the source is shaped: no allocation per byte or per bracket.
func TestCheckCedarAllocations(t *testing.T) {
	deep := []byte(when(rep("(", 500_000) + "true" + rep(")", 500_000)))
	long := []byte(rep(`permit(principal, action, resource) when { (principal.name == "a") && [1, 2, {a: 3}].contains(1) };`, 9000))
	for name, src := range map[string][]byte{"deep": deep, "long": long} {
		n := testing.AllocsPerRun(3, func() { _ = limits.CheckCedar(src) })
		if n > 80 {
			t.Errorf("%s: %v allocations per scan, want at most 80", name, n)
		}
	}
}

// soundCorpus are sources whose real expression depth TestCedarBoundSound
// compares with the scan's bound.
var soundCorpus = []string{
	`permit(principal, action, resource);`,
	`permit(principal == Agent::"a", action in [Action::"x", Action::"y"], resource is Tool in Upstream::"u");`,
	when(`context.arguments has amount && context.arguments.amount > 500`),
	when(`context has a.b.c.d.e`),
	when(`context.a.b.c.d.e.f.g == 1`),
	when(`!!!!!!!!true`),
	when(`- - - - -1 < 0`),
	when(`1 + 2 + 3 + 4 - 5 * 6 * 7 < 100`),
	when(`if if true then false else true then [1, [2, [3]]] else [4]`),
	when(`{a: {b: {c: {d: 1}}}}.a.b.c.d == 1`),
	when(`[1, 2, 3].containsAll([1]) && ip("10.0.0.1").isInRange(ip("10.0.0.0/8"))`),
	when(`principal is Agent in Team::"t" || principal is Agent`),
	when(`context.arguments.memo like "*x*" && decimal("1.5").lessThan(decimal("2.0"))`),
	"permit(principal, action, resource) when { true } unless { false } when { 1 < 2 } unless { !true };",
	when(rep(`principal.name == "a" || `, 200) + "true"),
	when(rep("(", 60) + "true" + rep(")", 60)),
	when(rep("(1 + ", 60) + "1" + rep(")", 60) + " == 1"),
	when(rep("!(", 60) + "true" + rep(")", 60)),
	when(rep("[", 60) + "1" + rep("]", 60) + ".contains(1)"),
	when(rep("if true then ", 100) + "true" + rep(" else false", 100)),
	when(rep("true && ", 100) + rep("1 + ", 100) + "1 == 1"),
	"permit(principal, action, resource) " + rep("unless { false } ", 100) + ";",
}

func TestCedarBoundSound(t *testing.T) {
	for _, src := range soundCorpus {
		checkBound(t, src)
	}
}

// FuzzCedarBound checks the scan against cedar-go on any source cedar-go
// parses: every policy's real expression depth is within the bound.
func FuzzCedarBound(f *testing.F) {
	for _, src := range soundCorpus {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		checkBound(t, src)
	})
}

// checkBound compares the scan's bound of each policy of src with the depth
// of the tree cedar-go's evaluator compiles for it.
func checkBound(t *testing.T, src string) {
	t.Helper()
	bounds, msg := limits.CedarBounds([]byte(src))
	if msg != "" {
		return // refused: nothing parses it
	}
	list, err := cedar.NewPolicyListFromBytes("fuzz.cedar", []byte(src))
	if err != nil {
		return
	}
	if len(bounds) != len(list) {
		t.Fatalf("scan counted %d policies, cedar-go parsed %d:\n%s", len(bounds), len(list), src)
	}
	for i, p := range list {
		if d := policyDepth((*ast.Policy)(p.AST())); d > bounds[i] {
			t.Fatalf("policy %d: real depth %d, bound %d:\n%s", i, d, bounds[i], src)
		}
	}
}

// policyDepth is the depth of the tree cedar-go's evaluator builds for p:
// the scope constraints and conditions joined by nested "&&", an unless
// wrapped in "!". A scope constraint is counted at its deepest, 3
// ("action in [ … ]").
func policyDepth(p *ast.Policy) int {
	var parts []int
	for _, scope := range []any{p.Principal, p.Action, p.Resource} {
		if !strings.HasSuffix(reflect.TypeOf(scope).Name(), "All") {
			parts = append(parts, 3)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, 1)
	}
	for _, c := range p.Conditions {
		d := nodeDepth(reflect.ValueOf(c.Body))
		if c.Condition == ast.ConditionUnless {
			d++
		}
		parts = append(parts, d)
	}
	depth := 0
	for i, d := range parts {
		level := i + 1 // under i "&&" nodes, the last one beside the last
		if i == len(parts)-1 {
			level = i
		}
		depth = max(depth, level+d)
	}
	return depth
}

var isNode = reflect.TypeFor[ast.IsNode]()

// nodeDepth counts the expression nodes on the deepest path below v.
func nodeDepth(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		return nodeDepth(v.Elem())
	case reflect.Struct:
		d := 0
		for i := range v.NumField() {
			d = max(d, nodeDepth(v.Field(i)))
		}
		if v.Type().Implements(isNode) {
			d++
		}
		return d
	case reflect.Slice, reflect.Array:
		d := 0
		for i := range v.Len() {
			d = max(d, nodeDepth(v.Index(i)))
		}
		return d
	case reflect.Map:
		d := 0
		for it := v.MapRange(); it.Next(); {
			d = max(d, nodeDepth(it.Value()))
		}
		return d
	default:
		return 0
	}
}

// BenchmarkCheckCedar scans a policy set of about 1 MiB: the cost the limits
// add to every policy write, on the admin API and again in the state
// machine and in cedarschema.ParsePolicies.
func BenchmarkCheckCedar(b *testing.B) {
	src := []byte(rep(`permit(principal == Agent::"agent-1", action == Action::"pay__send", resource) when { context.arguments has amount && context.arguments.amount < 500 };`+"\n", 6800))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := limits.CheckCedar(src); err != nil {
			b.Fatal(err)
		}
	}
}
