package learn_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditconsumer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/learn"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// call is a record of a call of pay's tool send (action pay__send) by
// agent, paying to.
func call(agent, to string) *auditv1.Record {
	return &auditv1.Record{
		Kind: auditv1.EventKind_EVENT_KIND_CALL, Operation: "call", Agent: agent, Upstream: "pay", Tool: "send",
		Decision: "allow", Outcome: "ok", ArgumentsJson: fmt.Sprintf(`{"to":%q,"amount":100}`, to),
	}
}

// named is a record of the same call as records name tools now: tool as
// agents call it, target_own as the upstream does (call's records are of
// the shape written before records kept both names).
func named(r *auditv1.Record) *auditv1.Record {
	r.Tool, r.TargetOwn = "pay__"+r.GetTool(), r.GetTool()
	return r
}

func denied(r *auditv1.Record) *auditv1.Record {
	r.Decision, r.Outcome, r.Reason = "deny", "refused", "denied"
	return r
}

func failed(r *auditv1.Record) *auditv1.Record {
	r.UpstreamError = true
	return r
}

// store appends records to dp's chain, one second apart from at.
func store(t *testing.T, s *auditstore.Store, dp string, at time.Time, recs ...*auditv1.Record) {
	t.Helper()
	next, prev := s.Next(dp), []byte(nil)
	if next == 1 {
		prev = auditchain.Zero
	} else {
		last, err := s.Get(dp, next-1)
		if err != nil {
			t.Fatal(err)
		}
		prev = last.GetHash()
	}
	for i, r := range recs {
		r.Dataplane, r.Sequence, r.PrevHash = dp, next, prev
		r.Time = timestamppb.New(at.Add(time.Duration(i) * time.Second))
		sum, _, err := auditchain.Hash(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Hash = sum[:]
		prev, next = r.Hash, next+1
	}
	if _, err := s.Append(dp, recs); err != nil {
		t.Fatal(err)
	}
}

// world is a state with upstream pay (tool send pinned, input "to"),
// agents billing-bot and ops-bot in team payments and stray-bot without a
// team, and a value list payees learning "to" of pay__send per scope.
func world(t *testing.T, scope configv1.LearningScope, seedFrom time.Time) *state.State {
	t.Helper()
	pin := statetest.ToolPin("pay", "send", `{"type":"object","properties":{"to":{"type":"string"},"amount":{"type":"integer"}}}`)
	l := statetest.ListLearning("payees", "pay__send", "to", scope)
	if !seedFrom.IsZero() {
		l.SeedFrom = timestamppb.New(seedFrom)
	}
	stray := statetest.Agent("stray-bot", "")
	stray.Team = ""
	return statetest.Run(t, state.New(), 1, []statetest.Step{
		{Name: "bootstrap", Cmd: statetest.Bootstrap()},
		{Name: "version 2", Cmd: statetest.Update(statetest.NodeVersion("n1", 2))},
		{Name: "upstream", Cmd: statetest.Create(statetest.Upstream("pay", ""))},
		{Name: "pin", Cmd: statetest.Create(pin)},
		{Name: "agent", Cmd: statetest.Create(statetest.Agent("billing-bot", ""))},
		{Name: "agent 2", Cmd: statetest.Create(statetest.Agent("ops-bot", ""))},
		{Name: "agent 3", Cmd: statetest.Create(stray)},
		{Name: "list", Cmd: statetest.Create(statetest.ValueList("payees", "globex"))},
		{Name: "learning", Cmd: statetest.Create(l)},
	})
}

func openStore(t *testing.T) *auditstore.Store {
	t.Helper()
	s, err := auditstore.Open(auditstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// learned flattens a batch's changes to "scope=value" lines, sorted.
func learned(out *fsmv1.ConsumeAudit) []string {
	var lines []string
	for _, ch := range out.GetLearned() {
		for _, v := range ch.GetAdd() {
			lines = append(lines, ch.GetScope()+"="+v.GetValue())
		}
	}
	slices.Sort(lines)
	return lines
}

// TestLearnsOnlySuccessfulCallsInScope: every way a call can fail to
// teach, and the scope each successful call teaches.
func TestLearnsOnlySuccessfulCallsInScope(t *testing.T) {
	redacted := call("billing-bot", "x")
	redacted.ArgumentsJson = `{"to":"[REDACTED]","amount":1}`
	secret := call("billing-bot", "x")
	secret.ArgumentsJson = `{"to":"[REDACTED:jwt]","amount":1}`
	cutJSON := call("billing-bot", "x")
	cutJSON.ArgumentsJson = `{"to":"acme`
	number := call("billing-bot", "x")
	number.ArgumentsJson = `{"to":42}`
	otherTool := call("billing-bot", "other-tool")
	otherTool.Tool = "refund"
	otherNamed := call("billing-bot", "other-named-tool")
	otherNamed.Tool = "refund"
	otherNamed = named(otherNamed)
	list := call("billing-bot", "list-op")
	list.Kind, list.Operation = auditv1.EventKind_EVENT_KIND_LIST, "list"
	records := []*auditv1.Record{
		call("billing-bot", "acme"),
		call("billing-bot", "acme"), // once
		call("ops-bot", "initech"),
		call("stray-bot", "umbrella"),
		call("billing-bot", "globex"), // the list's own value: learned in scope all the same
		denied(call("billing-bot", "mallory")),
		failed(call("billing-bot", "broken")),
		redacted, secret, cutJSON, number, otherTool, list,
		named(call("ops-bot", "hooli")),
		named(denied(call("ops-bot", "evil"))),
		otherNamed,
	}
	tests := []struct {
		scope configv1.LearningScope
		want  []string
	}{
		{configv1.LearningScope_LEARNING_SCOPE_AGENT, []string{"agent:billing-bot=acme", "agent:billing-bot=globex", "agent:ops-bot=hooli", "agent:ops-bot=initech", "agent:stray-bot=umbrella"}},
		{configv1.LearningScope_LEARNING_SCOPE_TEAM, []string{"team:payments=acme", "team:payments=globex", "team:payments=hooli", "team:payments=initech"}},
		{configv1.LearningScope_LEARNING_SCOPE_GLOBAL, []string{"global=acme", "global=globex", "global=hooli", "global=initech", "global=umbrella"}},
	}
	for _, tt := range tests {
		t.Run(tt.scope.String(), func(t *testing.T) {
			st := world(t, tt.scope, time.Time{})
			as := openStore(t)
			store(t, as, "dp1", t0, records...)
			recs, _, err := as.ReadAfter(map[string]uint64{}, auditstore.Position{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			out := &fsmv1.ConsumeAudit{}
			if err := (learn.Consumer{}).Consume(context.Background(), &auditconsumer.Batch{State: st, Cursor: map[string]uint64{}, Records: recs, Audit: as, Out: out}); err != nil {
				t.Fatal(err)
			}
			if got := learned(out); !slices.Equal(got, tt.want) {
				t.Fatalf("learned %v, want %v", got, tt.want)
			}
			for _, ch := range out.GetLearned() {
				if ch.GetGeneration() != 1 || ch.GetAdd()[0].GetRecordId() == "" {
					t.Fatalf("change %v", ch)
				}
			}
		})
	}
}

// TestSeedFromHistoryIsExact: a list seeded from history learns exactly
// the counterparties of the stored successful calls in scope since the
// seed time that the consumer had read — none from denied or failed
// calls, none from before the seed time, and none of the records after
// the cursor (those the same batch teaches live).
func TestSeedFromHistoryIsExact(t *testing.T) {
	as := openStore(t)
	store(t, as, "dp1", t0.Add(-48*time.Hour), call("billing-bot", "too-old"))
	store(t, as, "dp1", t0,
		call("billing-bot", "acme"),
		call("billing-bot", "globex"),
		denied(call("billing-bot", "mallory")),
		failed(call("billing-bot", "broken")),
		call("ops-bot", "initech"),
		named(call("ops-bot", "vandelay")),
	)
	store(t, as, "dp2", t0, call("billing-bot", "hooli"), denied(call("ops-bot", "evil")))
	// The cursor: dp1 read through its seventh record, dp2 not at all
	// before this batch.
	cursor := map[string]uint64{"dp1": 8}
	store(t, as, "dp1", t0.Add(time.Hour), call("billing-bot", "live-payee"))
	st := world(t, configv1.LearningScope_LEARNING_SCOPE_AGENT, t0.Add(-time.Hour))
	live, _, err := as.ReadAfter(cursor, auditstore.Position{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !(learn.Consumer{}).Pending(st) {
		t.Fatal("an unseeded list is not pending")
	}
	out := &fsmv1.ConsumeAudit{}
	if err := (learn.Consumer{}).Consume(context.Background(), &auditconsumer.Batch{State: st, Cursor: cursor, Records: live, Audit: as, Out: out}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"agent:billing-bot=acme", "agent:billing-bot=globex", // seeded
		"agent:billing-bot=hooli", "agent:billing-bot=live-payee", // live: dp2 and dp1/8 are after the cursor
		"agent:ops-bot=initech", "agent:ops-bot=vandelay", // seeded
	}
	if got := learned(out); !slices.Equal(got, want) {
		t.Fatalf("learned %v, want %v", got, want)
	}
	if len(out.GetSeeded()) != 1 || out.GetSeeded()[0].GetList() != "payees" {
		t.Fatalf("seeded %v", out.GetSeeded())
	}
}

func TestArgument(t *testing.T) {
	tests := []struct {
		json string
		path []string
		want string
		ok   bool
	}{
		{`{"to":"acme"}`, []string{"to"}, "acme", true},
		{`{"payee":{"account":"DE44"}}`, []string{"payee", "account"}, "DE44", true},
		{`{"payee":{"account":7}}`, []string{"payee", "account"}, "", false},
		{`{"payee":"x"}`, []string{"payee", "account"}, "", false},
		{`{"to":""}`, []string{"to"}, "", false},
		{`{"to":"[REDACTED]"}`, []string{"to"}, "", false},
		{`{"to":"[REDACTED:aws_access_key]"}`, []string{"to"}, "", false},
		{`"[REDACTED:invalid_json]"`, []string{"to"}, "", false},
		{``, []string{"to"}, "", false},
		{`{"to":"` + strings.Repeat("x", 300) + `"}`, []string{"to"}, "", false},
	}
	for _, tt := range tests {
		got, ok := learn.Argument(tt.json, tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Argument(%.40q, %v) = %q, %v; want %q, %v", tt.json, tt.path, got, ok, tt.want, tt.ok)
		}
	}
}
