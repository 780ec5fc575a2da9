package cedarschema_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// knownPolicies are policies the tests build sources from: annotations,
// strings holding ';', '"', "//" and "/*", multi-byte text, comments.
var knownPolicies = []string{
	`permit(principal in Team::"payments", action in Action::"call_tool", resource);`,
	`forbid(principal, action == Action::"pay__send", resource) when { context.arguments.amount >= 500 };`,
	"@id(\"semi\")\nforbid(principal, action == Action::\"pay__send\", resource) when { context.arguments.memo == \"a;b \\\" // c /* d\" };",
	"@id(\"été\") @note(\"x;y\")\npermit(principal == Agent::\"ünïcode\", action in Action::\"call_tool\", resource) // tail; comment\n;",
	"permit(principal,\taction == Action::\"pay__send\",\r\n resource) /* ; \" */ when { context.arguments.currency like \"E*\" };",
	`forbid(principal, action == Action::"nope", resource);`, // refused by the schema
	`permit(principal, action, resource) when { context.arguments.amount > "x" };`,
}

// separators go between policies: blank space and comments.
var separators = []string{"\n", "\n\n", " ", "\t", "\r\n", "\n// a comment; with \"quotes\n", "/* block ; */", "\n/* é\n ; */ "}

// TestParsePoliciesKnown holds ParsePoliciesKnown to ParsePolicies on
// random sources built from knownPolicies, reusing the policies of an
// earlier source: the same policies (trees, positions, ids, lists), or the
// same diagnostics.
func TestParsePoliciesKnown(t *testing.T) {
	s := mustGenerate(t, fixtureTools())
	fixed := []string{
		"", "   ", "// only a comment", "/* unterminated", "\uFEFF" + knownPolicies[0], "\x00",
		knownPolicies[0] + " permit(", knownPolicies[0] + "\n\"open", "# " + knownPolicies[0],
		knownPolicies[0] + "\n" + knownPolicies[0], // duplicate ids? no: policy0, policy1
		"@id(\"a\") " + knownPolicies[0] + "\n@id(\"a\") " + knownPolicies[1],
		"\f" + knownPolicies[0], knownPolicies[0] + "\v",
	}
	r := rand.New(rand.NewPCG(1, 2))
	random := func() string {
		var b strings.Builder
		b.WriteString(separators[r.IntN(len(separators))])
		for range r.IntN(6) {
			b.WriteString(knownPolicies[r.IntN(len(knownPolicies))])
			b.WriteString(separators[r.IntN(len(separators))])
		}
		return b.String()
	}
	var sources []string
	sources = append(sources, fixed...)
	for range 300 {
		sources = append(sources, random())
	}
	// What previous versions compiled: every policy that validates,
	// followed by each separator, parsed in a file of another name.
	all := map[string]*cedar.Policy{}
	for _, p := range knownPolicies {
		for _, sep := range separators {
			if set, err := s.ParsePolicies("prev", "prev.cedar", []byte(p+sep)); err == nil {
				cedarschema.EachPolicyText(p+sep, set, func(text string, p *cedar.Policy) { all[text] = p })
			}
		}
	}
	hits := 0
	for i, src := range sources {
		// Half of them, the others are new.
		known := map[string]*cedar.Policy{}
		for text, p := range all {
			if r.IntN(2) == 0 {
				known[text] = p
			}
		}
		lookup := func(text []byte) (*cedar.Policy, bool) {
			p, ok := known[string(text)]
			if ok {
				hits++
			}
			return p, ok
		}
		want, werr := s.ParsePolicies("set", "set.cedar", []byte(src))
		got, gerr := s.ParsePoliciesKnown("set", "set.cedar", []byte(src), lookup)
		if fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Fatalf("source %d %q:\nParsePolicies: %v\nParsePoliciesKnown: %v", i, src, werr, gerr)
		}
		if werr != nil {
			continue
		}
		if len(want.Policies) != len(got.Policies) {
			t.Fatalf("source %d %q: %d policies, want %d", i, src, len(got.Policies), len(want.Policies))
		}
		for j, w := range want.Policies {
			g := got.Policies[j]
			if w.ID != g.ID || w.Effect != g.Effect || w.Position != g.Position || !reflect.DeepEqual(w.Lists, g.Lists) ||
				w.Policy.Position() != g.Policy.Position() || !reflect.DeepEqual(w.Policy.AST(), g.Policy.AST()) {
				t.Fatalf("source %d %q: policy %d: %+v at %+v, want %+v at %+v", i, src, j, g, g.Policy.Position(), w, w.Policy.Position())
			}
		}
	}
	if hits < 200 {
		t.Fatalf("only %d policies were known: the test reuses too little", hits)
	}
}
