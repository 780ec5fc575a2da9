package adminapi_test

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// rolloutNode is a node with upstream pay, tool send (an integer amount),
// agent bot and policy set "limits" at version 1 (the amount cap).
func rolloutNode(t *testing.T) (*node, adminv1connect.RolloutServiceClient) {
	t.Helper()
	n := startNode(t)
	if _, err := n.upstreams.CreateUpstream(ctx(t), req(n.admin, &adminv1.CreateUpstreamRequest{Upstream: &configv1.Upstream{
		Meta: &configv1.ResourceMeta{Name: "pay"}, Protocol: configv1.Protocol_PROTOCOL_MCP, Url: "http://127.0.0.1:9/mcp",
	}})); err != nil {
		t.Fatal(err)
	}
	def := []byte(`{"name":"send","inputSchema":{"type":"object","properties":{"amount":{"type":"integer"}},"required":["amount"]}}`)
	if _, err := n.tools.PinTool(ctx(t), req(n.admin, &adminv1.PinToolRequest{Upstream: "pay", Tool: "send", Definition: def, Class: configv1.ToolClass_TOOL_CLASS_MUTATING})); err != nil {
		t.Fatal(err)
	}
	if _, err := n.agents.CreateAgent(ctx(t), req(n.admin, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: "bot"}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "limits", Source: permitAll + amountPolicy("pay__send"), Message: "first"})); err != nil {
		t.Fatal(err)
	}
	return n, adminv1connect.NewRolloutServiceClient(n.hc, n.base)
}

func TestStartRollout(t *testing.T) {
	n, rollouts := rolloutNode(t)
	strict := "@id(\"cap\")\nforbid(principal, action == Action::\"pay__send\", resource)\nwhen { context.arguments.amount > 100 };\n" + permitAll
	start := func(m *adminv1.StartRolloutRequest, kv ...string) (*connect.Response[adminv1.StartRolloutResponse], error) {
		if m.PolicySet == "" {
			m.PolicySet = "limits"
		}
		return rollouts.StartRollout(ctx(t), req(n.admin, m, kv...))
	}
	_, err := start(&adminv1.StartRolloutRequest{Source: `permit(principal, action == Action::"pay__nope", resource);`})
	wantCode(t, err, connect.CodeInvalidArgument, "the candidate does not validate", "limits.cedar:1:1")
	_, err = start(&adminv1.StartRolloutRequest{Source: strict, Gates: []string{"errors>1"}})
	wantCode(t, err, connect.CodeInvalidArgument, "--auto-rollback", "unknown metric")
	_, err = start(&adminv1.StartRolloutRequest{PolicySet: "nope", Source: strict})
	wantCode(t, err, connect.CodeNotFound, `policy set "nope" does not exist`)

	// Stored cases the candidate fails refuse the rollout, naming them.
	cases := []*configv1.PolicyTestCase{
		{Name: "small", Agent: "bot", Tool: "pay__send", ArgumentsJson: `{"amount":50}`, Expect: "allow"},
		{Name: "medium", Agent: "bot", Tool: "pay__send", ArgumentsJson: `{"amount":300}`, Expect: "allow"},
	}
	if _, err := n.policies.SetPolicyTests(ctx(t), req(n.admin, &adminv1.SetPolicyTestsRequest{Name: "limits", Cases: cases})); err != nil {
		t.Fatal(err)
	}
	_, err = start(&adminv1.StartRolloutRequest{Source: strict, Shadow: durationpb.New(time.Hour)})
	wantCode(t, err, connect.CodeFailedPrecondition, "fails 1 of policy set \"limits\"'s 2 stored test cases", "medium: expected allow, got deny")

	cases[1].Expect = "deny"
	if _, err := n.policies.SetPolicyTests(ctx(t), req(n.admin, &adminv1.SetPolicyTestsRequest{Name: "limits", Cases: cases})); err != nil {
		t.Fatal(err)
	}
	m := &adminv1.StartRolloutRequest{Source: strict, Shadow: durationpb.New(time.Hour), CanaryBasisPoints: []uint32{2500, 5000}, Step: durationpb.New(time.Minute),
		Gates: []string{"Deny_Increase > 1 %"}, Message: "tighten the cap"}
	res, err := start(m, "Portcullis-Request-Id", "start-1")
	if err != nil {
		t.Fatal(err)
	}
	ro := res.Msg.GetRollout()
	if !strings.HasPrefix(ro.GetMeta().GetName(), "limits-") || ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_SHADOW ||
		ro.GetTestsPassed() != 2 || ro.GetBaseVersion() != 1 || ro.GetPlan().GetGates()[0] != "deny_increase>1%" {
		t.Fatalf("rollout %v", ro)
	}
	again, err := start(m, "Portcullis-Request-Id", "start-1")
	if err != nil || again.Msg.GetRollout().GetMeta().GetName() != ro.GetMeta().GetName() {
		t.Fatalf("a retried start: %v, %v; want the same rollout", again, err)
	}
	_, err = start(&adminv1.StartRolloutRequest{Source: permitAll})
	wantCode(t, err, connect.CodeFailedPrecondition, "one rollout runs at a time")
	_, err = n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "limits", Source: permitAll}))
	wantCode(t, err, connect.CodeFailedPrecondition, "is in rollout "+ro.GetMeta().GetName())
	_, err = n.policies.RollbackPolicySet(ctx(t), req(n.admin, &adminv1.RollbackPolicySetRequest{Name: "limits"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "gwctl rollout rollback")

	auditor, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
	_, err = rollouts.StartRollout(ctx(t), req(auditor, &adminv1.StartRolloutRequest{PolicySet: "limits", Source: permitAll}))
	wantCode(t, err, connect.CodePermissionDenied)
	for _, name := range []string{"", "limits", ro.GetMeta().GetName()} {
		got, err := rollouts.GetRollout(ctx(t), req(auditor, &adminv1.GetRolloutRequest{Name: name}))
		if err != nil || got.Msg.GetRollout().GetMeta().GetName() != ro.GetMeta().GetName() || got.Msg.GetStatus().GetNext() == "" {
			t.Fatalf("GetRollout(%q) = %v, %v", name, got, err)
		}
	}
	list, err := rollouts.ListRollouts(ctx(t), req(auditor, &adminv1.ListRolloutsRequest{PolicySet: "limits"}))
	if err != nil || len(list.Msg.GetRollouts()) != 1 {
		t.Fatalf("ListRollouts = %v, %v", list, err)
	}

	// An operator moves it on; a change decided on a stale view is refused
	// by the state machine, and a finished rollout stays finished.
	for _, step := range []struct {
		action adminv1.RolloutAction
		stage  configv1.RolloutStage
	}{
		{adminv1.RolloutAction_ROLLOUT_ACTION_PROMOTE, configv1.RolloutStage_ROLLOUT_STAGE_CANARY},
		{adminv1.RolloutAction_ROLLOUT_ACTION_PAUSE, configv1.RolloutStage_ROLLOUT_STAGE_CANARY},
		{adminv1.RolloutAction_ROLLOUT_ACTION_ABORT, configv1.RolloutStage_ROLLOUT_STAGE_ABORTED},
	} {
		got, err := rollouts.ChangeRollout(ctx(t), req(n.admin, &adminv1.ChangeRolloutRequest{Name: "limits", Action: step.action, Reason: "test"}))
		if err != nil || got.Msg.GetRollout().GetStage() != step.stage {
			t.Fatalf("%v: %v, %v; want %v", step.action, got, err, step.stage)
		}
	}
	_, err = rollouts.ChangeRollout(ctx(t), req(n.admin, &adminv1.ChangeRolloutRequest{Name: ro.GetMeta().GetName(), Action: adminv1.RolloutAction_ROLLOUT_ACTION_PROMOTE}))
	wantCode(t, err, connect.CodeFailedPrecondition, "is over (aborted)")
	_, err = rollouts.GetRollout(ctx(t), req(n.admin, &adminv1.GetRolloutRequest{}))
	wantCode(t, err, connect.CodeNotFound, "no rollout is in progress")
}

func TestPolicyVersionsAndRollback(t *testing.T) {
	n, _ := rolloutNode(t)
	if _, err := n.policies.ApplyPolicySet(ctx(t), req(n.admin, &adminv1.ApplyPolicySetRequest{Name: "limits", Source: permitAll, Message: "second"})); err != nil {
		t.Fatal(err)
	}
	list, err := n.policies.ListPolicyVersions(ctx(t), req(n.admin, &adminv1.ListPolicyVersionsRequest{Name: "limits"}))
	if err != nil {
		t.Fatal(err)
	}
	vs := list.Msg.GetVersions()
	if len(vs) != 2 || list.Msg.GetActiveVersion() != 2 || vs[0].GetMessage() != "first" || vs[1].GetMessage() != "second" || vs[1].GetSource() != "" {
		t.Fatalf("versions %v (active %d): want 1 and 2 with their messages, no sources", vs, list.Msg.GetActiveVersion())
	}
	one, err := n.policies.GetPolicyVersion(ctx(t), req(n.admin, &adminv1.GetPolicyVersionRequest{Name: "limits", Version: 1}))
	if err != nil || one.Msg.GetVersion().GetSource() != permitAll+amountPolicy("pay__send") {
		t.Fatalf("version 1: %v, %v", one, err)
	}
	_, err = n.policies.GetPolicyVersion(ctx(t), req(n.admin, &adminv1.GetPolicyVersionRequest{Name: "limits", Version: 9}))
	wantCode(t, err, connect.CodeNotFound, "keeps no version 9", "versions 1 to 2")

	back, err := n.policies.RollbackPolicySet(ctx(t), req(n.admin, &adminv1.RollbackPolicySetRequest{Name: "limits"}))
	if err != nil {
		t.Fatal(err)
	}
	ps := back.Msg.GetPolicySet()
	if back.Msg.GetRestored() != 1 || ps.GetVersion() != 3 || ps.GetSource() != permitAll+amountPolicy("pay__send") || ps.GetMessage() != "rollback to version 1" {
		t.Fatalf("rollback: restored %d, set %v", back.Msg.GetRestored(), ps)
	}
	_, err = n.policies.RollbackPolicySet(ctx(t), req(n.admin, &adminv1.RollbackPolicySetRequest{Name: "limits", ToVersion: 3}))
	wantCode(t, err, connect.CodeFailedPrecondition, "active version")
	_, err = n.policies.RollbackPolicySet(ctx(t), req(n.admin, &adminv1.RollbackPolicySetRequest{Name: "limits", ToVersion: 7}))
	wantCode(t, err, connect.CodeNotFound, "keeps no version 7")
}

func TestReplayOverAnEmptyStore(t *testing.T) {
	n, _ := rolloutNode(t)
	res, err := n.policies.ReplayPolicySet(ctx(t), req(n.admin, &adminv1.ReplayPolicySetRequest{Name: "limits", Source: permitAll}))
	if err != nil || res.Msg.GetRecords() != 0 || len(res.Msg.GetDeadPolicies()) != 1 {
		t.Fatalf("replay: %v, %v; want no records and the one permit dead", res, err)
	}
	_, err = n.policies.ReplayPolicySet(ctx(t), req(n.admin, &adminv1.ReplayPolicySetRequest{Name: "limits", Source: "permit(principal, action, resource"}))
	wantCode(t, err, connect.CodeInvalidArgument, "limits.cedar:")
}
