package stages_test

import (
	"context"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
)

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name       string
		config     pipeline.Config
		credential string
		wantReason pipeline.Reason
	}{
		{name: "valid key", config: newFake(), credential: goodKey},
		{name: "unknown key", config: newFake(), credential: "pck_0123456789abcdef_bad", wantReason: pipeline.ReasonUnauthenticated},
		{name: "no credential", config: newFake(), credential: "", wantReason: pipeline.ReasonUnauthenticated},
		{name: "no configuration", config: nil, credential: goodKey, wantReason: pipeline.ReasonNoConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := fakeCall(tt.config, readTool.Action)
			call.Credential = tt.credential
			term := &terminal{}
			_, err := stages.Authenticate{}.Handle(context.Background(), call, term.handle)
			msg := wantRefusal(t, err, tt.wantReason)
			if term.reached != (tt.wantReason == "") {
				t.Errorf("next reached = %v", term.reached)
			}
			if tt.wantReason == "" && call.Agent != alice {
				t.Errorf("call.Agent = %v, want alice", call.Agent)
			}
			if tt.wantReason == pipeline.ReasonUnauthenticated && msg != "a valid API key is required: send Authorization: Bearer pck_…" {
				t.Errorf("message = %q", msg)
			}
			if tt.wantReason != "" && call.Agent != nil {
				t.Errorf("call.Agent = %v after a refusal", call.Agent)
			}
		})
	}
}
