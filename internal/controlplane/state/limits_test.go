package state_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
)

// deepPolicy is the policy that took the control plane down: a condition
// nested n parentheses deep.
func deepPolicy(n int) string {
	return "permit(principal, action, resource) when { " + strings.Repeat("(", n) + "true" + strings.Repeat(")", n) + " };\n"
}

// TestApplyRefusesOverLimits applies commands over the limits to a state
// holding every kind of resource, as a replica replays entries an older
// version committed: each is refused as INVALID_ARGUMENT with a message
// naming the limit, changes no resource, is in the admin log, and costs
// little more memory than the command's own size — nothing reaches a
// parser.
func TestApplyRefusesOverLimits(t *testing.T) {
	base := statetest.Run(t, state.New(), 1, statetest.Script()[:12])
	pin := statetest.ToolPin("pay", "send", statetest.AmountSchema("integer"))
	pin.Versions[0].InputSchema = []byte(strings.Repeat(`{"type":"array","items":`, 5000) + `{"type":"integer"}` + strings.Repeat("}", 5000))
	pin.Versions[0].Definition = []byte(`{"name":"send"}`)
	longID := statetest.Upsert(statetest.Agent("longid", ""))
	longID.RequestId = strings.Repeat("r", 10_000)
	longID.Method = strings.Repeat("m", 10_000)

	tests := []struct {
		name string
		cmd  *fsmv1.Command
		want string
	}{
		{name: "500,000 nested parentheses", cmd: statetest.Upsert(statetest.PolicySet("deep", deepPolicy(500_000))),
			want: "policy_set: source: deep.cedar:1:107: brackets nest more than 64 levels deep"},
		{name: "100,000 nested parentheses", cmd: statetest.Upsert(statetest.PolicySet("deep", deepPolicy(100_000))),
			want: "brackets nest more than 64 levels deep"},
		{name: "a 200,000-long || chain", cmd: statetest.Upsert(statetest.PolicySet("long", "permit(principal, action, resource) when { "+strings.Repeat("true || ", 100_000)+"true };")),
			want: "deeper than 1024 levels"},
		{name: "an input schema nested 5,000 deep", cmd: statetest.Upsert(pin),
			want: "tool_pin: versions[0].input_schema: objects and arrays nest more than 64 levels deep"},
		{name: "a request id and method over their limits", cmd: longID, want: "request_id: at most 160 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, res, alloc := measuredApply(base, base.Index()+1, tt.cmd)
			if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT || !strings.Contains(res.GetError().GetMessage(), tt.want) {
				t.Fatalf("result %v, want INVALID_ARGUMENT containing %q", res, tt.want)
			}
			if d := diffResources(base, next); d != "" {
				t.Errorf("the refused command changed %s", d)
			}
			if max := 4*uint64(proto.Size(tt.cmd)) + 1<<20; alloc > max {
				t.Errorf("refusing allocated %d KiB, more than %d KiB", alloc>>10, max>>10)
			}
			events, _ := next.AdminEvents(0, 1)
			ev := events[0]
			if ev.GetIndex() != next.Index() || ev.GetErrorCode() != "INVALID_ARGUMENT" ||
				len(ev.GetRequestId()) > limits.RequestID || len(ev.GetMethod()) > limits.Method {
				t.Errorf("admin event %v", ev)
			}
		})
	}
}

// TestApplyOverLimitDedup checks how a refusal over a limit is remembered:
// a retry with the same request id returns the same refusal, but a request
// id over its own limit is never stored.
func TestApplyOverLimitDedup(t *testing.T) {
	base := statetest.Run(t, state.New(), 1, statetest.Script()[:1])
	cmd := statetest.By(statetest.Upsert(statetest.PolicySet("deep", deepPolicy(1000))), statetest.BootToken, "r-deep", 5)
	s1, r1 := state.Apply(base, 2, cmd)
	_, r2 := state.Apply(s1, 3, cmd)
	if r1.GetError() == nil || !r2.GetDeduplicated() || r2.GetError().GetMessage() != r1.GetError().GetMessage() {
		t.Fatalf("first %v, retry %v: want the same refusal, deduplicated", r1, r2)
	}

	long := proto.Clone(cmd).(*fsmv1.Command)
	long.RequestId = strings.Repeat("r", limits.RequestID+1)
	s3, r3 := state.Apply(s1, 3, long)
	if !strings.Contains(r3.GetError().GetMessage(), "request_id") {
		t.Fatalf("result %v, want a refusal of the request id", r3)
	}
	if _, ok := s3.Dedup(statetest.BootToken, long.GetRequestId()); ok {
		t.Error("a request id over its limit was remembered")
	}
}

// TestValidateCommandMatchesApply checks that what the admin API refuses
// before proposing (resource.ValidateCommand) is what Apply refuses.
func TestValidateCommandMatchesApply(t *testing.T) {
	base := statetest.Run(t, state.New(), 1, statetest.Script()[:12])
	for _, cmd := range []*fsmv1.Command{
		statetest.Upsert(statetest.PolicySet("deep", deepPolicy(65))),
		statetest.Upsert(statetest.PolicySet("ok", deepPolicy(10))),
		statetest.SetFreeze(true, strings.Repeat("x", limits.FreezeReason+1)),
		statetest.Delete(resource.Agent, strings.Repeat("a", limits.Name+1)),
	} {
		verr := resource.ValidateCommand(cmd)
		_, res := state.Apply(base, base.Index()+1, cmd)
		if verr != nil && res.GetError().GetMessage() != verr.Error() {
			t.Errorf("ValidateCommand: %v; Apply: %v", verr, res.GetError())
		}
		if verr == nil && res.GetError().GetCode() == fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
			t.Errorf("ValidateCommand accepted what Apply refuses as invalid: %v", res.GetError())
		}
	}
}
