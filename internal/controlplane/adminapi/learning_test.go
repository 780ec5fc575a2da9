package adminapi_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestLearningAPI(t *testing.T) {
	n, _ := accessFixture(t)
	auditor, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
	if _, err := n.lists.CreateValueList(ctx(t), req(n.admin, &adminv1.CreateValueListRequest{ValueList: &configv1.ValueList{Meta: &configv1.ResourceMeta{Name: "payees"}}})); err != nil {
		t.Fatal(err)
	}
	agentScope := configv1.LearningScope_LEARNING_SCOPE_AGENT
	learn := func(token, name, tool, arg string, history time.Duration) (*configv1.ListLearning, error) {
		r := &adminv1.SetLearningRequest{Name: name, Tool: tool, Argument: arg, Scope: agentScope}
		if history != 0 {
			r.FromHistory = durationpb.New(history)
		}
		res, err := n.lists.SetLearning(ctx(t), req(token, r))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetLearning(), nil
	}

	t.Run("refusals say what to do", func(t *testing.T) {
		_, err := learn(auditor, "payees", "pay__send", "to", 0)
		wantCode(t, err, connect.CodePermissionDenied)
		_, err = learn(n.admin, "ghost", "pay__send", "to", 0)
		wantCode(t, err, connect.CodeNotFound, "gwctl valuelist create ghost")
		_, err = learn(n.admin, "payees", "pay__nope", "to", 0)
		wantCode(t, err, connect.CodeFailedPrecondition, `no pinned tool is called "pay__nope"`)
		_, err = learn(n.admin, "payees", "pay__send", "payee", 0)
		wantCode(t, err, connect.CodeInvalidArgument, `has no argument "payee"`)
		_, err = learn(n.admin, "payees", "pay__send", "amount", 0)
		wantCode(t, err, connect.CodeInvalidArgument, "is not a string")
		_, err = learn(n.admin, "payees", "pay__send", "to", -time.Hour)
		wantCode(t, err, connect.CodeInvalidArgument, "from_history")
	})

	l, err := learn(n.admin, "payees", "pay__send", "to", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !l.GetSeeded() || l.GetGeneration() != 1 {
		t.Fatalf("learning %v", l)
	}
	again, err := learn(n.admin, "payees", "pay__send", "to", 24*time.Hour)
	if err != nil || again.GetGeneration() != 1 || again.GetSeedFrom() != nil {
		t.Fatalf("learning the same again: %v, %v; want it unchanged", again, err)
	}

	approve := func(r *adminv1.ApproveValuesRequest) (*adminv1.ApproveValuesResponse, error) {
		res, err := n.lists.ApproveValues(ctx(t), req(n.admin, r))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	t.Run("approve", func(t *testing.T) {
		res, err := approve(&adminv1.ApproveValuesRequest{Name: "payees", Values: []string{"acme", "acme", "globex"}, Agent: "payer"})
		if err != nil {
			t.Fatal(err)
		}
		if res.GetScope() != "agent:payer" || !slices.Equal(res.GetValues(), []string{"acme", "globex"}) {
			t.Fatalf("approved %v", res)
		}
		got, err := n.lists.GetValueList(ctx(t), req(auditor, &adminv1.GetValueListRequest{Name: "payees"}))
		if err != nil {
			t.Fatal(err)
		}
		if sets := got.Msg.GetLearning().GetSets(); len(sets) != 1 || !slices.Equal(sets[0].GetValues(), []string{"acme", "globex"}) {
			t.Fatalf("sets %v", sets)
		}
		_, err = approve(&adminv1.ApproveValuesRequest{Name: "payees", Values: []string{"x"}, Team: "payments"})
		wantCode(t, err, connect.CodeInvalidArgument, "per agent")
		_, err = approve(&adminv1.ApproveValuesRequest{Name: "payees", Values: []string{"x"}, Agent: "payer", Global: true})
		wantCode(t, err, connect.CodeInvalidArgument, "exactly one scope")
		_, err = approve(&adminv1.ApproveValuesRequest{RecordId: "not-a-record"})
		wantCode(t, err, connect.CodeInvalidArgument, "<dataplane>/<sequence>")
		_, err = approve(&adminv1.ApproveValuesRequest{RecordId: "dp9/12"})
		wantCode(t, err, connect.CodeNotFound, "not in this node's store")
		_, err = approve(&adminv1.ApproveValuesRequest{RecordId: "dp9/12", Values: []string{"x"}})
		wantCode(t, err, connect.CodeInvalidArgument, "give no values")
	})
	t.Run("forget", func(t *testing.T) {
		res, err := n.lists.ForgetValues(ctx(t), req(n.admin, &adminv1.ForgetValuesRequest{Name: "payees", Values: []string{"acme"}, Agent: "payer"}))
		if err != nil {
			t.Fatal(err)
		}
		if sets := res.Msg.GetLearning().GetSets(); len(sets) != 1 || !slices.Equal(sets[0].GetValues(), []string{"globex"}) {
			t.Fatalf("sets %v", sets)
		}
	})
	t.Run("a list that learns is kept", func(t *testing.T) {
		_, err := n.lists.DeleteValueList(ctx(t), req(n.admin, &adminv1.DeleteValueListRequest{Name: "payees"}))
		wantCode(t, err, connect.CodeFailedPrecondition, "gwctl valuelist unlearn payees")
		if _, err := n.lists.StopLearning(ctx(t), req(n.admin, &adminv1.StopLearningRequest{Name: "payees"})); err != nil {
			t.Fatal(err)
		}
		_, err = n.lists.StopLearning(ctx(t), req(n.admin, &adminv1.StopLearningRequest{Name: "payees"}))
		wantCode(t, err, connect.CodeNotFound, "does not learn")
	})
	t.Run("seeding from history finishes", func(t *testing.T) {
		l, err := learn(n.admin, "payees", "pay__send", "to", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !l.GetSeeded() {
			if time.Now().After(deadline) {
				t.Fatalf("not seeded: %v", l)
			}
			<-time.After(50 * time.Millisecond) // the leader's consumer seeds it
			got, err := n.lists.GetValueList(ctx(t), req(auditor, &adminv1.GetValueListRequest{Name: "payees"}))
			if err != nil {
				t.Fatal(err)
			}
			l = got.Msg.GetLearning()
		}
	})
}

func TestAlertAPI(t *testing.T) {
	n := startNode(t)
	alerts := adminv1connect.NewAlertServiceClient(n.hc, n.base)
	audit := auditv1connect.NewAuditServiceClient(n.hc, n.base)
	for name, host := range map[string]string{"hooks-key": "hooks.example.com", "local-key": "127.0.0.1"} {
		if _, err := n.secrets.SetSecret(ctx(t), req(n.admin, &adminv1.SetSecretRequest{Name: name, Value: []byte("k"), Hosts: []string{host}})); err != nil {
			t.Fatal(err)
		}
	}
	rule := func(url, secret string) *configv1.AlertRule {
		return &configv1.AlertRule{
			Meta:    &configv1.ResourceMeta{Name: "sec"},
			Match:   []*configv1.AlertMatch{{Kind: &configv1.AlertMatch_PolicyDeny{PolicyDeny: &configv1.PolicyDenyMatch{Tag: "security"}}}},
			Webhook: &configv1.AlertWebhook{Url: url, Format: configv1.AlertFormat_ALERT_FORMAT_GENERIC, SigningSecret: secret},
		}
	}
	tests := []struct {
		name  string
		rule  *configv1.AlertRule
		code  connect.Code
		frags []string
	}{
		{"metadata address", rule("https://169.254.169.254/hook", "hooks-key"), connect.CodeInvalidArgument, []string{"webhook.url"}},
		{"plain http off loopback", rule("http://hooks.example.com/hook", "hooks-key"), connect.CodeInvalidArgument, []string{"use https"}},
		{"secret bound elsewhere", rule("http://127.0.0.1:9/hook", "hooks-key"), connect.CodeFailedPrecondition, []string{"not bound to the webhook's host"}},
		{"no events", &configv1.AlertRule{Meta: &configv1.ResourceMeta{Name: "sec"}, Webhook: rule("http://127.0.0.1:9/hook", "local-key").Webhook}, connect.CodeInvalidArgument, []string{"at least one event"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := alerts.CreateAlertRule(ctx(t), req(n.admin, &adminv1.CreateAlertRuleRequest{Rule: tt.rule}))
			wantCode(t, err, tt.code, tt.frags...)
		})
	}
	if _, err := alerts.CreateAlertRule(ctx(t), req(n.admin, &adminv1.CreateAlertRuleRequest{Rule: rule("http://127.0.0.1:9/hook", "local-key")})); err != nil {
		t.Fatal(err)
	}
	_, err := n.secrets.DeleteSecret(ctx(t), req(n.admin, &adminv1.DeleteSecretRequest{Name: "local-key"}))
	wantCode(t, err, connect.CodeFailedPrecondition, `alert rule "sec"`)
	if res, err := alerts.ListAlerts(ctx(t), req(n.admin, &adminv1.ListAlertsRequest{})); err != nil || len(res.Msg.GetAlerts()) != 0 {
		t.Fatalf("outbox %v, %v", res, err)
	}
	// The leader's consumers make their cursors once it runs.
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := audit.ListConsumers(ctx(t), req(n.admin, &auditv1.ListConsumersRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range res.Msg.GetConsumers() {
			names = append(names, c.GetName())
		}
		if slices.Equal(names, []string{"alert", "budget", "learn"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers %v", names)
		}
		<-time.After(50 * time.Millisecond) // the leader starts its consumers
	}
	_, err = audit.Query(ctx(t), req(n.admin, &auditv1.QueryRequest{RecordId: fmt.Sprintf("%s/%d", "control-plane", 1)}))
	if err != nil {
		t.Fatalf("query the control plane's first record: %v", err)
	}
}
