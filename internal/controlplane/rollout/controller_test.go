package rollout_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/rollout"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// leader is a Leadership a test turns on and off.
type leader struct{ on atomic.Bool }

func (l *leader) IsLeader() bool { return l.on.Load() }

// rig is a one-node Raft store with an audit store, a policy set "limits"
// and a rollout "r1" of it started at t0, and a controller over them whose
// clock the test sets.
type rig struct {
	t     *testing.T
	node  *raftstore.Node
	audit *auditstore.Store
	lead  *leader
	now   time.Time
	c     *rollout.Controller
	seq   uint64
	prev  []byte
}

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func newRig(t *testing.T, gates []string, shadow time.Duration, canary ...uint32) *rig {
	t.Helper()
	audit, err := auditstore.Open(auditstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = audit.Close() })
	n, err := raftstore.Open(raftstore.Config{
		ID: "n1", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Audit: audit,
		Timing: raftstore.Timing{HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	if err := n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, node: n, audit: audit, lead: &leader{}, now: t0, prev: auditchain.Zero}
	r.lead.on.Store(true)
	ro := statetest.Rollout("r1", "limits", "@id(\"none\")\nforbid(principal, action, resource);\n", int64(shadow/time.Second), canary...)
	ro.Plan.Gates = gates
	for i, c := range []*fsmv1.Command{
		statetest.Bootstrap(),
		statetest.Update(statetest.NodeAt("n1", clusterversion.Current())),
		statetest.Create(statetest.PolicySet("limits", statetest.PermitAll)),
		statetest.Create(ro),
	} {
		r.apply(c, i)
	}
	r.c = rollout.New(rollout.Config{Store: n, Records: audit, Leader: r.lead, NodeID: "n1", Now: func() time.Time { return r.now }})
	return r
}

func (r *rig) apply(c *fsmv1.Command, i int) {
	r.t.Helper()
	if c.GetRequestId() == "" {
		c.RequestId = "setup-" + string(rune('a'+i))
	}
	c.Time = timestamppb.New(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.node.Apply(ctx, c)
	if err != nil || res.GetError() != nil {
		r.t.Fatalf("apply %s: %v %v", c.GetMethod(), err, res.GetError())
	}
}

// summary uploads a data plane's summary record for rollout r1.
func (r *rig) summary(stage string, bp uint32, counts ...*auditv1.RolloutCount) {
	r.t.Helper()
	r.seq++
	rec := &auditv1.Record{
		Time: timestamppb.New(r.now), Dataplane: "dp-1", Sequence: r.seq, PrevHash: r.prev, Kind: auditv1.EventKind_EVENT_KIND_ROLLOUT_SUMMARY,
		Detail: &auditv1.Record_RolloutSummary{RolloutSummary: &auditv1.RolloutSummary{Rollout: "r1", Stage: stage, CanaryBasisPoints: bp, Counts: counts}},
	}
	sum, _, err := auditchain.Hash(rec, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	rec.Hash, r.prev = sum[:], sum[:]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.node.Apply(ctx, &fsmv1.Command{Op: &fsmv1.Command_AppendAudit{AppendAudit: &fsmv1.AppendAudit{Dataplane: "dp-1", Records: []*auditv1.Record{rec}}}})
	if err != nil || res.GetError() != nil {
		r.t.Fatalf("upload: %v %v", err, res.GetError())
	}
}

func (r *rig) step() *configv1.Rollout {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.c.Step(ctx); err != nil {
		r.t.Fatalf("Step: %v", err)
	}
	got, ok := r.node.LocalState().Get(resource.Rollout, "r1")
	if !ok {
		r.t.Fatal("rollout r1 is gone")
	}
	return got.GetRollout()
}

func count(cohort string, calls, allowToDeny uint64) *auditv1.RolloutCount {
	return &auditv1.RolloutCount{Agent: "bot", Tool: "up__send", Cohort: cohort, Calls: calls, AllowToDeny: allowToDeny, Forwarded: calls}
}

func TestControllerPromotesWhenTheStageIsOver(t *testing.T) {
	r := newRig(t, nil, time.Minute, 2500, 5000)
	if ro := r.step(); ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_SHADOW {
		t.Fatalf("promoted before the shadow stage was over: %v", ro.GetStage())
	}
	r.now = t0.Add(time.Minute)
	ro := r.step()
	if ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_CANARY || ro.GetCanaryStep() != 0 {
		t.Fatalf("after the shadow stage: %v step %d, want canary step 0", ro.GetStage(), ro.GetCanaryStep())
	}
	last := ro.GetTransitions()[len(ro.GetTransitions())-1]
	if !last.GetAutomatic() || last.GetActor() != "node:n1" {
		t.Fatalf("transition %v: want an automatic one by node:n1", last)
	}
	// A new controller (a new leader) continues from the replicated state.
	r.c = rollout.New(rollout.Config{Store: r.node, Records: r.audit, Leader: r.lead, NodeID: "n1", Now: func() time.Time { return r.now }})
	r.now = r.now.Add(time.Minute + time.Second)
	if ro := r.step(); ro.GetCanaryStep() != 1 {
		t.Fatalf("the next leader did not move to the next step: %v step %d", ro.GetStage(), ro.GetCanaryStep())
	}
	r.now = r.now.Add(time.Minute)
	if ro := r.step(); ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE {
		t.Fatalf("after the last step: %v", ro.GetStage())
	}
}

func TestControllerActsOnlyOnTheLeader(t *testing.T) {
	r := newRig(t, []string{"allow_to_deny>0"}, time.Minute)
	r.lead.on.Store(false)
	r.summary("shadow", 0, count("shadow", 10, 10))
	r.now = t0.Add(time.Hour)
	if ro := r.step(); ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_SHADOW {
		t.Fatalf("a follower changed the rollout: %v", ro.GetStage())
	}
	r.lead.on.Store(true)
	if ro := r.step(); ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_ROLLED_BACK {
		t.Fatalf("the leader did not roll back: %v", ro.GetStage())
	}
}

func TestControllerRollsBackOnABreach(t *testing.T) {
	tests := []struct {
		name    string
		gates   []string
		paused  bool
		uploads func(r *rig)
		stage   configv1.RolloutStage
		reason  string
	}{
		{name: "a deny increase", gates: []string{"deny_increase>10%"}, uploads: func(r *rig) {
			r.summary("shadow", 0, count("shadow", 5, 0))
			r.summary("shadow", 0, count("shadow", 5, 2))
		}, stage: configv1.RolloutStage_ROLLOUT_STAGE_ROLLED_BACK, reason: "gate deny_increase>10% breached in shadow: 20% (2 of 10 calls)"},
		{name: "under the threshold", gates: []string{"deny_increase>10%"}, uploads: func(r *rig) {
			r.summary("shadow", 0, count("shadow", 10, 1))
		}, stage: configv1.RolloutStage_ROLLOUT_STAGE_SHADOW},
		{name: "another rollout's counts", gates: []string{"eval_errors>0"}, uploads: func(r *rig) {
			r.seq++
			rec := &auditv1.Record{Time: timestamppb.New(r.now), Dataplane: "dp-1", Sequence: r.seq, PrevHash: r.prev, Kind: auditv1.EventKind_EVENT_KIND_ROLLOUT_SUMMARY,
				Detail: &auditv1.Record_RolloutSummary{RolloutSummary: &auditv1.RolloutSummary{Rollout: "r0", Stage: "shadow",
					Counts: []*auditv1.RolloutCount{{Agent: "a", Tool: "t", Cohort: "shadow", Calls: 1, EvalErrors: 1}}}}}
			sum, _, _ := auditchain.Hash(rec, nil)
			rec.Hash, r.prev = sum[:], sum[:]
			if _, err := r.audit.Append("dp-1", []*auditv1.Record{rec}); err != nil {
				t.Fatal(err)
			}
		}, stage: configv1.RolloutStage_ROLLOUT_STAGE_SHADOW},
		{name: "paused rollouts are still judged", gates: []string{"eval_errors>0"}, paused: true, uploads: func(r *rig) {
			r.summary("shadow", 0, &auditv1.RolloutCount{Agent: "a", Tool: "t", Cohort: "shadow", Calls: 3, EvalErrors: 1})
		}, stage: configv1.RolloutStage_ROLLOUT_STAGE_ROLLED_BACK, reason: "gate eval_errors>0 breached in shadow: 1 of 3 calls"},
		{name: "min calls hold the judgement", gates: []string{"min_calls=10", "allow_to_deny>0"}, uploads: func(r *rig) {
			r.summary("shadow", 0, count("shadow", 9, 9))
		}, stage: configv1.RolloutStage_ROLLOUT_STAGE_SHADOW},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.gates, time.Hour)
			if tt.paused {
				r.apply(statetest.Change("r1", fsmv1.RolloutAction_ROLLOUT_ACTION_PAUSE, configv1.RolloutStage_ROLLOUT_STAGE_SHADOW, 0, ""), 9)
			}
			tt.uploads(r)
			ro := r.step()
			if ro.GetStage() != tt.stage || ro.GetReason() != tt.reason {
				t.Fatalf("rollout at %v with reason %q, want %v with %q", ro.GetStage(), ro.GetReason(), tt.stage, tt.reason)
			}
			if tt.reason != "" {
				last := ro.GetTransitions()[len(ro.GetTransitions())-1]
				if !last.GetAutomatic() || last.GetAction() != "rollback" {
					t.Fatalf("transition %v: want an automatic rollback", last)
				}
				// The alert seam reads the audit record the state machine
				// wrote for it.
				recs, _, err := r.audit.Query(auditstore.Filter{DP: auditstore.ControlPlane, Kind: auditv1.EventKind_EVENT_KIND_ROLLOUT}, "", 100)
				if err != nil {
					t.Fatal(err)
				}
				var alerts []rollout.Alert
				for _, rec := range recs {
					if a, ok := rollout.AlertOf(rec); ok {
						alerts = append(alerts, a)
					}
				}
				if len(alerts) != 1 || alerts[0].Rollout != "r1" || alerts[0].FromStage != "shadow" || !strings.Contains(alerts[0].Reason, tt.gates[0]) {
					t.Fatalf("alerts %+v: want one for r1's rollback from shadow", alerts)
				}
			}
		})
	}
}

func TestControllerWaitsForMinCalls(t *testing.T) {
	r := newRig(t, []string{"min_calls=5"}, time.Minute)
	r.now = t0.Add(2 * time.Minute)
	r.summary("shadow", 0, count("shadow", 4, 0))
	if ro := r.step(); ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_SHADOW {
		t.Fatalf("promoted with 4 of 5 calls: %v", ro.GetStage())
	}
	st, err := rollout.StatusOf(r.mustRollout(), r.audit, r.now)
	if err != nil || !strings.Contains(st.Next, "waiting for min_calls=5 (counted 4)") {
		t.Fatalf("status next %q, %v", st.Next, err)
	}
	r.summary("shadow", 0, count("shadow", 1, 0))
	if ro := r.step(); ro.GetStage() != configv1.RolloutStage_ROLLOUT_STAGE_COMPLETE {
		t.Fatalf("not promoted with 5 calls: %v", ro.GetStage())
	}
}

func (r *rig) mustRollout() *configv1.Rollout {
	got, _ := r.node.LocalState().Get(resource.Rollout, "r1")
	return got.GetRollout()
}

func TestStatus(t *testing.T) {
	r := newRig(t, []string{"deny_increase>50%", "upstream_errors_canary>2×baseline"}, time.Minute, 5000)
	r.summary("shadow", 0, count("shadow", 10, 2), &auditv1.RolloutCount{Agent: "ops", Tool: "up__send", Cohort: "shadow", Calls: 4})
	r.now = t0.Add(time.Minute)
	r.step()
	r.summary("canary", 5000, count("canary", 6, 1), &auditv1.RolloutCount{Agent: "ops", Tool: "up__send", Cohort: "baseline", Calls: 4, Forwarded: 4, UpstreamErrors: 1})
	st, err := rollout.StatusOf(r.mustRollout(), r.audit, r.now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range st.Totals {
		got = append(got, rollout.StepName(row.Step)+"/"+row.Cohort)
	}
	if strings.Join(got, ",") != "shadow/shadow,canary 50%/canary,canary 50%/baseline" || st.Totals[0].Calls != 14 || st.Totals[0].AllowToDeny != 2 {
		t.Fatalf("totals %v %+v", got, st.Totals)
	}
	if len(st.Gates) != 2 || !st.Gates[0].Judged || st.Gates[0].Breached || st.Gates[1].Value != "0% of 6 canary calls vs baseline 25% of 4" {
		t.Fatalf("gates %+v", st.Gates)
	}
	if len(st.Differences) != 2 || st.Differences[0].Agent != "bot" || st.Differences[0].Step.Stage != "shadow" {
		t.Fatalf("differences %+v", st.Differences)
	}
	if !strings.Contains(st.Next, "canary 50% until") || !strings.Contains(st.Next, "then complete") {
		t.Fatalf("next %q", st.Next)
	}
}
