package state_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// a2aPolicy names the remote-agent part of the schema.
const a2aPolicy = `permit(principal, action in Action::"a2a_send", resource == RemoteAgent::"travel");`

// upgraded is the base state with every voter recording version v.
func upgraded(t *testing.T, v clusterversion.Version) *state.State {
	t.Helper()
	s := base(t)
	for i, name := range []string{"n1", "n2"} {
		n := statetest.Node(name)
		n.MaxClusterVersion = uint32(v)
		s = statetest.Run(t, s, uint64(100+i), []statetest.Step{{Name: "record version of " + name, Cmd: statetest.Upsert(n)}})
	}
	return s
}

func applyAt(t *testing.T, s *state.State, index uint64, cmd *fsmv1.Command) (*state.State, *fsmv1.Result) {
	t.Helper()
	if need, err := clusterversion.Needs(cmd); err != nil {
		t.Fatalf("Needs: %v", err)
	} else {
		cmd.ClusterVersion = uint32(need.Version)
	}
	return state.Apply(s, index, cmd)
}

// Once every voter supports A2A brokering, agent cards are pinned and
// policies may name remote agents; before, neither is accepted, so that
// every replica of a mixed cluster applies alike.
func TestA2AWaitsForEveryVoter(t *testing.T) {
	for _, tt := range []struct {
		name     string
		version  clusterversion.Version
		accepted bool
	}{
		{"baseline voters", clusterversion.Baseline, false},
		{"every voter upgraded", clusterversion.A2ABrokering, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := upgraded(t, tt.version)
			s, res := applyAt(t, s, 200, statetest.Create(statetest.A2AUpstream("travel")))
			if res.GetError() != nil {
				t.Fatalf("create A2A upstream: %v", res.GetError())
			}
			_, res = applyAt(t, s, 201, statetest.Create(statetest.CardPin("travel", "search")))
			if got := res.GetError() == nil; got != tt.accepted {
				t.Errorf("card pin accepted = %v (%v), want %v", got, res.GetError(), tt.accepted)
			}
			_, res = applyAt(t, s, 202, statetest.Create(statetest.PolicySet("a2a", a2aPolicy)))
			if got := res.GetError() == nil; got != tt.accepted {
				t.Errorf("A2A policy accepted = %v (%v), want %v", got, res.GetError(), tt.accepted)
			}
		})
	}
}

func TestA2APinRules(t *testing.T) {
	s := upgraded(t, clusterversion.A2ABrokering)
	s = statetest.Run(t, s, 200, []statetest.Step{
		{Name: "A2A upstream", Cmd: statetest.Create(statetest.A2AUpstream("travel"))},
		{Name: "card", Cmd: statetest.Create(statetest.CardPin("travel", "search"))},
		{Name: "A2A policy", Cmd: statetest.Create(statetest.PolicySet("a2a", a2aPolicy))},
	})
	tool := statetest.ToolPin("travel", "send", "")
	card := statetest.CardPin("up", "x")
	moved := statetest.A2AUpstream("up")
	tests := []struct {
		name string
		cmd  *fsmv1.Command
		msg  string
	}{
		{"tool pin on an A2A upstream", statetest.Create(tool), "its only pin is its agent card"},
		{"card on an MCP upstream", statetest.Create(card), "does not speak A2A"},
		{"pinned upstream changes protocol", statetest.Update(moved), "cannot change protocol"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res := applyAt(t, s, uint64(300+i), tt.cmd)
			if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION || !strings.Contains(res.GetError().GetMessage(), tt.msg) {
				t.Errorf("result %v, want a precondition failure saying %q", res.GetError(), tt.msg)
			}
		})
	}
	// The card is not a tool: no action "travel__agent-card".
	sch, err := s.CedarSchema()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range sch.Actions() {
		if strings.Contains(a, "agent-card") {
			t.Errorf("the schema declares action %q for a card", a)
		}
	}
	if r, ok := s.Get(resource.ToolPin, "travel/agent-card"); !ok || r.GetToolPin().GetKind() != configv1.PinKind_PIN_KIND_AGENT_CARD {
		t.Errorf("card pin = %v", r)
	}
}
