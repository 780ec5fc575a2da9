package stages_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// modelCall is a model call the adapter routed (upstream set) or not.
func modelCall(cfg pipeline.Config, upstream string) *pipeline.Call {
	c := fakeCall(cfg, "openai/gpt-4o")
	c.Protocol, c.Method = "llm", "chat/completions"
	c.Target = pipeline.Target{Kind: pipeline.KindModel, Name: "openai/gpt-4o", Upstream: upstream, Own: "gpt-4o"}
	c.Arguments, c.Payload = nil, []byte(`{"model":"openai/gpt-4o","messages":[{"role":"user","content":"my secret plan"}]}`)
	return c
}

// A model call changes nothing outside the gateway: Gate serves it in
// degraded mode and while frozen, and refuses a model no upstream serves.
func TestGateModels(t *testing.T) {
	frozen := newFake()
	frozen.frozen, frozen.reason = true, "incident"
	tests := []struct {
		name     string
		mode     configsyncv1.Mode
		cfg      *fakeConfig
		upstream string
		want     pipeline.Reason
	}{
		{"normal", configsyncv1.Mode_MODE_NORMAL, newFake(), "openai", ""},
		{"degraded", configsyncv1.Mode_MODE_DEGRADED, newFake(), "openai", ""},
		{"frozen", configsyncv1.Mode_MODE_NORMAL, frozen, "openai", ""},
		{"stale", configsyncv1.Mode_MODE_STALE, newFake(), "openai", pipeline.ReasonStale},
		{"unknown model", configsyncv1.Mode_MODE_NORMAL, newFake(), "", pipeline.ReasonUnknownModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := modelCall(tt.cfg, tt.upstream)
			c.Mode = tt.mode
			term := &terminal{}
			_, err := stages.Gate{}.Handle(context.Background(), c, term.handle)
			wantRefusal(t, err, tt.want)
			if term.reached != (tt.want == "") {
				t.Errorf("next reached = %v", term.reached)
			}
		})
	}
}

// A model call's record keeps its usage, the team, and the prompt and
// completion by size and hash only — never their text.
func TestAuditRecordsUsageNotContent(t *testing.T) {
	rec := &recorder{}
	c := modelCall(newFake(), "openai")
	c.Agent = &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "alice"}, Team: "research"}
	usage := &pipeline.Usage{InputTokens: 120, CachedInputTokens: 20, OutputTokens: 30, ReasoningTokens: 5, Cost: 123_456, Priced: true, Estimated: true, Model: "gpt-4o-2026"}
	digest := &pipeline.Digest{Bytes: 77, SHA256: make([]byte, 32)}
	_, _ = stages.Audit{Writer: rec}.Handle(context.Background(), c, func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		return &pipeline.Result{Usage: usage, Content: digest}, errors.New("the stream broke")
	})
	r := rec.all()[0]
	sum := sha256.Sum256(c.Payload)
	u := r.GetUsage()
	switch {
	case r.GetArgumentsJson() != "":
		t.Errorf("the record keeps the prompt: %q", r.GetArgumentsJson())
	case u.GetInputTokens() != 120 || u.GetCachedInputTokens() != 20 || u.GetOutputTokens() != 30 || u.GetReasoningTokens() != 5 ||
		u.GetCostNanos() != 123_456 || !u.GetPriced() || !u.GetEstimated() || u.GetModel() != "gpt-4o-2026":
		t.Errorf("usage = %v", u)
	case r.GetContent().GetRequestBytes() != int64(len(c.Payload)) || string(r.GetContent().GetRequestSha256()) != string(sum[:]) ||
		r.GetContent().GetResponseBytes() != 77:
		t.Errorf("content = %v", r.GetContent())
	case r.GetTeam() != "research" || r.GetTargetKind() != "model" || r.GetTargetOwn() != "gpt-4o" || r.GetTool() != "openai/gpt-4o" || r.GetOutcome() != "error":
		t.Errorf("record = %v", r)
	}
}
