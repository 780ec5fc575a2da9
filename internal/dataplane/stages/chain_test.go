package stages_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// TestChain runs the default stages against a real compiled snapshot (the
// configtest fixture: team payments may call every tool, nobody may pay 500
// or more, pay's amount must be at least 1).
func TestChain(t *testing.T) {
	cfg := configtest.Compile(t, configtest.Snapshot())
	frozenSnap := configtest.Snapshot()
	frozenSnap.Freeze = &snapshotv1.Freeze{Frozen: true, Reason: "incident 42"}
	frozen := configtest.Compile(t, frozenSnap)

	tests := []struct {
		name         string
		edit         func(*pipeline.Call)
		wantReached  bool
		wantReason   pipeline.Reason // "" means the call succeeds
		wantDecision string
		wantPolicies string
		// anonymous: refused before any agent was identified, so counted
		// (package refusals), not recorded.
		anonymous bool
	}{
		{name: "allowed", wantReached: true, wantDecision: "allow", wantPolicies: "payments/policy0"},
		{name: "invalid arguments never reach upstream",
			edit:       func(c *pipeline.Call) { c.Arguments = json.RawMessage(`{"amount": 0, "to": "bob"}`) },
			wantReason: pipeline.ReasonInvalidArguments, wantDecision: "allow", wantPolicies: "payments/policy0"},
		{name: "denied never reaches upstream",
			edit:       func(c *pipeline.Call) { c.Arguments = json.RawMessage(`{"amount": 900, "to": "bob"}`) },
			wantReason: pipeline.ReasonDenied, wantDecision: "deny", wantPolicies: "payments/policy1"},
		{name: "mistyped argument refused as invalid arguments",
			edit:       func(c *pipeline.Call) { c.Arguments = json.RawMessage(`{"amount": "900", "to": "bob"}`) },
			wantReason: pipeline.ReasonInvalidArguments},
		{name: "other team denied",
			edit:       func(c *pipeline.Call) { c.Credential = configtest.MarketerKey },
			wantReason: pipeline.ReasonDenied, wantDecision: "deny"},
		{name: "unauthenticated",
			edit:       func(c *pipeline.Call) { c.Credential = "pck_0123456789abcdef_wrong" },
			wantReason: pipeline.ReasonUnauthenticated, anonymous: true},
		{name: "disabled agent",
			edit:       func(c *pipeline.Call) { c.Credential = configtest.DisabledKey },
			wantReason: pipeline.ReasonUnauthenticated, anonymous: true},
		{name: "unknown tool",
			edit:       func(c *pipeline.Call) { c.Target.Name = "pay__steal" },
			wantReason: pipeline.ReasonUnknownTool},
		{name: "degraded mutating",
			edit:       func(c *pipeline.Call) { c.Mode = configsyncv1.Mode_MODE_DEGRADED },
			wantReason: pipeline.ReasonDegraded},
		{name: "degraded read-only", wantReached: true, wantDecision: "allow", wantPolicies: "payments/policy0",
			edit: func(c *pipeline.Call) {
				c.Mode, c.Target.Name, c.Arguments = configsyncv1.Mode_MODE_DEGRADED, configtest.BalanceAction, nil
			}},
		{name: "stale",
			edit:       func(c *pipeline.Call) { c.Mode = configsyncv1.Mode_MODE_STALE },
			wantReason: pipeline.ReasonStale},
		{name: "starting",
			edit:       func(c *pipeline.Call) { c.Mode, c.Config = configsyncv1.Mode_MODE_STARTING, nil },
			wantReason: pipeline.ReasonNoConfig, anonymous: true},
		{name: "frozen",
			edit:       func(c *pipeline.Call) { c.Config = frozen },
			wantReason: pipeline.ReasonFrozen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			term := &terminal{}
			handle := pipeline.Chain(term.handle, stages.Default(stages.Options{Audit: stages.Audit{Writer: rec, Dataplane: "dp-1"}})...)
			call := &pipeline.Call{
				Protocol: "mcp", Method: "tools/call", Op: pipeline.OpCall, Target: pipeline.Target{Kind: pipeline.KindTool, Name: configtest.PayAction},
				Arguments:  json.RawMessage(`{"amount": 100, "to": "bob"}`),
				Credential: configtest.PayerKey, SourceIP: netip.MustParseAddr("10.1.2.3"),
				Start: configtest.VersionTime, Config: cfg, Mode: configsyncv1.Mode_MODE_NORMAL,
			}
			if tt.edit != nil {
				tt.edit(call)
			}
			res, err := handle(context.Background(), call)
			wantRefusal(t, err, tt.wantReason)
			if term.reached != tt.wantReached {
				t.Errorf("terminal reached = %v, want %v", term.reached, tt.wantReached)
			}
			if (res != nil) != (tt.wantReason == "") {
				t.Errorf("result = %v with error %v", res, err)
			}
			records := rec.all()
			if tt.anonymous {
				if len(records) != 0 {
					t.Fatalf("%d audit records of an unidentified caller, want none", len(records))
				}
				return
			}
			if len(records) != 1 {
				t.Fatalf("%d audit records, want exactly 1", len(records))
			}
			r := records[0]
			if r.GetReason() != string(tt.wantReason) || r.GetDecision() != tt.wantDecision ||
				strings.Join(r.GetPolicies(), ",") != tt.wantPolicies {
				t.Errorf("record reason, decision, policies = %q, %q, %q, want %q, %q, %q",
					r.GetReason(), r.GetDecision(), r.GetPolicies(), tt.wantReason, tt.wantDecision, tt.wantPolicies)
			}
		})
	}
}

func TestChainAuditFailureWithholdsResult(t *testing.T) {
	rec := &recorder{err: errors.New("disk full")}
	term := &terminal{}
	handle := pipeline.Chain(term.handle, stages.Default(stages.Options{Audit: stages.Audit{Writer: rec, Dataplane: "dp-1"}})...)
	call := &pipeline.Call{
		Protocol: "mcp", Method: "tools/call", Op: pipeline.OpCall, Target: pipeline.Target{Kind: pipeline.KindTool, Name: configtest.BalanceAction},
		Credential: configtest.PayerKey, SourceIP: netip.MustParseAddr("10.1.2.3"),
		Start: configtest.VersionTime, Config: configtest.Compile(t, configtest.Snapshot()), Mode: configsyncv1.Mode_MODE_NORMAL,
	}
	res, err := handle(context.Background(), call)
	wantRefusal(t, err, pipeline.ReasonAuditUnavailable)
	if !term.reached || res != nil {
		t.Errorf("terminal reached = %v, result = %v; want a successful upstream call whose result is withheld", term.reached, res)
	}
}

func TestDefaultOrder(t *testing.T) {
	var names []string
	for _, s := range stages.Default(stages.Options{Audit: stages.Audit{Writer: &recorder{}, Dataplane: "dp"}}) {
		names = append(names, s.Name())
	}
	if got, want := strings.Join(names, ","), "authenticate,audit,identify,gate,authorize,validate"; got != want {
		t.Errorf("Default() order = %s, want %s", got, want)
	}
}
