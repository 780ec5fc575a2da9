package resource_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

func TestValidatePolicyTests(t *testing.T) {
	good := func() *configv1.PolicyTestCase {
		return &configv1.PolicyTestCase{Name: "small", Agent: "bot", Tool: "pay__send", ArgumentsJson: `{"amount":1}`, Expect: "allow"}
	}
	with := func(f func(*configv1.PolicyTestCase)) []*configv1.PolicyTestCase {
		c := good()
		f(c)
		return []*configv1.PolicyTestCase{c}
	}
	tests := []struct {
		name   string
		cases  []*configv1.PolicyTestCase
		errMsg string
	}{
		{name: "a good case", cases: []*configv1.PolicyTestCase{good()}},
		{name: "a user with groups", cases: with(func(c *configv1.PolicyTestCase) { c.User, c.Groups = "corp/alice", []string{"finance"} })},
		{name: "exact policies", cases: with(func(c *configv1.PolicyTestCase) { c.Policies, c.CheckPolicies = []string{"pay/small"}, true })},
		{name: "no agent", cases: with(func(c *configv1.PolicyTestCase) { c.Agent = "" }), errMsg: "cases[0].agent: is required"},
		{name: "no tool", cases: with(func(c *configv1.PolicyTestCase) { c.Tool = "" }), errMsg: "cases[0].tool: is required"},
		{name: "another expectation", cases: with(func(c *configv1.PolicyTestCase) { c.Expect = "maybe" }), errMsg: "allow or deny"},
		{name: "arguments not an object", cases: with(func(c *configv1.PolicyTestCase) { c.ArgumentsJson = `[1]` }), errMsg: "JSON object"},
		{name: "a user without a source", cases: with(func(c *configv1.PolicyTestCase) { c.User = "alice" }), errMsg: "SOURCE/NAME"},
		{name: "groups without a user", cases: with(func(c *configv1.PolicyTestCase) { c.Groups = []string{"x"} }), errMsg: "need a user"},
		{name: "policies without checking them", cases: with(func(c *configv1.PolicyTestCase) { c.Policies = []string{"x"} }), errMsg: "without check_policies"},
		{name: "a bad source address", cases: with(func(c *configv1.PolicyTestCase) { c.SourceIp = "10.1" }), errMsg: "not an IP address"},
		{name: "two cases of one name", cases: []*configv1.PolicyTestCase{good(), good()}, errMsg: "also the name of case 1"},
		{name: "arguments over the limit", cases: with(func(c *configv1.PolicyTestCase) { c.ArgumentsJson = `{"a":"` + strings.Repeat("x", 70<<10) + `"}` }), errMsg: "at most 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.Validate(resource.Wrap(&configv1.PolicyTests{Meta: &configv1.ResourceMeta{Name: "pay"}, Cases: tt.cases}))
			if (err == nil) != (tt.errMsg == "") || err != nil && !strings.Contains(err.Error(), tt.errMsg) {
				t.Fatalf("Validate = %v, want %q", err, tt.errMsg)
			}
		})
	}
}

func TestValidateRollout(t *testing.T) {
	good := func() *configv1.Rollout {
		return &configv1.Rollout{
			Meta: &configv1.ResourceMeta{Name: "pay-1a2b3c4d"}, PolicySet: "pay", Source: "permit(principal, action, resource);",
			Plan: &configv1.RolloutPlan{Shadow: durationpb.New(time.Hour), CanaryBasisPoints: []uint32{500, 2500, 10000}, Step: durationpb.New(time.Minute),
				Gates: []string{"deny_increase>1%", "min_calls=10"}},
		}
	}
	with := func(f func(*configv1.Rollout)) *configv1.Rollout {
		r := good()
		f(r)
		return r
	}
	tests := []struct {
		name   string
		r      *configv1.Rollout
		errMsg string
	}{
		{name: "a good rollout", r: good()},
		{name: "no plan at all", r: with(func(r *configv1.Rollout) { r.Plan = nil })},
		{name: "a bad set name", r: with(func(r *configv1.Rollout) { r.PolicySet = "Pay" }), errMsg: "policy_set"},
		{name: "shares that do not grow", r: with(func(r *configv1.Rollout) { r.Plan.CanaryBasisPoints = []uint32{500, 500} }), errMsg: "strictly increasing"},
		{name: "a share over 100%", r: with(func(r *configv1.Rollout) { r.Plan.CanaryBasisPoints = []uint32{10001} }), errMsg: "basis points"},
		{name: "a zero share", r: with(func(r *configv1.Rollout) { r.Plan.CanaryBasisPoints = []uint32{0} }), errMsg: "basis points"},
		{name: "steps without a duration", r: with(func(r *configv1.Rollout) { r.Plan.Step = nil }), errMsg: "need a duration"},
		{name: "a shadow of a year", r: with(func(r *configv1.Rollout) { r.Plan.Shadow = durationpb.New(365 * 24 * time.Hour) }), errMsg: "30 days"},
		{name: "a negative step", r: with(func(r *configv1.Rollout) { r.Plan.Step = durationpb.New(-time.Second) }), errMsg: "30 days"},
		{name: "a gate that does not parse", r: with(func(r *configv1.Rollout) { r.Plan.Gates = []string{"errors>1"} }), errMsg: "unknown metric"},
		{name: "too many steps", r: with(func(r *configv1.Rollout) { r.Plan.CanaryBasisPoints = []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} }), errMsg: "at most 10 steps"},
		{name: "a two-line file name", r: with(func(r *configv1.Rollout) { r.Filename = "a\nb" }), errMsg: "one line"},
		{name: "a message over the limit", r: with(func(r *configv1.Rollout) { r.Message = strings.Repeat("m", 1025) }), errMsg: "message"},
		{name: "a source nested too deep", r: with(func(r *configv1.Rollout) {
			r.Source = "permit(principal, action, resource) when { " + strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100) + " };"
		}), errMsg: "pay.cedar:1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.Validate(resource.Wrap(tt.r))
			if (err == nil) != (tt.errMsg == "") || err != nil && !strings.Contains(err.Error(), tt.errMsg) {
				t.Fatalf("Validate = %v, want %q", err, tt.errMsg)
			}
		})
	}
}

func TestValidateRolloutChange(t *testing.T) {
	tests := []struct {
		name   string
		change *fsmv1.RolloutChange
		errMsg string
	}{
		{name: "a change", change: &fsmv1.RolloutChange{Rollout: "r1", Action: fsmv1.RolloutAction_ROLLOUT_ACTION_ABORT, Reason: "no"}},
		{name: "a reason over the limit", change: &fsmv1.RolloutChange{Rollout: "r1", Reason: strings.Repeat("r", 1025)}, errMsg: "reason: at most 1024 bytes"},
		{name: "a reason not UTF-8", change: &fsmv1.RolloutChange{Rollout: "r1", Reason: "\xff"}, errMsg: "UTF-8"},
		{name: "a name over the limit", change: &fsmv1.RolloutChange{Rollout: strings.Repeat("r", 300)}, errMsg: "rollout_change.rollout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.ValidateCommand(&fsmv1.Command{Op: &fsmv1.Command_RolloutChange{RolloutChange: tt.change}})
			if (err == nil) != (tt.errMsg == "") || err != nil && !strings.Contains(err.Error(), tt.errMsg) {
				t.Fatalf("ValidateCommand = %v, want %q", err, tt.errMsg)
			}
		})
	}
}
