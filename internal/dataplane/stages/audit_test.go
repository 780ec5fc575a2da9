package stages_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/auditredact"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// fixedClock returns a clock reading start+elapsed.
func fixedClock(start time.Time, elapsed time.Duration) func() time.Time {
	return func() time.Time { return start.Add(elapsed) }
}

func TestAudit(t *testing.T) {
	tests := []struct {
		name         string
		prepare      func(*pipeline.Call)
		result       *pipeline.Result
		err          error
		wantOutcome  string
		wantReason   string
		wantDecision string
	}{
		{
			name: "allowed call",
			prepare: func(c *pipeline.Call) {
				c.Agent, c.Target = alice, toolTarget(writeTool)
				c.Decision = pipeline.Decision{Allowed: true, Policies: []string{"p/allow"}}
			},
			result:      &pipeline.Result{IsError: true, UpstreamLatency: 40 * time.Millisecond},
			wantOutcome: "ok", wantDecision: "allow",
		},
		{
			name: "denied call",
			prepare: func(c *pipeline.Call) {
				c.Agent, c.Target = alice, toolTarget(writeTool)
				c.Decision = pipeline.Decision{Policies: []string{"p/forbid"}}
			},
			err:         pipeline.Refuse(pipeline.ReasonDenied, "denied by policy p/forbid"),
			wantOutcome: "refused", wantReason: "denied", wantDecision: "deny",
		},
		{
			name:        "refused before authorization",
			prepare:     func(*pipeline.Call) {},
			err:         pipeline.Refuse(pipeline.ReasonUnauthenticated, "no"),
			wantOutcome: "refused", wantReason: "unauthenticated",
		},
		{
			name: "invalid arguments after an allow",
			prepare: func(c *pipeline.Call) {
				c.Agent, c.Target = alice, toolTarget(writeTool)
				c.Decision = pipeline.Decision{Allowed: true, Policies: []string{"p/allow"}}
			},
			err:         pipeline.Refuse(pipeline.ReasonInvalidArguments, "bad"),
			wantOutcome: "refused", wantReason: "invalid_arguments", wantDecision: "allow",
		},
		{
			name: "upstream unavailable",
			prepare: func(c *pipeline.Call) {
				c.Agent, c.Target = alice, toolTarget(writeTool)
				c.Decision = pipeline.Decision{Allowed: true}
			},
			err:         pipeline.Refuse(pipeline.ReasonUpstreamUnavailable, "down"),
			wantOutcome: "error", wantReason: "upstream_unavailable", wantDecision: "allow",
		},
		{
			name:        "internal error",
			prepare:     func(c *pipeline.Call) { c.Agent = alice },
			err:         errors.New("boom"),
			wantOutcome: "error", wantReason: "internal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			call := fakeCall(newFake(), writeTool.Action)
			a := stages.Audit{Writer: rec, Dataplane: "dp-1", Now: fixedClock(call.Start, 55*time.Millisecond)}
			next := func(_ context.Context, c *pipeline.Call) (*pipeline.Result, error) {
				tt.prepare(c)
				return tt.result, tt.err
			}
			res, err := a.Handle(context.Background(), call, next)
			if res != tt.result || !errors.Is(err, tt.err) {
				t.Errorf("Handle() = %v, %v, want the next handler's %v, %v", res, err, tt.result, tt.err)
			}
			records := rec.all()
			if len(records) != 1 {
				t.Fatalf("%d records, want 1", len(records))
			}
			r := records[0]
			if r.GetOutcome() != tt.wantOutcome || r.GetReason() != tt.wantReason || r.GetDecision() != tt.wantDecision {
				t.Errorf("outcome, reason, decision = %q, %q, %q, want %q, %q, %q",
					r.GetOutcome(), r.GetReason(), r.GetDecision(), tt.wantOutcome, tt.wantReason, tt.wantDecision)
			}
			if !slices.Equal(r.GetPolicies(), call.Decision.Policies) {
				t.Errorf("policies = %q, want %q", r.GetPolicies(), call.Decision.Policies)
			}
			if r.GetDataplane() != "dp-1" || r.GetSnapshotVersion() != 7 || r.GetMode() != "normal" ||
				r.GetProtocol() != "mcp" || r.GetMethod() != "tools/call" || r.GetSourceIp() != "192.0.2.7" {
				t.Errorf("record = %v", r)
			}
			if !r.GetTime().AsTime().Equal(call.Start) || r.GetLatency().AsDuration() != 55*time.Millisecond {
				t.Errorf("time, latency = %v, %v", r.GetTime().AsTime(), r.GetLatency().AsDuration())
			}
			if tt.result != nil && (r.GetUpstreamLatency().AsDuration() != tt.result.UpstreamLatency || r.GetUpstreamError() != tt.result.IsError) {
				t.Errorf("upstream latency, error = %v, %v", r.GetUpstreamLatency().AsDuration(), r.GetUpstreamError())
			}
			if wantAgent := call.Agent.GetMeta().GetName(); r.GetAgent() != wantAgent {
				t.Errorf("agent = %q, want %q", r.GetAgent(), wantAgent)
			}
		})
	}
}

func TestAuditNamesUnresolvedTool(t *testing.T) {
	rec := &recorder{}
	call := fakeCall(nil, "up__nope")
	call.Mode = configsyncv1.Mode_MODE_STARTING
	_, _ = stages.Audit{Writer: rec}.Handle(context.Background(), call, func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		return nil, pipeline.Refuse(pipeline.ReasonNoConfig, "none")
	})
	r := rec.all()[0]
	if r.GetTool() != "up__nope" || r.GetTargetOwn() != "" || r.GetUpstream() != "" || r.GetSnapshotVersion() != 0 || r.GetMode() != "starting" || r.GetAgent() != "" {
		t.Errorf("record = %v, want the requested action as tool, no upstream, version 0, mode starting", r)
	}
}

// TestAuditNamesTheToolAsAgentsDo: a resolved tool is recorded under the
// name agents, Cedar and gwctl use ("<prefix>__<tool>"), with the
// upstream's own name beside it; a content target likewise.
func TestAuditNamesTheToolAsAgentsDo(t *testing.T) {
	rec := &recorder{}
	// Through Gate, which resolves the tool, as in the real chain.
	chain := pipeline.Chain((&terminal{}).handle, stages.Audit{Writer: rec}, stages.Gate{})
	if _, err := chain(context.Background(), fakeCall(newFake(), writeTool.Action)); err != nil {
		t.Fatal(err)
	}
	call := fakeCall(newFake(), "")
	call.Op, call.Method = pipeline.OpRead, "resources/read"
	call.Target = pipeline.Target{Kind: pipeline.KindResource, Name: "up__file:///r.txt", Upstream: "up", Own: "file:///r.txt"}
	if _, err := chain(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != 2 {
		t.Fatalf("%d records", len(got))
	}
	for i, want := range [][3]string{{"up__write", "write", "up"}, {"up__file:///r.txt", "file:///r.txt", "up"}} {
		r := got[i]
		if r.GetTool() != want[0] || r.GetTargetOwn() != want[1] || r.GetUpstream() != want[2] {
			t.Errorf("record %d: tool %q, target_own %q, upstream %q; want %q", i, r.GetTool(), r.GetTargetOwn(), r.GetUpstream(), want)
		}
	}
}

func TestAuditFailsClosed(t *testing.T) {
	rec := &recorder{err: errors.New("disk full")}
	term := &terminal{}
	res, err := stages.Audit{Writer: rec}.Handle(context.Background(), fakeCall(newFake(), readTool.Action), term.handle)
	wantRefusal(t, err, pipeline.ReasonAuditUnavailable)
	if res != nil {
		t.Errorf("result %v returned although the call was not recorded", res)
	}
	if !term.reached {
		t.Error("terminal not reached; the test does not exercise a successful call")
	}
}

func TestAuditOutlivesCancellation(t *testing.T) {
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	_, _ = stages.Audit{Writer: rec}.Handle(ctx, fakeCall(newFake(), readTool.Action), func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		cancel() // the caller hangs up while upstream works
		return &pipeline.Result{}, nil
	})
	if len(rec.all()) != 1 || rec.ctxErr != nil {
		t.Errorf("records = %d, write context error = %v; want the record written with a live context", len(rec.all()), rec.ctxErr)
	}
}

func TestAuditRecordsPanics(t *testing.T) {
	rec := &recorder{}
	defer func() {
		if p := recover(); p != "kaboom" {
			t.Errorf("recovered %v, want the original panic", p)
		}
		records := rec.all()
		if len(records) != 1 || records[0].GetOutcome() != "error" || records[0].GetReason() != "internal" {
			t.Errorf("records = %v, want one internal error", records)
		}
	}()
	_, _ = stages.Audit{Writer: rec}.Handle(context.Background(), fakeCall(newFake(), readTool.Action), func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
		panic("kaboom")
	})
	t.Error("panic swallowed")
}

func TestAuditRecordsUserArgumentsAndResponseSize(t *testing.T) {
	red, err := auditredact.New([]string{"password"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	call := fakeCall(newFake(), writeTool.Action)
	call.Arguments = json.RawMessage(`{"password":"hunter2","note":"AKIAIOSFODNN7EXAMPLE","n":3}`)
	call.User = &pipeline.User{Source: "okta", Name: "alice"}
	body := json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`)
	_, err = stages.Audit{Writer: rec, Redactor: red}.Handle(context.Background(), call,
		func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
			return &pipeline.Result{Body: body}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	if r.GetUser() != "okta/alice" {
		t.Errorf("user = %q, want okta/alice", r.GetUser())
	}
	if want := `{"n":3,"note":"[REDACTED:aws_access_key]","password":"[REDACTED]"}`; r.GetArgumentsJson() != want {
		t.Errorf("arguments_json = %s, want %s", r.GetArgumentsJson(), want)
	}
	if r.GetResponseBytes() != int64(len(body)) {
		t.Errorf("response_bytes = %d, want %d", r.GetResponseBytes(), len(body))
	}
}

func TestAuditFailOpenAnswersAndReportsTheLoss(t *testing.T) {
	rec := &recorder{err: errors.New("disk full")}
	term := &terminal{}
	var lost []error
	a := stages.Audit{Writer: rec, FailOpen: true, OnLost: func(err error) { lost = append(lost, err) }}
	res, err := a.Handle(context.Background(), fakeCall(newFake(), readTool.Action), term.handle)
	if err != nil || res == nil {
		t.Fatalf("fail-open call: %v, %v; want the result", res, err)
	}
	if len(lost) != 1 {
		t.Errorf("OnLost called %d times, want 1", len(lost))
	}
	// Fail closed reports the loss too.
	lost = nil
	a.FailOpen = false
	if _, err := a.Handle(context.Background(), fakeCall(newFake(), readTool.Action), term.handle); err == nil || len(lost) != 1 {
		t.Errorf("fail-closed call: err %v, %d losses reported", err, len(lost))
	}
}

type anonCounter struct {
	got []string
}

func (a *anonCounter) Refused(src netip.Addr, reason string) {
	a.got = append(a.got, src.String()+" "+reason)
}

// An unidentified caller's refusal is counted by Authenticate's anonymous
// recorder and never reaches Audit; once an agent is known, every outcome
// is recorded.
func TestAnonymousRefusalsAreCountedNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name        string
		credential  string
		noConfig    bool
		err         error
		wantRecords int
		wantAnon    string
	}{
		{name: "unknown key", credential: "pck_0123456789abcdef_bad", wantAnon: "192.0.2.7 unauthenticated"},
		{name: "no credential", wantAnon: "192.0.2.7 unauthenticated"},
		{name: "no configuration", credential: goodKey, noConfig: true, wantAnon: "192.0.2.7 no_config"},
		{name: "agent known, denied later", credential: goodKey, err: pipeline.Refuse(pipeline.ReasonDenied, "no"), wantRecords: 1},
		{name: "agent known, allowed", credential: goodKey, wantRecords: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, anon := &recorder{}, &anonCounter{}
			var cfg pipeline.Config = newFake()
			if tc.noConfig {
				cfg = nil
			}
			call := fakeCall(cfg, writeTool.Action)
			call.Credential = tc.credential
			h := pipeline.Chain(func(context.Context, *pipeline.Call) (*pipeline.Result, error) {
				return &pipeline.Result{}, tc.err
			}, stages.Authenticate{Anonymous: anon}, stages.Audit{Writer: rec, Dataplane: "dp-1"})
			_, _ = h(context.Background(), call)
			if n := len(rec.all()); n != tc.wantRecords {
				t.Errorf("%d records, want %d", n, tc.wantRecords)
			}
			if got := strings.Join(anon.got, ","); got != tc.wantAnon {
				t.Errorf("anonymous refusals %q, want %q", got, tc.wantAnon)
			}
		})
	}
}
