package toolversion_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/toolversion"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func pin(active int64, deprecated map[int64]time.Time, assignments ...*configv1.ToolAssignment) *configv1.ToolPin {
	p := &configv1.ToolPin{Upstream: "demo", Tool: "get_weather", ActiveVersion: active, Assignments: assignments}
	for n := int64(1); n <= 3; n++ {
		v := &configv1.ToolVersion{Version: n}
		if sunset, ok := deprecated[n]; ok {
			v.DeprecateTime, v.SunsetTime = timestamppb.New(t0), timestamppb.New(sunset)
		}
		p.Versions = append(p.Versions, v)
	}
	return p
}

func team(name string, v int64) *configv1.ToolAssignment {
	return &configv1.ToolAssignment{Team: name, Version: v}
}

func agent(name string, v int64) *configv1.ToolAssignment {
	return &configv1.ToolAssignment{Agent: name, Version: v}
}

func TestFor(t *testing.T) {
	tests := []struct {
		name        string
		pin         *configv1.ToolPin
		agent, team string
		want        int64
		source      toolversion.Source
	}{
		{name: "default is the newest", pin: pin(0, nil), agent: "a", team: "ops", want: 3, source: toolversion.SourceDefault},
		{name: "default is active_version", pin: pin(1, nil), agent: "a", team: "ops", want: 1, source: toolversion.SourceDefault},
		{name: "team assignment", pin: pin(1, nil, team("payments", 2)), agent: "a", team: "payments", want: 2, source: toolversion.SourceTeam},
		{name: "another team's assignment", pin: pin(1, nil, team("payments", 2)), agent: "a", team: "ops", want: 1, source: toolversion.SourceDefault},
		{name: "agent wins over its team", pin: pin(1, nil, team("payments", 2), agent("a", 3)), agent: "a", team: "payments", want: 3, source: toolversion.SourceAgent},
		{name: "agent assignment listed first", pin: pin(1, nil, agent("a", 3), team("payments", 2)), agent: "a", team: "payments", want: 3, source: toolversion.SourceAgent},
		{name: "no team", pin: pin(1, nil, team("", 2)), agent: "a", team: "", want: 1, source: toolversion.SourceDefault},
		{name: "assignment of a missing version is ignored", pin: pin(1, nil, agent("a", 9)), agent: "a", want: 1, source: toolversion.SourceDefault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, src := toolversion.For(tt.pin, tt.agent, tt.team)
			if v.GetVersion() != tt.want || src != tt.source {
				t.Errorf("For = version %d (%s), want %d (%s)", v.GetVersion(), src, tt.want, tt.source)
			}
		})
	}
	if v := toolversion.Default(&configv1.ToolPin{ActiveVersion: 4, Versions: []*configv1.ToolVersion{{Version: 1}}}); v != nil {
		t.Errorf("Default with a missing active version = %v, want nil", v)
	}
}

func TestInUse(t *testing.T) {
	p := pin(2, nil, team("payments", 3), agent("a", 3), agent("b", 2))
	var got []int64
	for _, v := range toolversion.InUse(p) {
		got = append(got, v.GetVersion())
	}
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("InUse = %v, want [2 3]", got)
	}
	users, isDefault := toolversion.Users(p, 3)
	if len(users) != 2 || isDefault {
		t.Errorf("Users(3) = %v, %t", users, isDefault)
	}
	if users, isDefault := toolversion.Users(p, 1); len(users) != 0 || isDefault {
		t.Errorf("Users(1) = %v, %t", users, isDefault)
	}
}

func TestDeprecation(t *testing.T) {
	sunset := t0.Add(time.Hour)
	p := pin(1, map[int64]time.Time{1: sunset, 3: sunset})
	v1 := toolversion.Find(p, 1)
	if !toolversion.Deprecated(v1) || toolversion.Deprecated(toolversion.Find(p, 2)) {
		t.Error("Deprecated")
	}
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{{t0, false}, {sunset.Add(-time.Nanosecond), false}, {sunset, true}, {sunset.Add(time.Hour), true}} {
		if got := toolversion.Retired(v1, tt.at); got != tt.want {
			t.Errorf("Retired at %s = %t, want %t", tt.at, got, tt.want)
		}
	}
	if toolversion.Retired(toolversion.Find(p, 2), sunset.Add(time.Hour)) {
		t.Error("a version never deprecated is retired")
	}
	// The default is deprecated: the newest version that is not.
	if r := toolversion.Replacement(p, v1); r != 2 {
		t.Errorf("Replacement(1) = %d, want 2", r)
	}
	// The default is fine: the default.
	p.ActiveVersion = 2
	if r := toolversion.Replacement(p, toolversion.Find(p, 3)); r != 2 {
		t.Errorf("Replacement(3) = %d, want 2", r)
	}
	// Every other version is deprecated too: none.
	p = pin(1, map[int64]time.Time{1: sunset, 2: sunset, 3: sunset})
	if r := toolversion.Replacement(p, toolversion.Find(p, 1)); r != 0 {
		t.Errorf("Replacement with all deprecated = %d, want 0", r)
	}
}
