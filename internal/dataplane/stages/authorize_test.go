package stages_test

import (
	"context"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
)

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name        string
		decision    pipeline.Decision
		wantReason  pipeline.Reason
		wantMessage string
	}{
		{name: "allowed", decision: pipeline.Decision{Allowed: true, Policies: []string{"p/allow"}}},
		{name: "forbidden", decision: pipeline.Decision{Policies: []string{"payments/policy1"}},
			wantReason: pipeline.ReasonDenied, wantMessage: "denied by policy payments/policy1"},
		{name: "two forbids", decision: pipeline.Decision{Policies: []string{"a/x", "b/y"}},
			wantReason: pipeline.ReasonDenied, wantMessage: "denied by policy a/x, b/y"},
		{name: "default deny", decision: pipeline.Decision{},
			wantReason: pipeline.ReasonDenied, wantMessage: "no policy permits this call (default deny)"},
		{name: "denied with an error", decision: pipeline.Decision{Errors: []string{"arguments/amount: want integer, got string"}},
			wantReason:  pipeline.ReasonDenied,
			wantMessage: "no policy permits this call (default deny); error: arguments/amount: want integer, got string"},
		{name: "many errors bounded", decision: pipeline.Decision{Errors: []string{"e1", "e2", "e3", "e4"}},
			wantReason:  pipeline.ReasonDenied,
			wantMessage: "no policy permits this call (default deny); error: e1; error: e2; and 2 more errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newFake()
			cfg.decision = tt.decision
			call := fakeCall(cfg, writeTool.Action)
			term := &terminal{}
			_, err := stages.Authorize{}.Handle(context.Background(), call, term.handle)
			msg := wantRefusal(t, err, tt.wantReason)
			if term.reached != (tt.wantReason == "") {
				t.Errorf("next reached = %v", term.reached)
			}
			if msg != tt.wantMessage {
				t.Errorf("message = %q, want %q", msg, tt.wantMessage)
			}
			if call.Decision.Allowed != tt.decision.Allowed || len(call.Decision.Policies) != len(tt.decision.Policies) {
				t.Errorf("call.Decision = %+v, want %+v", call.Decision, tt.decision)
			}
		})
	}
}

func TestAuthorizeWithoutConfig(t *testing.T) {
	term := &terminal{}
	_, err := stages.Authorize{}.Handle(context.Background(), fakeCall(nil, writeTool.Action), term.handle)
	wantRefusal(t, err, pipeline.ReasonNoConfig)
	if term.reached {
		t.Error("next reached without configuration")
	}
}

// TestAuthorizeSessionRequests: a session request is allowed without a
// decision; one that names a target kind (a handshake describing what the
// caller may use) gets the visible targets of that kind, as a list does,
// and one that names none gets nothing.
func TestAuthorizeSessionRequests(t *testing.T) {
	for _, tt := range []struct {
		name string
		kind pipeline.Kind
		want int
	}{
		{"ping", "", 0},
		{"handshake describing tools", pipeline.KindTool, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			call := fakeCall(newFake(), "")
			call.Op, call.Target = pipeline.OpSession, pipeline.Target{Kind: tt.kind}
			term := &terminal{}
			if _, err := (stages.Authorize{}).Handle(context.Background(), call, term.handle); err != nil || !term.reached {
				t.Fatalf("err %v, reached %v", err, term.reached)
			}
			if !call.Decision.Allowed || len(call.Visible) != tt.want {
				t.Errorf("decision %+v, visible %d, want allowed and %d", call.Decision, len(call.Visible), tt.want)
			}
		})
	}
}
