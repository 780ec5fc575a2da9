package stages_test

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

func TestGate(t *testing.T) {
	const (
		normal   = configsyncv1.Mode_MODE_NORMAL
		degraded = configsyncv1.Mode_MODE_DEGRADED
		stale    = configsyncv1.Mode_MODE_STALE
		starting = configsyncv1.Mode_MODE_STARTING
	)
	frozen := func() *fakeConfig { f := newFake(); f.frozen, f.reason = true, "incident 42"; return f }
	tests := []struct {
		name        string
		mode        configsyncv1.Mode
		config      pipeline.Config
		action      string
		refused     *pipeline.Refusal
		wantReason  pipeline.Reason
		wantMessage string // substring
	}{
		{name: "refused by its endpoint", mode: normal, config: newFake(), action: readTool.Action,
			refused:    pipeline.Refuse(pipeline.ReasonOriginNotAllowed, "origin https://evil.example is not allowed"),
			wantReason: pipeline.ReasonOriginNotAllowed, wantMessage: "evil.example"},
		{name: "normal mutating", mode: normal, config: newFake(), action: writeTool.Action},
		{name: "normal read-only", mode: normal, config: newFake(), action: readTool.Action},
		{name: "starting", mode: starting, config: nil, action: readTool.Action,
			wantReason: pipeline.ReasonNoConfig, wantMessage: "the data plane has no configuration yet; retry shortly"},
		{name: "normal without configuration", mode: normal, config: nil, action: readTool.Action, wantReason: pipeline.ReasonNoConfig},
		{name: "stale refuses even read-only", mode: stale, config: newFake(), action: readTool.Action,
			wantReason: pipeline.ReasonStale, wantMessage: "older than --max-stale"},
		{name: "unknown tool", mode: normal, config: newFake(), action: "up__nope",
			wantReason: pipeline.ReasonUnknownTool, wantMessage: `"up__nope"`},
		{name: "degraded read-only served", mode: degraded, config: newFake(), action: readTool.Action},
		{name: "degraded mutating refused", mode: degraded, config: newFake(), action: writeTool.Action,
			wantReason: pipeline.ReasonDegraded, wantMessage: "only read-only tools are served"},
		{name: "frozen mutating refused", mode: normal, config: frozen(), action: writeTool.Action,
			wantReason: pipeline.ReasonFrozen, wantMessage: "incident 42"},
		{name: "frozen read-only served", mode: normal, config: frozen(), action: readTool.Action},
		{name: "mode not set", mode: configsyncv1.Mode_MODE_UNSPECIFIED, config: newFake(), action: readTool.Action,
			wantReason: pipeline.ReasonInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := fakeCall(tt.config, tt.action)
			call.Mode, call.Refused = tt.mode, tt.refused
			term := &terminal{}
			_, err := stages.Gate{}.Handle(context.Background(), call, term.handle)
			msg := wantRefusal(t, err, tt.wantReason)
			if term.reached != (tt.wantReason == "") {
				t.Errorf("next reached = %v", term.reached)
			}
			if !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", msg, tt.wantMessage)
			}
			if tt.wantReason == "" && call.Target.Tool.Action != tt.action {
				t.Errorf("call.Target = %+v, want the tool of %q", call.Target, tt.action)
			}
		})
	}
}
