package stages_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// deprecatedTool is version 1 of up__read, deprecated with a sunset
// relative to fakeCall's start.
func deprecatedTool(sunsetIn time.Duration, replacement int64) pipeline.Tool {
	t := readTool
	t.Version = 1
	start := fakeCall(nil, "").Start
	t.Deprecation = &pipeline.Deprecation{Since: start.Add(-time.Hour), Sunset: start.Add(sunsetIn), Message: "units arrive in v2", Replacement: replacement}
	return t
}

// TestGateToolVersionSunset: a deprecated version is served until its
// sunset and refused from then on by the call's own clock, whatever the
// mode (a degraded data plane keeps enforcing sunsets), with the version
// to move to.
func TestGateToolVersionSunset(t *testing.T) {
	tests := []struct {
		name       string
		mode       configsyncv1.Mode
		tool       pipeline.Tool
		wantReason pipeline.Reason
		wantText   []string
	}{
		{name: "before the sunset", mode: configsyncv1.Mode_MODE_NORMAL, tool: deprecatedTool(time.Second, 2)},
		{name: "at the sunset", mode: configsyncv1.Mode_MODE_NORMAL, tool: deprecatedTool(0, 2), wantReason: pipeline.ReasonToolVersionRetired,
			wantText: []string{"version 1 of tool up__read was retired at 2025-03-14T12:00:00Z", "units arrive in v2", "version 2 replaces it", "gwctl tool assign --upstream up --tool read --version 2"}},
		{name: "degraded, after the sunset", mode: configsyncv1.Mode_MODE_DEGRADED, tool: deprecatedTool(-time.Hour, 2), wantReason: pipeline.ReasonToolVersionRetired},
		{name: "no replacement", mode: configsyncv1.Mode_MODE_NORMAL, tool: deprecatedTool(-time.Second, 0), wantReason: pipeline.ReasonToolVersionRetired,
			wantText: []string{"no version replaces it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newFake()
			cfg.tools[readTool.Action] = tt.tool
			call := fakeCall(cfg, readTool.Action)
			call.Mode = tt.mode
			term := &terminal{}
			_, err := stages.Gate{}.Handle(context.Background(), call, term.handle)
			msg := wantRefusal(t, err, tt.wantReason)
			for _, want := range tt.wantText {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			// Lists leave out what a call would be refused.
			if r := stages.Admit(context.Background(), call, toolTarget(tt.tool)); (r != nil) != (tt.wantReason != "") {
				t.Errorf("Admit = %v", r)
			}
		})
	}
}

// TestAuditToolVersion: a tool call's record carries the version it was
// validated against, flagged while that version is deprecated.
func TestAuditToolVersion(t *testing.T) {
	tests := []struct {
		name           string
		tool           pipeline.Tool
		op             pipeline.Operation
		err            error
		wantVersion    int64
		wantDeprecated bool
		wantOutcome    string
	}{
		{name: "not deprecated", tool: func() pipeline.Tool { x := writeTool; x.Version = 3; return x }(), op: pipeline.OpCall, wantVersion: 3, wantOutcome: "ok"},
		{name: "deprecated", tool: deprecatedTool(time.Hour, 2), op: pipeline.OpCall, wantVersion: 1, wantDeprecated: true, wantOutcome: "ok"},
		{name: "retired", tool: deprecatedTool(0, 2), op: pipeline.OpCall, err: pipeline.Refuse(pipeline.ReasonToolVersionRetired, "retired"),
			wantVersion: 1, wantOutcome: "refused"},
		{name: "incompatible", tool: deprecatedTool(time.Hour, 2), op: pipeline.OpCall, err: pipeline.Refuse(pipeline.ReasonToolVersionIncompatible, "x"),
			wantVersion: 1, wantDeprecated: true, wantOutcome: "refused"},
		{name: "a list has no version", tool: deprecatedTool(time.Hour, 2), op: pipeline.OpList, wantOutcome: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			call := fakeCall(newFake(), tt.tool.Action)
			call.Agent, call.Op, call.Target = alice, tt.op, toolTarget(tt.tool)
			term := &terminal{err: tt.err}
			_, _ = stages.Audit{Writer: rec}.Handle(context.Background(), call, term.handle)
			rs := rec.all()
			if len(rs) != 1 {
				t.Fatalf("%d records", len(rs))
			}
			r := rs[0]
			if r.GetToolVersion() != tt.wantVersion || r.GetToolDeprecated() != tt.wantDeprecated || r.GetOutcome() != tt.wantOutcome {
				t.Errorf("record version %d deprecated %t outcome %q; want %d %t %q", r.GetToolVersion(), r.GetToolDeprecated(), r.GetOutcome(),
					tt.wantVersion, tt.wantDeprecated, tt.wantOutcome)
			}
		})
	}
}
