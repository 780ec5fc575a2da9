package access_test

import (
	"context"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/authz"
	"github.com/portcullis-gw/portcullis/internal/controlplane/access"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

func apply(t *testing.T, s *state.State, index uint64, cmds ...*fsmv1.Command) (*state.State, uint64) {
	t.Helper()
	for _, c := range cmds {
		index++
		var res *fsmv1.Result
		s, res = state.Apply(s, index, c)
		if res.GetError() != nil {
			t.Fatalf("command %d refused: %v", index, res.GetError())
		}
	}
	return s, index
}

func TestEnginesCompileOncePerVersion(t *testing.T) {
	v1, idx := apply(t, state.New(), 0,
		statetest.Bootstrap(),
		statetest.Create(statetest.Upstream("up", "")),
		statetest.Create(statetest.ToolPin("up", "pay", statetest.AmountSchema("integer"))),
		statetest.Create(statetest.Agent("bot", "0123456789abcdef")),
		statetest.Create(statetest.PolicySet("cap", statetest.PermitAll+statetest.AmountPolicy("up__pay"))),
	)
	var engines access.Engines
	e1, err := engines.For(v1)
	if err != nil {
		t.Fatal(err)
	}
	if e1.Version() != v1.ConfigVersion() {
		t.Errorf("engine version %d, want the state's %d", e1.Version(), v1.ConfigVersion())
	}
	if again, _ := engines.For(v1); again != e1 || engines.Compiles() != 1 {
		t.Errorf("asking again compiled again (%d compilations)", engines.Compiles())
	}
	req := &authz.Request{Agent: "bot", Action: "up__pay", Resource: authz.ToolResource("up__pay"),
		Arguments: []byte(`{"amount": 900}`), Context: authz.Context{}.WithDefaults(statetest.At(100).AsTime())}
	if d := e1.Decide(context.Background(), req); d.Allowed || len(d.Policies) != 1 || d.Policies[0] != "cap/cap" {
		t.Errorf("decision = %+v, want denied by cap/cap", d)
	}

	// A write makes a new version, which is compiled once and kept; the old
	// version (a stale read) is compiled again but does not replace it.
	v2, _ := apply(t, v1, idx, statetest.Create(statetest.PolicySet("open", statetest.PermitAll)))
	e2, err := engines.For(v2)
	if err != nil {
		t.Fatal(err)
	}
	if e2 == e1 || e2.Version() != v2.ConfigVersion() || engines.Compiles() != 2 {
		t.Fatalf("new version: engine %d after %d compilations", e2.Version(), engines.Compiles())
	}
	if old, _ := engines.For(v1); old.Version() != v1.ConfigVersion() {
		t.Errorf("stale read answered with version %d, want %d", old.Version(), v1.ConfigVersion())
	}
	if latest, _ := engines.For(v2); latest != e2 || engines.Compiles() != 3 {
		t.Errorf("the stale read replaced the newest engine (%d compilations)", engines.Compiles())
	}
}

// TestRunCasesFindings: a stored case's findings are the context.findings
// its call is decided with, so a policy on runtime inspection is tested
// before a rollout of it starts.
func TestRunCasesFindings(t *testing.T) {
	st, _ := apply(t, state.New(), 0,
		statetest.Bootstrap(),
		statetest.Create(statetest.Upstream("up", "")),
		statetest.Create(statetest.ToolPin("up", "pay", statetest.AmountSchema("integer"))),
		statetest.Create(statetest.Agent("bot", "0123456789abcdef")),
	)
	eng, err := access.Candidate(st, "guard", statetest.PermitAll+statetest.FindingsPolicy, "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []*configv1.PolicyTestCase{
		{Name: "clean", Agent: "bot", Tool: "up__pay", ArgumentsJson: `{"amount":1}`, Expect: "allow"},
		{Name: "found", Agent: "bot", Tool: "up__pay", ArgumentsJson: `{"amount":1}`, Expect: "deny", Findings: []string{"exfiltration", "exfiltration.url_payload"}},
		{Name: "wrong", Agent: "bot", Tool: "up__pay", ArgumentsJson: `{"amount":1}`, Expect: "allow", Findings: []string{"exfiltration"}},
	}
	got := access.RunCases(context.Background(), eng, cases, statetest.At(100).AsTime())
	if len(got) != 3 || !got[0].Passed || !got[1].Passed || got[2].Passed || got[2].Why != "expected allow, got deny" {
		t.Fatalf("results %+v: the case with findings must be denied", got)
	}
}
