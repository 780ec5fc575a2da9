package alerting_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/alerting"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

var t0 = time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)

func deny(seq uint64, policies ...string) *auditv1.Record {
	return &auditv1.Record{
		Time: timestamppb.New(t0), Dataplane: "dp1", Sequence: seq, Kind: auditv1.EventKind_EVENT_KIND_CALL,
		Agent: "billing-bot", Upstream: "pay", Tool: "send", Decision: "deny", Outcome: "refused", Reason: "denied", Policies: policies,
	}
}

// namedAsAgents is r as records name tools now: tool as agents call it,
// target_own as the upstream does (deny and quarantined make records of
// the shape written before records kept both names).
func namedAsAgents(r *auditv1.Record) *auditv1.Record {
	r.Tool, r.TargetOwn = r.GetUpstream()+"__"+r.GetTool(), r.GetTool()
	return r
}

func quarantined(seq uint64, at time.Time) *auditv1.Record {
	return &auditv1.Record{
		Time: timestamppb.New(at), Dataplane: "dp1", Sequence: seq, Kind: auditv1.EventKind_EVENT_KIND_CALL,
		Agent: "billing-bot", Upstream: "pay", Tool: "send", Outcome: "refused", Reason: "quarantined",
	}
}

// rollback is the control plane's record of a rollout's change: a
// rollback by the controller (automatic) or an operator, or another
// action; errorCode set for a refused change.
func rollback(seq uint64, action string, automatic bool, errorCode string) *auditv1.Record {
	return &auditv1.Record{
		Time: timestamppb.New(t0), Dataplane: auditstore.ControlPlane, Sequence: seq, Kind: auditv1.EventKind_EVENT_KIND_ROLLOUT,
		Detail: &auditv1.Record_RolloutEvent{RolloutEvent: &auditv1.RolloutEvent{
			Write:   &auditv1.AdminWrite{Op: "rollout_" + action, ResourceKind: "rollout", ResourceName: "payments-r1", TokenId: "node:n1", ErrorCode: errorCode},
			Rollout: "payments-r1", PolicySet: "payments", Action: action, FromStage: "canary", ToStage: "rolled_back",
			Reason: "gate deny_increase>1% breached", Automatic: automatic,
		}},
	}
}

func rule(name string, match ...*configv1.AlertMatch) *configv1.AlertRule {
	r := statetest.AlertRule(name, "", "https://hooks.example.com/in", "hooks")
	r.Match = match
	return r
}

func onDeny(tag string) *configv1.AlertMatch {
	return &configv1.AlertMatch{Kind: &configv1.AlertMatch_PolicyDeny{PolicyDeny: &configv1.PolicyDenyMatch{Tag: tag}}}
}

var (
	onQuarantine = &configv1.AlertMatch{Kind: &configv1.AlertMatch_Quarantine{Quarantine: &configv1.QuarantineMatch{}}}
	onRollback   = &configv1.AlertMatch{Kind: &configv1.AlertMatch_RolloutRollback{RolloutRollback: &configv1.RolloutRollbackMatch{}}}
)

// TestEventsAndMatches: what each rule kind fires on, and what it does not.
func TestEventsAndMatches(t *testing.T) {
	tags := map[string]string{"payments/new-payee": "security", "payments/limits": "finance"}
	action := func(up, tool string) string { return up + "__" + tool }
	allowed := deny(9)
	allowed.Decision, allowed.Outcome, allowed.Reason = "allow", "ok", ""
	tests := []struct {
		name   string
		record *auditv1.Record
		rule   *configv1.AlertRule
		want   bool
	}{
		{"deny by a tagged policy", deny(1, "payments/new-payee"), rule("r", onDeny("security")), true},
		{"deny by a tagged policy, tool named as agents do", namedAsAgents(deny(1, "payments/new-payee")), rule("r", onDeny("security")), true},
		{"deny by a policy with another tag", deny(1, "payments/limits"), rule("r", onDeny("security")), false},
		{"deny by any tagged policy", deny(1, "payments/limits"), rule("r", onDeny("")), true},
		{"deny by an untagged policy", deny(1, "payments/plain"), rule("r", onDeny("")), false},
		{"default deny (no policy)", deny(1), rule("r", onDeny("")), false},
		{"one of several determining policies tagged", deny(1, "payments/plain", "payments/new-payee"), rule("r", onDeny("security")), true},
		{"an allowed call", allowed, rule("r", onDeny("")), false},
		{"quarantine", quarantined(1, t0), rule("r", onQuarantine), true},
		{"quarantine, rule on denials", quarantined(1, t0), rule("r", onDeny("")), false},
		{"automatic rollback", rollback(1, "rollback", true, ""), rule("r", onRollback), true},
		{"automatic rollback, rule on denials", rollback(1, "rollback", true, ""), rule("r", onDeny("")), false},
		{"an operator's rollback", rollback(1, "rollback", false, ""), rule("r", onRollback), false},
		{"refused rollback", rollback(1, "rollback", true, "aborted"), rule("r", onRollback), false},
		{"automatic promotion", rollback(1, "promote", true, ""), rule("r", onRollback), false},
		{"a data plane's record claiming a rollback", func() *auditv1.Record {
			r := rollback(1, "rollback", true, "")
			r.Dataplane = "dp1"
			return r
		}(), rule("r", onRollback), false},
		{"a rule with several matches", quarantined(1, t0), rule("r", onDeny("security"), onQuarantine), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok := alerting.Event(tt.record, tags, action)
			got := ok && alerting.Matches(tt.rule, ev)
			if got != tt.want {
				t.Fatalf("fires = %v, want %v (event %v)", got, tt.want, ev)
			}
		})
	}
}

// TestAlertNames: one event queues one alert per rule (the same name
// whoever consumes it), and quarantines of a tool fold per hour.
func TestAlertNames(t *testing.T) {
	tags := map[string]string{"p/x": "security"}
	action := func(up, tool string) string { return up + "__" + tool }
	name := func(r *configv1.AlertRule, rec *auditv1.Record) string {
		ev, ok := alerting.Event(rec, tags, action)
		if !ok {
			t.Fatal("no event")
		}
		return alerting.NewAlert(r, rec, ev).GetMeta().GetName()
	}
	a, b := rule("a", onDeny(""), onQuarantine), rule("b", onDeny(""))
	first, again := deny(1, "p/x"), deny(1, "p/x")
	if name(a, first) != name(a, again) {
		t.Fatal("the same event named two alerts")
	}
	if name(a, deny(1, "p/x")) == name(b, deny(1, "p/x")) || name(a, deny(1, "p/x")) == name(a, deny(2, "p/x")) {
		t.Fatal("different rules or events share an alert")
	}
	if name(a, quarantined(1, t0)) != name(a, quarantined(2, t0.Add(20*time.Minute))) {
		t.Fatal("quarantines of one tool within the hour did not fold")
	}
	if name(a, quarantined(1, t0)) == name(a, quarantined(2, t0.Add(time.Hour))) {
		t.Fatal("quarantines an hour apart folded")
	}
	for _, r := range []*auditv1.Record{deny(7, "p/x"), namedAsAgents(deny(7, "p/x"))} {
		if got := mustEvent(t, r, tags, action).GetTarget(); got != "pay__send" {
			t.Fatalf("the event of %v names target %q, want pay__send", r, got)
		}
	}
	al := alerting.NewAlert(a, deny(7, "p/x"), mustEvent(t, deny(7, "p/x"), tags, action))
	if al.GetRecordId() != "dp1/7" || al.GetRule() != "a" || !strings.Contains(al.GetReason(), "pay__send") || !strings.Contains(al.GetReason(), "p/x") {
		t.Fatalf("alert %v", al)
	}
	rb := rollback(3, "rollback", true, "")
	al = alerting.NewAlert(rule("c", onRollback), rb, mustEvent(t, rb, tags, action))
	if al.GetRecordId() != auditstore.ControlPlane+"/3" || al.GetEvent().GetTarget() != "policy_set/payments" ||
		!strings.Contains(al.GetReason(), "payments-r1") || !strings.Contains(al.GetReason(), "deny_increase>1% breached") {
		t.Fatalf("rollback alert %v", al)
	}
}

func mustEvent(t *testing.T, r *auditv1.Record, tags map[string]string, action func(string, string) string) *configv1.AlertEvent {
	t.Helper()
	ev, ok := alerting.Event(r, tags, action)
	if !ok {
		t.Fatal("no event")
	}
	return ev
}

// TestConsumeReadsAnnotationsFromPolicySets: the consumer finds @alert
// tags in the enabled policy sets, queues an alert per enabled rule, and
// none for a disabled rule.
func TestConsumeReadsAnnotationsFromPolicySets(t *testing.T) {
	hooks := statetest.Secret("hooks")
	hooks.Hosts = []string{"hooks.example.com"}
	disabled := rule("off", onDeny(""))
	disabled.Disabled = true
	src := "@id(\"new-payee\")\n@alert(\"security\")\nforbid(principal, action in Action::\"call_tool\", resource) when { false };\n" +
		"@id(\"plain\")\nforbid(principal, action in Action::\"call_tool\", resource) when { false };\n"
	st := statetest.Run(t, state.New(), 1, []statetest.Step{
		{Name: "bootstrap", Cmd: statetest.Bootstrap()},
		{Name: "v2", Cmd: statetest.Update(statetest.NodeVersion("n1", 2))},
		{Name: "upstream", Cmd: statetest.Create(statetest.Upstream("pay", ""))},
		{Name: "secret", Cmd: statetest.Create(hooks)},
		{Name: "rule", Cmd: statetest.Create(rule("sec", onDeny("security")))},
		{Name: "disabled rule", Cmd: statetest.Create(disabled)},
		{Name: "policies", Cmd: statetest.Create(statetest.PolicySet("payments", src))},
	})
	c := alerting.New()
	out := &fsmv1.ConsumeAudit{}
	recs := []*auditv1.Record{deny(1, "payments/new-payee"), deny(2, "payments/plain"), deny(3)}
	if err := c.Consume(context.Background(), &auditconsumer.Batch{State: st, Records: recs, Out: out}); err != nil {
		t.Fatal(err)
	}
	if len(out.GetAlerts()) != 1 {
		t.Fatalf("queued %v", out.GetAlerts())
	}
	a := out.GetAlerts()[0]
	if a.GetRule() != "sec" || a.GetRecordId() != "dp1/1" || !slices.Equal(a.GetEvent().GetTags(), []string{"security"}) ||
		a.GetEvent().GetTarget() != "pay__send" || !slices.Equal(a.GetEvent().GetPolicies(), []string{"payments/new-payee"}) {
		t.Fatalf("alert %v", a)
	}
	if c.Pending(st) {
		t.Fatal("the alert consumer has work without records")
	}
}
