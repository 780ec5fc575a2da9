package replay_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/replay"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// fixture is a state with upstream pay (tool send, an integer amount),
// agents billing-bot and ops-bot, and a set "limits" that permits
// everything; gone-bot existed when the records were written.
func fixture(t *testing.T) *state.State {
	t.Helper()
	return statetest.Run(t, state.New(), 1, []statetest.Step{
		{Name: "bootstrap", Cmd: statetest.Bootstrap()},
		{Name: "upstream", Cmd: statetest.Create(statetest.Upstream("pay", ""))},
		{Name: "pin", Cmd: statetest.Create(statetest.ToolPin("pay", "send", statetest.AmountSchema("integer")))},
		{Name: "agent", Cmd: statetest.Create(statetest.Agent("billing-bot", ""))},
		{Name: "agent 2", Cmd: statetest.Create(statetest.Agent("ops-bot", ""))},
		{Name: "policy", Cmd: statetest.Create(statetest.PolicySet("limits", statetest.PermitAll))},
	})
}

// call is a recorded tool call of pay/send.
func call(agent, decision, args string) *auditv1.Record {
	return &auditv1.Record{
		Kind: auditv1.EventKind_EVENT_KIND_CALL, Operation: "call", TargetKind: "tool", Protocol: "mcp", Method: "tools/call",
		Agent: agent, Upstream: "pay", Tool: "send", Decision: decision, ArgumentsJson: args, SourceIp: "10.0.0.1", Mode: "normal",
	}
}

// store appends recs as one data plane's chain, a second apart from t0.
func store(t *testing.T, recs ...*auditv1.Record) *auditstore.Store {
	t.Helper()
	s, err := auditstore.Open(auditstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	prev := auditchain.Zero
	for i, r := range recs {
		r.Dataplane, r.Sequence, r.PrevHash = "dp-1", uint64(i+1), prev
		if r.Time == nil {
			r.Time = timestamppb.New(t0.Add(time.Duration(i) * time.Second))
		}
		sum, _, err := auditchain.Hash(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Hash, prev = sum[:], sum[:]
	}
	if _, err := s.Append("dp-1", recs); err != nil {
		t.Fatal(err)
	}
	return s
}

const candidate = `@id("all") permit(principal, action in Action::"call_tool", resource);
@id("cap") forbid(principal, action == Action::"pay__send", resource) when { context.arguments.amount > 500 };
@id("dead") permit(principal == Agent::"billing-bot", action == Action::"pay__send", resource) when { context.arguments.amount == 424242 };
`

func TestReplay(t *testing.T) {
	st := fixture(t)
	withUser := call("billing-bot", "allow", `{"amount":1}`)
	withUser.User = "corp/alice"
	list := call("billing-bot", "", "")
	list.Kind, list.Operation = auditv1.EventKind_EVENT_KIND_LIST, "list"
	unpinned := call("billing-bot", "allow", `{"amount":1}`)
	unpinned.Tool = "old"
	recs := store(t,
		call("billing-bot", "allow", `{"amount":100}`),          // 1 unchanged
		call("billing-bot", "allow", `{"amount":700}`),          // 2 allow → deny
		call("billing-bot", "allow", `{"amount":"[REDACTED]"}`), // 3 redacted amount
		call("gone-bot", "allow", `{"amount":1}`),               // 4 agent gone
		call("billing-bot", "", `{"amount":1}`),                 // 5 refused before policy
		unpinned,                                                // 6 tool no longer pinned
		list,                                                    // 7 not a call
		call("billing-bot", "allow", `{"amount":1`+"…[truncated: 9000 bytes in all]"), // 8 cut
		call("ops-bot", "deny", `{"amount":10}`),                                      // 9 deny → allow
		withUser,                                                                      // 10 a user the candidate does not read
	)
	rep, err := replay.Run(context.Background(), st, recs, replay.Options{Set: "limits", Source: candidate})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 9 || rep.Undecided != 1 || rep.Judged != 4 || rep.AllowToDeny != 1 || rep.DenyToAllow != 1 || !rep.Changed() {
		t.Fatalf("report %+v: want 9 records, 1 undecided, 4 judged, one change each way", rep)
	}
	if !slices.Equal(rep.DeadPolicies, []string{"limits/dead"}) {
		t.Errorf("dead policies %v, want [limits/dead]", rep.DeadPolicies)
	}
	reasons := map[string]uint64{}
	for _, u := range rep.Unjudged {
		reasons[u.Reason] = u.Count
	}
	for _, want := range []string{
		"the candidate reads arguments.amount, which the record redacted",
		`agent "gone-bot" no longer exists`,
		"tool pay__old is no longer pinned",
		"the record's arguments were cut at the audit size bound (or were not JSON), and the candidate reads arguments.amount",
	} {
		if reasons[want] != 1 {
			t.Errorf("unjudged reasons %v: want %q once", reasons, want)
		}
	}
	if len(rep.Changes) != 2 || rep.Changes[0].Sequence != 2 || rep.Changes[0].Candidate != "deny" || !slices.Equal(rep.Changes[0].CandidatePolicies, []string{"limits/cap"}) ||
		rep.Changes[1].Sequence != 9 || rep.Changes[1].Candidate != "allow" {
		t.Errorf("changes %+v: want #2 allow→deny by limits/cap and #9 deny→allow", rep.Changes)
	}
	if len(rep.ChangeCounts) != 2 || rep.ChangeCounts[0] != (replay.ChangeCount{Agent: "billing-bot", Tool: "pay__send", AllowToDeny: 1}) {
		t.Errorf("change counts %+v", rep.ChangeCounts)
	}
}

func TestReplayFilters(t *testing.T) {
	st := fixture(t)
	recs := store(t,
		call("billing-bot", "allow", `{"amount":700}`),
		call("ops-bot", "allow", `{"amount":700}`),
		call("billing-bot", "allow", `{"amount":700}`),
	)
	tests := []struct {
		name    string
		o       replay.Options
		records uint64
	}{
		{name: "everything", records: 3},
		{name: "an agent", o: replay.Options{Agent: "ops-bot"}, records: 1},
		{name: "a tool by its action name", o: replay.Options{Tool: "pay__send"}, records: 3},
		{name: "a tool by its own name", o: replay.Options{Tool: "send"}, records: 3},
		{name: "another tool", o: replay.Options{Tool: "pay__other"}, records: 0},
		{name: "a window", o: replay.Options{From: t0.Add(time.Second), To: t0.Add(2 * time.Second)}, records: 1},
		{name: "a bound", o: replay.Options{MaxRecords: 2}, records: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Set, tt.o.Source = "limits", candidate
			rep, err := replay.Run(context.Background(), st, recs, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Records != tt.records || rep.AllowToDeny != tt.records || rep.Truncated != (tt.o.MaxRecords > 0) {
				t.Fatalf("report %+v: want %d records, all changed", rep, tt.records)
			}
		})
	}
}

func TestReplayUser(t *testing.T) {
	st := fixture(t)
	withUser := call("billing-bot", "allow", `{"amount":1}`)
	withUser.User = "corp/alice"
	recs := store(t, withUser, call("billing-bot", "allow", `{"amount":1}`))
	readsUser := `permit(principal, action in Action::"call_tool", resource) unless { context has user };`
	rep, err := replay.Run(context.Background(), st, recs, replay.Options{Set: "limits", Source: readsUser})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Judged != 1 || len(rep.Unjudged) != 1 || !strings.Contains(rep.Unjudged[0].Reason, "reads context.user") ||
		!slices.Equal(rep.Unjudged[0].Examples, []string{"dp-1#1"}) {
		t.Fatalf("report %+v: the call with a user cannot be judged, the other can", rep)
	}
}

func TestReplayFindings(t *testing.T) {
	st := fixture(t)
	finding := func(mode, side string) *auditv1.Record {
		r := call("billing-bot", "allow", `{"amount":1}`)
		r.Findings = []*auditv1.Finding{{Detector: "exfiltration", Kind: "url_payload", Rule: "no-exfil", Mode: mode, Side: side, Action: "flag"}}
		return r
	}
	recs := store(t,
		finding("enforce", "request"),                // 1 decided with context.findings
		finding("shadow", "request"),                 // 2 a shadow rule's finding was not policy input
		finding("enforce", "response"),               // 3 nor was what came back
		call("billing-bot", "allow", `{"amount":1}`), // 4 nothing found
	)
	guard := `@id("all") permit(principal, action in Action::"call_tool", resource);
@id("guard") forbid(principal, action in Action::"call_tool", resource) when { context.findings.contains("exfiltration.url_payload") };
`
	rep, err := replay.Run(context.Background(), st, recs, replay.Options{Set: "limits", Source: guard})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Judged != 4 || rep.AllowToDeny != 1 || len(rep.Changes) != 1 || rep.Changes[0].Sequence != 1 {
		t.Fatalf("report %+v: only the call whose enforced request finding the candidate forbids changes", rep)
	}
}

func TestReplayRefusesAnInvalidCandidate(t *testing.T) {
	st := fixture(t)
	_, err := replay.Run(context.Background(), st, store(t), replay.Options{Set: "limits", Source: `permit(principal, action == Action::"pay__nope", resource);`})
	if err == nil || !strings.Contains(err.Error(), "pay__nope") {
		t.Fatalf("Run = %v, want the candidate's problem", err)
	}
	// A candidate of a set that does not exist yet is added.
	if _, ok := st.Get(resource.PolicySet, "new"); ok {
		t.Fatal("fixture has a set named new")
	}
	rep, err := replay.Run(context.Background(), st, store(t, call("billing-bot", "allow", `{"amount":900}`)), replay.Options{Set: "new", Source: candidate})
	if err != nil || rep.AllowToDeny != 1 {
		t.Fatalf("Run of a new set = %+v, %v; want one change", rep, err)
	}
}
