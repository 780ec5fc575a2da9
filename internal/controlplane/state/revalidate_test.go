package state_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// pinsAndPolicies returns a bootstrapped state with upstream "up" and
// tools t0 and t1 whose amount is an integer, and an enabled set whose
// policies cap the amount of each.
func pinsAndPolicies(t *testing.T) *state.State {
	t.Helper()
	s := bootstrapped(t)
	for _, c := range []*fsmv1.Command{
		statetest.Create(statetest.Upstream("up", "")),
		statetest.Create(statetest.ToolPin("up", "t0", statetest.AmountSchema("integer"))),
		statetest.Create(statetest.ToolPin("up", "t1", statetest.AmountSchema("integer"))),
		statetest.Create(statetest.PolicySet("caps", statetest.AmountPolicy("up__t0")+strings.ReplaceAll(statetest.AmountPolicy("up__t1"), "cap", "cap1"))),
	} {
		s = mustApply(t, s, statetest.By(c, statetest.BootToken, "", 10))
	}
	return s
}

// TestPinWriteRevalidatesOnlyPoliciesNamingTheTool shows by behaviour
// which policies a pin write re-validates. The state is given a policy on
// t1 that no longer validates (t1's amount became a string behind the
// state machine's back, which Apply never allows): a schema change of t0
// re-validates the policy on t0 only and is accepted, where re-validating
// every policy refuses it; a change of t1 re-validates the broken policy
// and is refused either way, with the same error.
func TestPinWriteRevalidatesOnlyPoliciesNamingTheTool(t *testing.T) {
	s := pinsAndPolicies(t)
	s = state.Inject(s, resource.Wrap(statetest.ToolPin("up", "t1", statetest.AmountSchema("string"))))
	// A new argument, the amount's type kept.
	addArg := func(tool, amount string) *fsmv1.Command {
		return statetest.By(statetest.Upsert(statetest.ToolPin("up", tool, withNote(amount))), statetest.BootToken, "", 20)
	}
	if _, res := state.Apply(s, s.Index()+1, addArg("t0", "integer")); res.GetError() != nil {
		t.Errorf("scoped: a change of t0 was refused: %v", res.GetError())
	}
	_, full := state.ApplyFullRevalidation(s, s.Index()+1, addArg("t0", "integer"))
	if !strings.Contains(full.GetError().GetMessage(), "caps/cap1") {
		t.Errorf("full: a change of t0 was not refused for the broken policy on t1: %v", full.GetError())
	}
	_, scoped := state.Apply(s, s.Index()+1, addArg("t1", "string"))
	_, full = state.ApplyFullRevalidation(s, s.Index()+1, addArg("t1", "string"))
	if scoped.GetError() == nil || scoped.GetError().GetMessage() != full.GetError().GetMessage() {
		t.Errorf("a change of t1: scoped refusal %v, full refusal %v; want the same refusal", scoped.GetError(), full.GetError())
	}
}

// withNote is an input schema with an amount of type amount and a string
// note.
func withNote(amount string) string {
	return `{"type":"object","properties":{"amount":{"type":"` + amount + `"},"note":{"type":"string"}},"required":["amount"]}`
}

// TestPolicyParseCache: a policy set write leaves its parse in the state,
// a snapshot does not carry it, and the next pin write parses it again.
func TestPolicyParseCache(t *testing.T) {
	s := pinsAndPolicies(t)
	if n := state.ParsedSets(s); n != 1 {
		t.Fatalf("after a policy set write: %d parsed sets, want 1", n)
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	restored, err := state.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n := state.ParsedSets(restored); n != 0 {
		t.Fatalf("after Read: %d parsed sets, want 0", n)
	}
	next := mustApply(t, restored, statetest.By(statetest.Upsert(statetest.ToolPin("up", "t0", withNote("integer"))), statetest.BootToken, "", 20))
	if n := state.ParsedSets(next); n != 1 {
		t.Fatalf("after a pin write: %d parsed sets, want 1", n)
	}
	next = mustApply(t, next, statetest.By(statetest.Delete(resource.PolicySet, "caps"), statetest.BootToken, "", 30))
	if n := state.ParsedSets(next); n != 0 {
		t.Fatalf("after the set's delete: %d parsed sets, want 0", n)
	}
}

// TestScopedRevalidationMatchesFull applies random sequences of pin
// creates, schema changes and deletes, policy set writes and enables and
// disables, and snapshot restores, each both with scoped re-validation
// (Apply) and with every policy re-validated (as before): the results
// must be the same (accepted or refused with the same error) and the
// states must write the same snapshot.
func TestScopedRevalidationMatchesFull(t *testing.T) {
	types := []string{"integer", "string", "boolean"}
	policies := []string{
		`forbid(principal, action == Action::"up__t%d", resource) when { context.arguments.amount > 5 };`,
		`forbid(principal, action == Action::"up__t%d", resource) when { context.arguments.amount like "x*" };`,
		`forbid(principal, action in [Action::"up__t%d", Action::"up__t%d"], resource) when { context.arguments.amount };`,
		`permit(principal, action in Action::"call_tool", resource) when { context.arguments has amount && context.arguments.amount > 5 };`,
		`permit(principal, action, resource);`,
		`permit(principal, action == Action::"up__t%d", resource) when { action == Action::"up__t%d" };`,
	}
	fill := func(rng *rand.Rand, s string) string {
		for strings.Contains(s, "%d") {
			s = strings.Replace(s, "%d", fmt.Sprint(rng.IntN(4)), 1)
		}
		return s
	}
	accepted, refused := 0, 0
	for seed := range uint64(12) {
		rng := rand.New(rand.NewPCG(seed, 14))
		s := mustApply(t, bootstrapped(t), statetest.By(statetest.Create(statetest.Upstream("up", "")), statetest.BootToken, "", 10))
		for step := range 60 {
			var c *fsmv1.Command
			switch op := rng.IntN(10); {
			case op < 5:
				tool := fmt.Sprintf("t%d", rng.IntN(4))
				if _, ok := s.Get(resource.ToolPin, resource.ToolPinName("up", tool)); ok && rng.IntN(4) == 0 {
					c = statetest.Delete(resource.ToolPin, resource.ToolPinName("up", tool))
				} else {
					c = statetest.Upsert(statetest.ToolPin("up", tool, statetest.AmountSchema(types[rng.IntN(len(types))])))
				}
			case op < 9:
				var src strings.Builder
				for i := range 1 + rng.IntN(4) {
					fmt.Fprintf(&src, "@id(\"p%d\")\n%s\n", i, fill(rng, policies[rng.IntN(len(policies))]))
				}
				ps := statetest.PolicySet(fmt.Sprintf("set%d", rng.IntN(3)), src.String())
				ps.Disabled = rng.IntN(5) == 0
				c = statetest.Upsert(ps)
			default:
				var buf bytes.Buffer
				if _, err := s.WriteTo(&buf); err != nil {
					t.Fatal(err)
				}
				restored, err := state.Read(&buf)
				if err != nil {
					t.Fatal(err)
				}
				s = restored
				continue
			}
			c = statetest.By(c, statetest.BootToken, "", int64(20+step))
			scoped, sr := state.Apply(s, s.Index()+1, c)
			full, fr := state.ApplyFullRevalidation(s, s.Index()+1, c)
			if sr.GetError().GetMessage() != fr.GetError().GetMessage() || sr.GetError().GetCode() != fr.GetError().GetCode() {
				t.Fatalf("seed %d step %d %s: scoped result %v, full %v", seed, step, c.GetMethod(), sr.GetError(), fr.GetError())
			}
			var a, b bytes.Buffer
			if _, err := scoped.WriteTo(&a); err != nil {
				t.Fatal(err)
			}
			if _, err := full.WriteTo(&b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("seed %d step %d: the scoped and the full state differ", seed, step)
			}
			if _, isPin := c.GetPut().GetResource().GetKind().(*fsmv1.Resource_ToolPin); isPin || c.GetDelete() != nil {
				if sr.GetError() == nil {
					accepted++
				} else if sr.GetError().GetCode() == fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION {
					refused++
				}
			}
			s = scoped
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("%d pin writes accepted, %d refused for a policy; want some of each", accepted, refused)
	}
	t.Logf("%d pin writes accepted, %d refused", accepted, refused)
}
