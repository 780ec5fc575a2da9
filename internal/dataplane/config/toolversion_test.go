package config_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/authz/authztest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// versionedPay returns the fixture with pay/pay's two versions given
// definitions and hashes: version 1 accepts any "to", version 2 (the
// default) also requires a positive amount, so version 1's callers cannot
// be served by version 2 while version 2's can be served by version 1.
func versionedPay(assignments ...*configv1.ToolAssignment) *snapshotv1.Snapshot {
	s := configtest.Snapshot()
	p := s.ToolPins[1]
	v1, v2 := p.Versions[0], p.Versions[1]
	v1.InputSchema = []byte(`{"type":"object","properties":{"to":{"type":"string"}},"required":["to"]}`)
	v1.Definition = []byte(`{"name":"pay","inputSchema":` + string(v1.InputSchema) + `}`)
	v1.DefinitionHash = "sha256:01"
	v2.Definition = []byte(`{"name":"pay","inputSchema":` + authztest.PaySchema + `}`)
	v2.DefinitionHash = "sha256:02"
	p.Assignments = assignments
	return s
}

func TestToolVersionPerAgent(t *testing.T) {
	payer, marketer := &configv1.Agent{Meta: &configv1.ResourceMeta{Name: authztest.Payer}, Team: "payments"},
		&configv1.Agent{Meta: &configv1.ResourceMeta{Name: authztest.Marketer}, Team: "marketing"}
	tests := []struct {
		name         string
		assignments  []*configv1.ToolAssignment
		agent        *configv1.Agent
		wantVersion  int64
		wantValidArg bool // {"to":"bob"} without an amount passes
	}{
		{name: "no assignment: the default", agent: payer, wantVersion: 2},
		{name: "no agent: the default", assignments: []*configv1.ToolAssignment{{Version: 1, Team: "payments"}}, wantVersion: 2},
		{name: "team assignment", assignments: []*configv1.ToolAssignment{{Version: 1, Team: "payments"}}, agent: payer, wantVersion: 1, wantValidArg: true},
		{name: "another team's assignment", assignments: []*configv1.ToolAssignment{{Version: 1, Team: "payments"}}, agent: marketer, wantVersion: 2},
		{name: "the agent's own wins over its team's",
			assignments: []*configv1.ToolAssignment{{Version: 1, Team: "payments"}, {Version: 2, Agent: authztest.Payer}}, agent: payer, wantVersion: 2},
		{name: "agent assignment", assignments: []*configv1.ToolAssignment{{Version: 1, Agent: authztest.Marketer}}, agent: marketer, wantVersion: 1, wantValidArg: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configtest.Compile(t, versionedPay(tt.assignments...))
			tool, ok := c.Tool(configtest.PayAction, tt.agent)
			if !ok || tool.Version != tt.wantVersion {
				t.Fatalf("Tool = version %d (%v), want %d", tool.Version, ok, tt.wantVersion)
			}
			if err := tool.ValidateArguments(map[string]any{"to": "bob"}); (err == nil) != tt.wantValidArg {
				t.Errorf("validate {to: bob} against version %d: %v", tool.Version, err)
			}
			if !slices.Equal(tool.Approved, []string{"sha256:01", "sha256:02"}) {
				t.Errorf("Approved = %v, want both versions' hashes", tool.Approved)
			}
			// Version 2's callers fit version 1's definition; not the
			// other way round (version 2 requires an amount).
			want := map[int64][]string{1: {"sha256:01"}, 2: {"sha256:02", "sha256:01"}}[tool.Version]
			if !slices.Equal(tool.Compatible, want) {
				t.Errorf("Compatible = %v, want %v", tool.Compatible, want)
			}
			if got := c.Tools(); len(got) != 2 || got[1].Version != 2 {
				t.Errorf("Tools() = %v, want the default versions", got)
			}
		})
	}
}

func TestToolVersionDeprecation(t *testing.T) {
	s := versionedPay(&configv1.ToolAssignment{Version: 1, Team: "payments"})
	since, sunset := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	v1 := s.ToolPins[1].Versions[0]
	v1.DeprecateTime, v1.SunsetTime, v1.DeprecationMessage = timestamppb.New(since), timestamppb.New(sunset), "use v2"
	c := configtest.Compile(t, s)
	tool, _ := c.Tool(configtest.PayAction, &configv1.Agent{Meta: &configv1.ResourceMeta{Name: authztest.Payer}, Team: "payments"})
	d := tool.Deprecation
	if tool.Version != 1 || d == nil || !d.Since.Equal(since) || !d.Sunset.Equal(sunset) || d.Message != "use v2" || d.Replacement != 2 {
		t.Fatalf("version %d deprecation %+v", tool.Version, d)
	}
	if d.Retired(sunset.Add(-time.Second)) || !d.Retired(sunset) {
		t.Error("Retired: want false before the sunset and true from it")
	}
	if def, _ := c.Tool(configtest.PayAction, nil); def.Deprecation != nil {
		t.Errorf("the default version 2 carries a deprecation: %+v", def.Deprecation)
	}
}
