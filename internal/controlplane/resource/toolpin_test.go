package resource_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// TestValidateToolPinVersions covers the stateless rules of assignments
// and deprecations.
func TestValidateToolPinVersions(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	pin := func(edit func(p *configv1.ToolPin)) *configv1.ToolPin {
		p := &configv1.ToolPin{
			Meta: &configv1.ResourceMeta{Name: "demo/get_weather"}, Upstream: "demo", Tool: "get_weather", ActiveVersion: 1,
			Versions: []*configv1.ToolVersion{
				{Version: 1, Definition: []byte(`{"name":"get_weather"}`), Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY},
				{Version: 2, Definition: []byte(`{"name":"get_weather"}`), Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY},
			},
		}
		edit(p)
		return p
	}
	deprecate := func(v *configv1.ToolVersion, dep, sunset time.Time, msg string) {
		v.DeprecateTime, v.SunsetTime, v.DeprecationMessage = timestamppb.New(dep), timestamppb.New(sunset), msg
	}
	tests := []struct {
		name   string
		pin    *configv1.ToolPin
		errMsg string
	}{
		{name: "assignments to teams and agents", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 2, Team: "payments"}, {Version: 1, Agent: "billing-bot"}, {Version: 2, Agent: "ops-agent"}}
		})},
		{name: "a deprecated version", pin: pin(func(p *configv1.ToolPin) { deprecate(p.Versions[0], t0, t0.Add(time.Hour), "move to version 2") })},
		{name: "assignment of a missing version", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 3, Team: "payments"}}
		}), errMsg: "assignments[0].version: version 3 is not among the pin's versions"},
		{name: "assignment of neither", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 2}}
		}), errMsg: "assignments[0]: exactly one of team and agent is required"},
		{name: "assignment of both", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 2, Team: "payments", Agent: "a"}}
		}), errMsg: "exactly one of team and agent"},
		{name: "team twice", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 2, Team: "payments"}, {Version: 1, Team: "payments"}}
		}), errMsg: `assignments[1].team: team "payments" is assigned twice`},
		{name: "agent twice", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 2, Agent: "a"}, {Version: 2, Agent: "a"}}
		}), errMsg: `agent "a" is assigned twice`},
		{name: "a team and an agent of the same name", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 2, Agent: "ops"}, {Version: 1, Team: "ops"}}
		})},
		{name: "bad team name", pin: pin(func(p *configv1.ToolPin) {
			p.Assignments = []*configv1.ToolAssignment{{Version: 2, Team: "Pay ments"}}
		}), errMsg: "assignments[0].team"},
		{name: "sunset without deprecation", pin: pin(func(p *configv1.ToolPin) { p.Versions[0].SunsetTime = timestamppb.New(t0) }),
			errMsg: "versions[0].sunset_time: a deprecation needs both"},
		{name: "deprecation without sunset", pin: pin(func(p *configv1.ToolPin) { p.Versions[0].DeprecateTime = timestamppb.New(t0) }),
			errMsg: "a deprecation needs both"},
		{name: "sunset before deprecation", pin: pin(func(p *configv1.ToolPin) { deprecate(p.Versions[0], t0, t0, "") }),
			errMsg: "must be after deprecate_time"},
		{name: "message without deprecation", pin: pin(func(p *configv1.ToolPin) { p.Versions[1].DeprecationMessage = "hi" }),
			errMsg: "versions[1].deprecation_message: only a deprecated version has one"},
		{name: "message not UTF-8", pin: pin(func(p *configv1.ToolPin) { deprecate(p.Versions[0], t0, t0.Add(time.Hour), "\xff") }),
			errMsg: "must be UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.Validate(resource.Wrap(tt.pin))
			if tt.errMsg == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errMsg) || !errors.Is(err, resource.ErrInvalid) {
				t.Fatalf("Validate = %v, want an invalid-argument error containing %q", err, tt.errMsg)
			}
		})
	}
}
