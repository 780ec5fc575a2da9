package state_test

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// modelPolicy names the model part of the schema.
const modelPolicy = `permit(principal in Team::"payments", action in Action::"llm_complete", resource in Upstream::"openai") when { context.maxTokens <= 4096 };`

// withVoters is the base state with every voter recording version v.
func withVoters(t *testing.T, v clusterversion.Version) *state.State {
	t.Helper()
	s := base(t)
	for i, name := range []string{"n1", "n2"} {
		n := statetest.Node(name)
		n.MaxClusterVersion = uint32(v)
		s = statetest.Run(t, s, uint64(100+i), []statetest.Step{{Name: "record version of " + name, Cmd: statetest.Upsert(n)}})
	}
	return s
}

// stamped applies cmd stamped with the version it needs, as a proposer
// does.
func stamped(t *testing.T, s *state.State, index uint64, cmd *fsmv1.Command) (*state.State, *fsmv1.Result) {
	t.Helper()
	need, err := clusterversion.Needs(cmd)
	if err != nil {
		t.Fatalf("Needs: %v", err)
	}
	cmd.ClusterVersion = uint32(need.Version)
	return state.Apply(s, index, cmd)
}

// Prices, budgets and policies about models wait until every voter
// supports them, so that every replica of a mixed cluster applies alike.
func TestLLMWaitsForEveryVoter(t *testing.T) {
	for _, tt := range []struct {
		name     string
		version  clusterversion.Version
		accepted bool
	}{
		{"baseline voters", clusterversion.Baseline, false},
		{"every voter upgraded", clusterversion.LLMBrokering, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := withVoters(t, tt.version)
			// An LLM upstream is a baseline kind with a field older replicas keep.
			s, res := stamped(t, s, 200, statetest.Create(statetest.LLMUpstream("openai", "gpt-4o", "fast")))
			if res.GetError() != nil {
				t.Fatalf("create LLM upstream: %v", res.GetError())
			}
			for i, cmd := range []*fsmv1.Command{
				statetest.Upsert(statetest.ModelPrice("openai", "gpt-4o", 1)),
				statetest.Create(statetest.Budget("b", 1)),
				statetest.Create(statetest.PolicySet("models", modelPolicy)),
			} {
				_, res := stamped(t, s, uint64(201+i), cmd)
				if got := res.GetError() == nil; got != tt.accepted {
					t.Errorf("command %d accepted = %v (%v), want %v", i, got, res.GetError(), tt.accepted)
				}
			}
		})
	}
}

func TestLLMRules(t *testing.T) {
	s := withVoters(t, clusterversion.LLMBrokering)
	s = statetest.Run(t, s, 200, []statetest.Step{
		{Name: "LLM upstream", Cmd: statetest.Create(statetest.LLMUpstream("openai", "gpt-4o", "fast"))},
		{Name: "price", Cmd: statetest.Upsert(statetest.ModelPrice("openai", "gpt-4o", 1))},
	})
	prefixed := statetest.LLMUpstream("mine", "gpt-4o", "mine-fast")
	prefixed.ToolPrefix = new(string)
	*prefixed.ToolPrefix = "x"
	aliasIsName := statetest.LLMUpstream("second", "m", "openai/gpt-4o")
	aliasIsName.Llm.Models[0].Aliases = nil
	aliasIsName.ToolPrefix = new(string) // model "openai/gpt-4o" with no prefix: the same name
	aliasIsName.Llm.Models[0].Id = "openai/gpt-4o"
	dropped := statetest.LLMUpstream("openai", "gpt-4o-mini", "fast")
	mcp := statetest.Upstream("openai", "")
	tests := []struct {
		name string
		cmd  *fsmv1.Command
		want fsmv1.ErrorCode
	}{
		{"another upstream's model under its own prefix", statetest.Create(prefixed), fsmv1.ErrorCode_ERROR_CODE_UNSPECIFIED},
		{"an alias another upstream has", statetest.Create(statetest.LLMUpstream("third", "m", "fast")), fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS},
		{"a model named like another's", statetest.Create(aliasIsName), fsmv1.ErrorCode_ERROR_CODE_ALREADY_EXISTS},
		{"dropping a priced model", statetest.Update(dropped), fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{"turning a priced upstream into MCP", statetest.Update(mcp), fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{"a price for an MCP upstream", statetest.Upsert(statetest.ModelPrice("up", "gpt-4o", 1)), fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
		{"deleting a priced upstream", statetest.Delete(resource.Upstream, "openai"), fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res := stamped(t, s, uint64(300+i), tt.cmd)
			if got := res.GetError().GetCode(); got != tt.want {
				t.Errorf("code %v (%v), want %v", got, res.GetError(), tt.want)
			}
		})
	}
}
