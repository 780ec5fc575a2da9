package stages_test

import (
	"context"
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline/pipelinetest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

var (
	writeAgent = pipeline.Tool{Kind: pipeline.KindAgent, Upstream: "travel", Name: "agent-card", Class: configv1.ToolClass_TOOL_CLASS_MUTATING, DefinitionHash: "sha256:1"}
	readAgent  = pipeline.Tool{Kind: pipeline.KindAgent, Upstream: "weather", Name: "agent-card", Class: configv1.ToolClass_TOOL_CLASS_READ_ONLY, DefinitionHash: "sha256:2"}
)

// quarantine quarantines the named upstreams.
type quarantine []string

func (q quarantine) Check(_ context.Context, t pipeline.Tool) *pipeline.Refusal {
	if !slices.Contains(q, t.Upstream) {
		return nil
	}
	return pipeline.Refuse(pipeline.ReasonQuarantined, "changed upstream")
}

func (quarantine) Refresh(context.Context, []string) {}

func agentCall(cfg pipeline.Config, op pipeline.Operation, agent string, mode configsyncv1.Mode) *pipeline.Call {
	c := fakeCall(cfg, "")
	c.Protocol, c.Op, c.Target, c.Mode = "a2a", op, pipeline.Target{Kind: pipeline.KindAgent, Name: agent}, mode
	return c
}

// Operations on remote agents: resolved from the pinned card, refused when
// quarantined, and in degraded mode or frozen only what cannot change
// anything is served — reads of tasks always, messages and cancels only
// to agents the operator classified read-only.
func TestGateRemoteAgents(t *testing.T) {
	const (
		normal   = configsyncv1.Mode_MODE_NORMAL
		degraded = configsyncv1.Mode_MODE_DEGRADED
	)
	cfg := &pipelinetest.Config{AgentList: []pipeline.Tool{writeAgent, readAgent}}
	frozen := &pipelinetest.Config{AgentList: cfg.AgentList, IsFrozen: true}
	tests := []struct {
		name   string
		cfg    pipeline.Config
		op     pipeline.Operation
		agent  string
		mode   configsyncv1.Mode
		q      quarantine
		reason pipeline.Reason
	}{
		{"send", cfg, pipeline.OpCall, "travel", normal, nil, ""},
		{"unknown agent", cfg, pipeline.OpCall, "nope", normal, nil, pipeline.ReasonUnknownTool},
		{"degraded send to a mutating agent", cfg, pipeline.OpCall, "travel", degraded, nil, pipeline.ReasonDegraded},
		{"degraded cancel", cfg, pipeline.OpCancel, "travel", degraded, nil, pipeline.ReasonDegraded},
		{"degraded read of a mutating agent's task", cfg, pipeline.OpGet, "travel", degraded, nil, ""},
		{"degraded list of tasks", cfg, pipeline.OpQuery, "travel", degraded, nil, ""},
		{"degraded subscribe", cfg, pipeline.OpSubscribe, "travel", degraded, nil, ""},
		{"degraded send to a read-only agent", cfg, pipeline.OpCall, "weather", degraded, nil, ""},
		{"frozen send", frozen, pipeline.OpCall, "travel", normal, nil, pipeline.ReasonFrozen},
		{"frozen get", frozen, pipeline.OpGet, "travel", normal, nil, ""},
		{"quarantined send", cfg, pipeline.OpCall, "travel", normal, quarantine{"travel"}, pipeline.ReasonQuarantined},
		{"quarantined read", cfg, pipeline.OpGet, "travel", normal, quarantine{"travel"}, pipeline.ReasonQuarantined},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := agentCall(tt.cfg, tt.op, tt.agent, tt.mode)
			if tt.q != nil {
				c.Quarantine = tt.q
			}
			term := &terminal{}
			_, err := stages.Gate{}.Handle(context.Background(), c, term.handle)
			wantRefusal(t, err, tt.reason)
			if tt.reason == "" && (c.Target.Upstream != tt.agent || c.Target.Tool.Kind != pipeline.KindAgent) {
				t.Errorf("target = %+v, want agent %s resolved", c.Target, tt.agent)
			}
		})
	}
}

// A remote agent's card shows the agent (Name "") and its skills; in
// degraded mode a mutating agent's skills drop out (a message would be
// refused) while the agent stays (its tasks can still be read).
func TestAuthorizeListsSkills(t *testing.T) {
	cfg := &pipelinetest.Config{AgentList: []pipeline.Tool{writeAgent}, Skills: []string{"search", "book"}}
	for _, tt := range []struct {
		mode configsyncv1.Mode
		want []string
	}{
		{configsyncv1.Mode_MODE_NORMAL, []string{"", "search", "book"}},
		{configsyncv1.Mode_MODE_DEGRADED, []string{""}},
	} {
		c := agentCall(cfg, pipeline.OpList, "", tt.mode)
		c.Agent, c.Target = alice, pipeline.Target{Kind: pipeline.KindSkill, Upstream: "travel"}
		if _, err := (stages.Authorize{}).Handle(context.Background(), c, (&terminal{}).handle); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range c.Visible {
			got = append(got, v.Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("mode %v: visible %q, want %q", tt.mode, got, tt.want)
		}
	}
}

// The audit record of an operation on a remote agent carries its task
// detail: ids, state, sizes and the streamed events.
func TestAuditRecordsTaskDetail(t *testing.T) {
	rec := &recorder{}
	c := agentCall(&pipelinetest.Config{AgentList: []pipeline.Tool{writeAgent}}, pipeline.OpCall, "travel", configsyncv1.Mode_MODE_NORMAL)
	c.Agent = alice
	c.Message = &pipeline.Message{Skill: "search", Bytes: 12, MetadataBytes: 3}
	term := &terminal{result: &pipeline.Result{Body: []byte(`{"x":1}`), Task: &pipeline.Task{ID: "gw-t", ContextID: "gw-c", State: "TASK_STATE_COMPLETED", Events: 3, EventBytes: 300}}}
	if _, err := (stages.Audit{Writer: rec}).Handle(context.Background(), c, term.handle); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	d := r.GetTask()
	if d.GetTaskId() != "gw-t" || d.GetContextId() != "gw-c" || d.GetState() != "TASK_STATE_COMPLETED" || d.GetSkill() != "search" ||
		d.GetMessageBytes() != 12 || d.GetMetadataBytes() != 3 || d.GetEvents() != 3 || d.GetEventBytes() != 300 {
		t.Errorf("task detail = %v", d)
	}
	if r.GetTargetKind() != "agent" || r.GetTool() != "travel" || r.GetResponseBytes() != 307 {
		t.Errorf("record = %v", r)
	}
	// A refused get still names the task asked for.
	c = agentCall(nil, pipeline.OpGet, "travel", configsyncv1.Mode_MODE_NORMAL)
	c.Agent, c.Target.Item = alice, "gw-other"
	_, _ = (stages.Audit{Writer: rec}).Handle(context.Background(), c, (&terminal{err: pipeline.Refuse(pipeline.ReasonUnknownTask, "no")}).handle)
	r = rec.all()[1]
	if r.GetTask().GetTaskId() != "gw-other" || r.GetReason() != string(pipeline.ReasonUnknownTask) || r.GetOutcome() != "refused" {
		t.Errorf("refused get: %v", r)
	}
}
