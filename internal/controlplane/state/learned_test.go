package state_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// v2 returns the base state with its node at cluster version 2, a value
// list "payees" (own value "globex") that learns per agent from up__send's
// "to", and an alert rule "sec" signing with secret "hooks".
func v2(t testing.TB) *state.State {
	t.Helper()
	hooks := statetest.Secret("hooks")
	hooks.Hosts = []string{"hooks.example.com"}
	s := base(t)
	return statetest.Run(t, s, s.Index()+1, []statetest.Step{
		{Name: "node at version 2", Cmd: statetest.Update(statetest.NodeVersion("n1", 2))},
		{Name: "other node at version 2", Cmd: statetest.Update(statetest.NodeVersion("n2", 2))},
		{Name: "list", Cmd: statetest.Create(statetest.ValueList("payees", "globex"))},
		{Name: "learning", Cmd: statetest.Create(statetest.ListLearning("payees", "up__send", "to", configv1.LearningScope_LEARNING_SCOPE_AGENT))},
		{Name: "secret", Cmd: statetest.Create(hooks)},
		{Name: "rule", Cmd: statetest.Create(statetest.AlertRule("sec", "security", "https://hooks.example.com/in", "hooks"))},
	})
}

func applyNext(s *state.State, cmd *fsmv1.Command) (*state.State, *fsmv1.Result) {
	return state.Apply(s, s.Index()+1, cmd)
}

func mustApply(t *testing.T, s *state.State, cmd *fsmv1.Command) *state.State {
	t.Helper()
	next, res := applyNext(s, cmd)
	if res.GetError() != nil {
		t.Fatalf("apply %s: %v", cmd.GetMethod(), res.GetError())
	}
	return next
}

func learning(t *testing.T, s *state.State, name string) *configv1.ListLearning {
	t.Helper()
	r, ok := s.Get(resource.ListLearning, name)
	if !ok {
		t.Fatalf("no learning %q", name)
	}
	return r.GetListLearning()
}

func setOf(l *configv1.ListLearning, scope string) []string {
	for _, s := range l.GetSets() {
		if s.GetScope() == scope {
			return s.GetValues()
		}
	}
	return nil
}

// TestLearningPutKeepsWhatWasLearned: a put sets what a list learns from;
// what it learned survives a put of the same learning, and a change of
// tool, argument, scope or seed starts the next generation afresh. A put
// never writes sets itself.
func TestLearningPutKeepsWhatWasLearned(t *testing.T) {
	s := v2(t)
	s = mustApply(t, s, statetest.Consume("learn", 0, map[string]uint64{"dp1": 1}))
	s = mustApply(t, s, withChanges(statetest.Consume("learn", 1, map[string]uint64{"dp1": 3}), statetest.Learned("payees", "agent:billing-bot", 1, "acme")))
	l := learning(t, s, "payees")
	if g := l.GetGeneration(); g != 1 || !l.GetSeeded() || !slices.Equal(setOf(l, "agent:billing-bot"), []string{"acme"}) {
		t.Fatalf("after a batch: generation %d, seeded %v, sets %v", g, l.GetSeeded(), l.GetSets())
	}
	seedFrom := timestamppb.New(statetest.Epoch)
	tests := []struct {
		name     string
		change   func(*configv1.ListLearning)
		wantGen  uint64
		wantSets bool
		seeded   bool
	}{
		{name: "same learning, new description", change: func(l *configv1.ListLearning) { l.Meta.Description = "x" }, wantGen: 1, wantSets: true, seeded: true},
		{name: "a put's own sets are ignored", change: func(l *configv1.ListLearning) {
			l.Sets = []*configv1.LearnedSet{{Scope: "agent:mallory", Values: []string{"evil"}}}
		}, wantGen: 1, wantSets: true, seeded: true},
		{name: "other argument", change: func(l *configv1.ListLearning) { l.Argument = "payee" }, wantGen: 2},
		{name: "other scope", change: func(l *configv1.ListLearning) { l.Scope = configv1.LearningScope_LEARNING_SCOPE_GLOBAL }, wantGen: 2},
		{name: "seed from history", change: func(l *configv1.ListLearning) { l.SeedFrom = seedFrom }, wantGen: 2, seeded: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := statetest.ListLearning("payees", "up__send", "to", configv1.LearningScope_LEARNING_SCOPE_AGENT)
			tt.change(in)
			if tt.wantGen == 2 && tt.name != "seed from history" {
				tt.seeded = true
			}
			next := mustApply(t, s, statetest.Update(in))
			got := learning(t, next, "payees")
			if got.GetGeneration() != tt.wantGen || got.GetSeeded() != tt.seeded || (len(got.GetSets()) > 0) != tt.wantSets {
				t.Fatalf("generation %d seeded %v sets %v; want generation %d seeded %v sets %v", got.GetGeneration(), got.GetSeeded(), got.GetSets(), tt.wantGen, tt.seeded, tt.wantSets)
			}
			if tt.wantSets && !slices.Equal(setOf(got, "agent:billing-bot"), []string{"acme"}) {
				t.Fatalf("sets %v", got.GetSets())
			}
		})
	}
}

func withChanges(c *fsmv1.Command, changes ...*fsmv1.LearnedChange) *fsmv1.Command {
	c.GetConsumeAudit().Learned = changes
	return c
}

// TestLearningRules covers the rules around learnings: the list must
// exist and cannot be deleted while it learns; a learning a policy reads
// cannot stop; a policy reading a list that does not learn is refused with
// what to do.
func TestLearningRules(t *testing.T) {
	s := v2(t)
	tests := []struct {
		name     string
		cmd      *fsmv1.Command
		wantCode fsmv1.ErrorCode
		wantMsg  string
	}{
		{name: "learning of a missing list", cmd: statetest.Create(statetest.ListLearning("nope", "up__send", "to", configv1.LearningScope_LEARNING_SCOPE_AGENT)),
			wantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, wantMsg: "gwctl valuelist create nope"},
		{name: "delete of a list that learns", cmd: statetest.Delete(resource.ValueList, "payees"),
			wantCode: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, wantMsg: "gwctl valuelist unlearn payees"},
		{name: "policy reading a list that does not learn", cmd: statetest.Create(statetest.PolicySet("p", statetest.LearnedPolicy("other"))),
			wantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, wantMsg: `value list "other" does not learn`},
		{name: "policy reading the learned list", cmd: statetest.Create(statetest.PolicySet("p", statetest.LearnedPolicy("payees")))},
		{name: "learning without a scope", cmd: statetest.Create(statetest.ListLearning("payees", "up__send", "to", configv1.LearningScope_LEARNING_SCOPE_UNSPECIFIED)),
			wantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, wantMsg: "scope"},
		{name: "learning of a bad argument path", cmd: statetest.Create(statetest.ListLearning("payees", "up__send", "to..x", configv1.LearningScope_LEARNING_SCOPE_AGENT)),
			wantCode: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, wantMsg: "argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res := applyNext(s, tt.cmd)
			if res.GetError().GetCode() != tt.wantCode || !strings.Contains(res.GetError().GetMessage(), tt.wantMsg) {
				t.Fatalf("got %v %q, want %v containing %q", res.GetError().GetCode(), res.GetError().GetMessage(), tt.wantCode, tt.wantMsg)
			}
		})
	}
	t.Run("stop of a learning a policy reads", func(t *testing.T) {
		next := mustApply(t, s, statetest.Create(statetest.PolicySet("p", statetest.LearnedPolicy("payees"))))
		_, res := applyNext(next, statetest.Delete(resource.ListLearning, "payees"))
		if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION || !strings.Contains(res.GetError().GetMessage(), `context.learned["payees"]`) {
			t.Fatalf("got %v", res.GetError())
		}
	})
	t.Run("schema declares context.learned only while a list learns", func(t *testing.T) {
		sch, err := s.CedarSchema()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sch.Learned(), []string{"payees"}) || !strings.Contains(string(sch.Cedar()), "learned") {
			t.Fatalf("learned %v, schema\n%s", sch.Learned(), sch.Cedar())
		}
		sch, err = base(t).CedarSchema()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(sch.Cedar()), "learned") {
			t.Fatalf("a state without learnings declares learned:\n%s", sch.Cedar())
		}
	})
}

// TestChangeLearned: an operator approves values into one scope of the
// learning's kind, forgets them, is refused past the limits, and the
// change is audited with who made it.
func TestChangeLearned(t *testing.T) {
	s := v2(t)
	cmd := statetest.By(statetest.ChangeLearned(statetest.Learned("payees", "agent:billing-bot", 0, "acme", "initech")), opToken, "r-1", 100)
	s, res := applyNext(s, cmd)
	if res.GetError() != nil {
		t.Fatal(res.GetError())
	}
	if got := setOf(learning(t, s, "payees"), "agent:billing-bot"); !slices.Equal(got, []string{"acme", "initech"}) {
		t.Fatalf("set %v", got)
	}
	rec := s.DerivedRecord()
	if rec.GetKind() != auditv1.EventKind_EVENT_KIND_LEARNED || len(rec.GetLearned().GetEntries()) != 2 {
		t.Fatalf("derived record %v", rec)
	}
	if e := rec.GetLearned().GetEntries()[0]; e.GetChange() != "approved" || e.GetTokenId() != opToken || e.GetRequestId() != "r-1" || e.GetRecordId() != "dp1/1" {
		t.Fatalf("entry %v", e)
	}
	if s.ConfigVersion() != s.Index() {
		t.Fatal("an approval did not move the config version")
	}
	forget := statetest.ChangeLearned(&fsmv1.LearnedChange{List: "payees", Scope: "agent:billing-bot", Remove: []string{"acme", "unknown"}})
	s = mustApply(t, s, forget)
	if got := setOf(learning(t, s, "payees"), "agent:billing-bot"); !slices.Equal(got, []string{"initech"}) {
		t.Fatalf("after forget: %v", got)
	}
	if n := len(s.DerivedRecord().GetLearned().GetEntries()); n != 1 {
		t.Fatalf("forget recorded %d entries, want 1 (the value that was there)", n)
	}

	tests := []struct {
		name   string
		change *fsmv1.LearnedChange
		code   fsmv1.ErrorCode
	}{
		{"team scope of an agent learning", statetest.Learned("payees", "team:payments", 0, "x"), fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"list that does not learn", statetest.Learned("other", "agent:billing-bot", 0, "x"), fsmv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"malformed scope", statetest.Learned("payees", "agent:", 0, "x"), fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res := applyNext(s, statetest.ChangeLearned(tt.change))
			if res.GetError().GetCode() != tt.code {
				t.Fatalf("got %v, want %v", res.GetError(), tt.code)
			}
		})
	}
	t.Run("a full scope refuses the approval", func(t *testing.T) {
		values := make([]string, limits.ListValues)
		for i := range values {
			values[i] = fmt.Sprintf("v%05d", i)
		}
		full := mustApply(t, s, statetest.ChangeLearned(statetest.Learned("payees", "agent:full", 0, values...)))
		_, res := applyNext(full, statetest.ChangeLearned(statetest.Learned("payees", "agent:full", 0, "one-more")))
		if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION || !strings.Contains(res.GetError().GetMessage(), "forget some first") {
			t.Fatalf("got %v", res.GetError())
		}
	})
}

// TestConsumeAuditExactlyOnce: a batch applies only after the count it
// names, so a replay or a stale batch changes nothing; learned values and
// the cursor move together; a consumer batch full of known values does
// not move the config version.
func TestConsumeAuditExactlyOnce(t *testing.T) {
	s := v2(t)
	s = mustApply(t, s, statetest.Consume("learn", 0, map[string]uint64{"dp1": 5, "dp2": 1}))
	batch := withChanges(statetest.Consume("learn", 1, map[string]uint64{"dp1": 8}), statetest.Learned("payees", "agent:billing-bot", 1, "acme"))
	next := mustApply(t, s, batch)
	cur, _ := next.Get(resource.AuditCursor, "learn")
	if c := cur.GetAuditCursor(); c.GetBatches() != 2 || fmt.Sprint(c.GetMarks()) != fmt.Sprint([]*configv1.AuditMark{{Dataplane: "dp1", Next: 8}, {Dataplane: "dp2", Next: 1}}) {
		t.Fatalf("cursor %v", c)
	}
	if next.ConfigVersion() != next.Index() {
		t.Fatal("learning a value did not move the config version")
	}
	if rec := next.DerivedRecord(); rec.GetLearned().GetEntries()[0].GetChange() != "learned" {
		t.Fatalf("derived record %v", rec)
	}
	tests := []struct {
		name string
		cmd  *fsmv1.Command
		code fsmv1.ErrorCode
	}{
		{"replayed batch", batch, fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{"batch of an old generation", withChanges(statetest.Consume("learn", 2, nil), statetest.Learned("payees", "agent:billing-bot", 9, "x")), fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{"batch of a deleted learning", withChanges(statetest.Consume("learn", 2, nil), statetest.Learned("gone", "agent:billing-bot", 1, "x")), fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{"first batch of an unknown consumer naming a count", statetest.Consume("other", 3, nil), fsmv1.ErrorCode_ERROR_CODE_ABORTED},
		{"consumer name not a DNS label", statetest.Consume("Bad Name", 0, nil), fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after, res := applyNext(next, tt.cmd)
			if res.GetError().GetCode() != tt.code {
				t.Fatalf("got %v, want %v", res.GetError(), tt.code)
			}
			if d := statetest.Diff(next, after, nil); len(d) != 1 || !strings.HasPrefix(d[0], "Index:") {
				t.Fatalf("a refused batch changed the state: %v", d)
			}
		})
	}
	t.Run("known values move only the cursor", func(t *testing.T) {
		again := mustApply(t, next, withChanges(statetest.Consume("learn", 2, map[string]uint64{"dp1": 9}), statetest.Learned("payees", "agent:billing-bot", 1, "acme")))
		if again.ConfigVersion() != next.ConfigVersion() || again.DerivedRecord() != nil {
			t.Fatalf("config version %d → %d, derived %v", next.ConfigVersion(), again.ConfigVersion(), again.DerivedRecord())
		}
		if evs, _ := again.AdminEvents(0, 1); evs[0].GetIndex() == again.Index() {
			t.Fatal("a batch left an admin event")
		}
	})
	t.Run("seeding marks the list seeded", func(t *testing.T) {
		l := statetest.ListLearning("payees", "up__send", "to", configv1.LearningScope_LEARNING_SCOPE_AGENT)
		l.SeedFrom = timestamppb.New(statetest.Epoch)
		seeding := mustApply(t, next, statetest.Update(l))
		if learning(t, seeding, "payees").GetSeeded() {
			t.Fatal("a learning with a seed is seeded at once")
		}
		c := withChanges(statetest.Consume("learn", 2, nil), statetest.Learned("payees", "agent:billing-bot", 2, "old-payee"))
		c.GetConsumeAudit().Seeded = []*fsmv1.SeededLearning{{List: "payees", Generation: 2}}
		seeded := mustApply(t, seeding, c)
		got := learning(t, seeded, "payees")
		if !got.GetSeeded() || !slices.Equal(setOf(got, "agent:billing-bot"), []string{"old-payee"}) {
			t.Fatalf("seeded %v sets %v", got.GetSeeded(), got.GetSets())
		}
		if e := seeded.DerivedRecord().GetLearned().GetEntries()[0]; e.GetChange() != "seeded" {
			t.Fatalf("entry %v", e)
		}
	})
	t.Run("a full set drops what does not fit, and says so", func(t *testing.T) {
		values := make([]string, limits.ListValues+3)
		for i := range values {
			values[i] = fmt.Sprintf("v%05d", i)
		}
		full := mustApply(t, next, withChanges(statetest.Consume("learn", 2, nil), statetest.Learned("payees", "agent:x", 1, values...)))
		l := learning(t, full, "payees")
		rec := full.DerivedRecord().GetLearned()
		if n := len(setOf(l, "agent:x")); n != limits.ListValues || rec.GetDropped() != 3 || len(rec.GetEntries())+int(rec.GetUnlisted()) != limits.ListValues {
			t.Fatalf("%d values kept, record dropped %d, entries %d + %d", n, rec.GetDropped(), len(rec.GetEntries()), rec.GetUnlisted())
		}
	})
}

// TestAlertOutbox: a batch queues each alert once (an alert queued again
// by a later batch is not duplicated), attempts are counted once, a sent
// or given-up alert leaves the outbox audited, and a full outbox drops new
// alerts, audited.
func TestAlertOutbox(t *testing.T) {
	s := v2(t)
	s = mustApply(t, s, statetest.Consume("alert", 0, nil))
	s = mustApply(t, s, withAlerts(statetest.Consume("alert", 1, map[string]uint64{"dp1": 2}), statetest.Alert("a1", "sec", "dp1/1")))
	if r, ok := s.Get(resource.Alert, "a1"); !ok || !r.GetAlert().GetNextAttemptTime().AsTime().Equal(statetest.At(0).AsTime()) {
		t.Fatalf("queued alert %v", r)
	}
	s = mustApply(t, s, withAlerts(statetest.Consume("alert", 2, map[string]uint64{"dp1": 3}), statetest.Alert("a1", "sec", "dp1/1")))
	if n := s.Count(resource.Alert); n != 1 {
		t.Fatalf("%d alerts after queueing one twice", n)
	}
	retry := statetest.Settle("a1", 1, fsmv1.AlertOutcome_ALERT_OUTCOME_RETRY)
	retry.GetSettleAlert().Error = "the receiver answered 503 Service Unavailable"
	s = mustApply(t, s, retry)
	r, _ := s.Get(resource.Alert, "a1")
	if a := r.GetAlert(); a.GetAttempts() != 1 || a.GetLastError() == "" || !a.GetNextAttemptTime().AsTime().Equal(statetest.At(3600).AsTime()) {
		t.Fatalf("after a failed attempt: %v", a)
	}
	if s.DerivedRecord() != nil {
		t.Fatal("a failed attempt that will be retried is audited")
	}
	if _, res := applyNext(s, retry); res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_ABORTED {
		t.Fatalf("replayed attempt: %v", res.GetError())
	}
	for _, outcome := range []fsmv1.AlertOutcome{fsmv1.AlertOutcome_ALERT_OUTCOME_SENT, fsmv1.AlertOutcome_ALERT_OUTCOME_GAVE_UP} {
		t.Run(outcome.String(), func(t *testing.T) {
			done := mustApply(t, s, statetest.Settle("a1", 2, outcome))
			if _, ok := done.Get(resource.Alert, "a1"); ok {
				t.Fatal("the alert is still in the outbox")
			}
			d := done.DerivedRecord().GetAlert()
			want := map[fsmv1.AlertOutcome]string{fsmv1.AlertOutcome_ALERT_OUTCOME_SENT: "sent", fsmv1.AlertOutcome_ALERT_OUTCOME_GAVE_UP: "gave_up"}[outcome]
			if d.GetOutcome() != want || d.GetRecordId() != "dp1/1" || d.GetAttempts() != 2 || d.GetRule() != "sec" {
				t.Fatalf("audited %v", d)
			}
		})
	}
	t.Run("full outbox", func(t *testing.T) {
		full := s
		batch := uint64(3)
		for i := 0; i < limits.Outbox; i += limits.ConsumeBatch {
			c := statetest.Consume("alert", batch, nil)
			for j := i; j < min(i+limits.ConsumeBatch, limits.Outbox); j++ {
				c.GetConsumeAudit().Alerts = append(c.GetConsumeAudit().Alerts, statetest.Alert(fmt.Sprintf("b%d", j), "sec", fmt.Sprintf("dp1/%d", j+10)))
			}
			full = mustApply(t, full, c)
			batch++
		}
		if n := full.Count(resource.Alert); n != limits.Outbox {
			t.Fatalf("%d alerts, want %d", n, limits.Outbox)
		}
		over := mustApply(t, full, withAlerts(statetest.Consume("alert", batch, nil), statetest.Alert("c1", "sec", "dp9/1")))
		if _, ok := over.Get(resource.Alert, "c1"); ok {
			t.Fatal("an alert was queued past the outbox limit")
		}
		if d := over.DerivedRecord().GetAlert(); d.GetOutcome() != "dropped" || d.GetRecordId() != "dp9/1" {
			t.Fatalf("drop audited as %v", d)
		}
	})
}

func withAlerts(c *fsmv1.Command, alerts ...*configv1.Alert) *fsmv1.Command {
	c.GetConsumeAudit().Alerts = alerts
	return c
}

// TestAlertRuleSecrets: a rule's secrets must exist and be bound to its
// webhook's host, cannot be deleted while it uses them, and cannot be
// bound elsewhere.
func TestAlertRuleSecrets(t *testing.T) {
	s := v2(t)
	unbound := statetest.Secret("legacy") // no hosts: written before bindings
	s = mustApply(t, s, statetest.Create(unbound))
	rebound := statetest.Secret("hooks")
	rebound.Hosts = []string{"other.example.com"}
	tests := []struct {
		name string
		cmd  *fsmv1.Command
		msg  string
	}{
		{"missing secret", statetest.Create(statetest.AlertRule("r2", "", "https://hooks.example.com/in", "nope")), `secret "nope" does not exist`},
		{"secret without hosts", statetest.Create(statetest.AlertRule("r2", "", "https://hooks.example.com/in", "legacy")), "not bound"},
		{"secret bound elsewhere", statetest.Create(statetest.AlertRule("r2", "", "https://evil.example.com/in", "hooks")), "not bound"},
		{"delete of a secret in use", statetest.Delete(resource.Secret, "hooks"), `alert rule "sec"`},
		{"binding that leaves the rule's host out", statetest.Update(rebound), `alert rule "sec"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res := applyNext(s, tt.cmd)
			if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION || !strings.Contains(res.GetError().GetMessage(), tt.msg) {
				t.Fatalf("got %v, want FAILED_PRECONDITION containing %q", res.GetError(), tt.msg)
			}
		})
	}
}

// TestLeaderWorkWaitsForVersion2: before every voter supports cluster
// version 2, the audit consumers' batches are refused like any version-2
// write.
func TestLeaderWorkWaitsForVersion2(t *testing.T) {
	_, res := applyNext(base(t), statetest.Consume("learn", 0, nil))
	if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION || !strings.Contains(res.GetError().GetMessage(), "cluster version 2") {
		t.Fatalf("got %v", res.GetError())
	}
}
