package drills

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	"github.com/portcullis-gw/portcullis/test/harness"
)

// DataplaneRestartWhileCPDown kills the only control-plane node, waits
// for the data plane to turn degraded, kills it with SIGKILL and starts it
// again: with no control plane to ask, it must serve its last-known-good
// snapshot from disk in degraded mode, at the version it served before,
// serving read-only calls and refusing mutating ones with reason
// "degraded".
func DataplaneRestartWhileCPDown(t testing.TB, s Size, v *Verdict) {
	g := startGateway(t, gatewaySpec{nodes: 1, dataplanes: []string{"dp1"}})
	dp := g.dps[0]
	before, err := dp.Readyz()
	if err != nil {
		t.Fatal(err)
	}
	g.c.Nodes[0].Kill()
	awaitMode(t, dp, "degraded", before.Version, degradedAfter+10*time.Second)

	dp.Kill()
	logFrom := len(dp.Log.String())
	dp.Restart()
	restartedAt := time.Now()
	dp.AwaitServing(t, harness.StartTimeout)
	awaitMode(t, dp, "degraded", before.Version, 15*time.Second)
	took := time.Since(restartedAt)
	st, err := dp.Readyz()
	if err != nil {
		t.Fatal(err)
	}
	v.Figure("dp1 killed while degraded and restarted: serving version %d (was %d) in mode %s %s after the restart", st.Version, before.Version, st.Mode, ms(took))
	v.Check(t, st.HTTPStatus == 200 && st.Mode == "degraded" && st.Version == before.Version && !st.ControlPlane,
		"restarted without a control plane, /readyz says %s; want 200, degraded, version %d, no control plane", st, before.Version)
	v.Check(t, strings.Contains(dp.Log.String()[logFrom:], "serving the last-known-good snapshot from disk"),
		"the restarted data plane's log does not say it serves the last-known-good snapshot from disk")

	reads := readLoad(t, g, "demo", g.dps, 1, readEvery)
	muts := mutatingLoad(t, g, g.dps)
	soak(t, s.Phase, "serving from disk")
	checkReads(t, v, reads.Stop())
	mst := summarize(muts.Stop())
	v.Figure("mutating %d calls, %d not refused as degraded", mst.n, mst.failed)
	v.Check(t, mst.n >= 4, "only %d mutating calls were made", mst.n)
	v.Check(t, mst.failed == 0, "%d mutating calls were not refused with reason degraded, first: %v", mst.failed, mst.firstFailures)
}

// DataplaneKill kills a data plane with SIGKILL under read-only load from
// three agents (each one call at a time) and restarts it. Calls in flight
// at the kill may fail, but every call that got an answer must have
// exactly one record, and every record must belong to a call, both in the
// data plane's own log and in the control plane's store it uploads to;
// the hash chains must verify at both (audit.Verify on the local log,
// "gwctl audit verify" on every control-plane node).
//
// Records carry no call id, so they are matched by agent and time: each
// agent has one call in flight at a time, and a call's record is stamped
// with the time the data plane received it, which lies between the call's
// send and its answer.
func DataplaneKill(t testing.TB, s Size, v *Verdict) {
	g := startGateway(t, gatewaySpec{nodes: 1, dataplanes: []string{"dp1"}, agents: []string{"agent-a", "agent-b", "agent-c"}})
	dp := g.dps[0]
	l := startLoad(t, loadSpec{
		workers: len(g.agents), every: 20 * time.Millisecond, dps: g.dps, keys: g.agentKeys(), action: action("demo", readTool),
		args: func(w, i int) map[string]any { return map[string]any{"city": fmt.Sprintf("c%d-%d", w, i)} },
	})
	soak(t, s.Phase, "before the kill")
	dp.Kill()
	killedAt := time.Now()
	dp.Restart()
	dp.AwaitServing(t, harness.StartTimeout)
	awaitMode(t, dp, "normal", g.version, 20*time.Second)
	v.Figure("dp1 killed and serving again %s later", ms(time.Since(killedAt)))
	soak(t, s.Phase, "after the restart")
	calls := l.Stop()

	// The control plane's copy first, while the data plane still runs to
	// upload it; then the data plane's own log, once it is stopped.
	cpTimes, cpFigure := controlPlaneAudit(t, g, dp, v)
	dp.MustCleanShutdown(t) // Verify reads a log no process appends to
	sum, err := audit.Verify(dp.AuditLogDir())
	v.Check(t, err == nil, "the data plane's audit log does not verify: %v", err)
	v.Check(t, sum.First == 1, "the data plane's audit log starts at record %d, not 1", sum.First)

	byAgent := map[string][]time.Time{}
	total := 0
	for r, err := range audit.ReadDir(dp.AuditLogDir(), 1) {
		if err != nil {
			t.Fatalf("read the audit log: %v", err)
		}
		total++
		// Records name the tool as agents do ("demo__get_weather").
		if r.GetTool() == action("demo", readTool) && slices.Contains(g.agents, r.GetAgent()) {
			byAgent[r.GetAgent()] = append(byAgent[r.GetAgent()], r.GetTime().AsTime())
		}
	}
	m := matchAudit(calls, g.agents, byAgent)
	v.Figure("%d calls: %d answered (%d ok), %d unanswered around the kill", len(calls), m.answered, m.ok, len(calls)-m.answered)
	v.Check(t, m.answered > 0 && m.answered < len(calls), "the kill did not cut the load: %d of %d calls answered", m.answered, len(calls))
	v.Figure("data plane log: chain verified (%d segment(s), records %d…%d), %s", sum.Segments, sum.First, sum.Last, m)
	checkMatch(t, v, "the data plane's log", m, len(g.agents))
	cm := matchAudit(calls, g.agents, cpTimes)
	v.Figure("control plane: %s, %s", cpFigure, cm)
	checkMatch(t, v, "the control plane's store", cm, len(g.agents))
	v.Check(t, sum.Last == uint64(total), "the data plane's log holds %d records, its last sequence is %d", total, sum.Last)
}

// checkMatch requires of m that every answered call has exactly one
// record, no record belongs to no call, and at most one call per agent
// (the one in flight at the kill) has a record but no answer.
func checkMatch(t testing.TB, v *Verdict, where string, m auditMatch, agents int) {
	t.Helper()
	v.Check(t, m.none == 0 && m.several == 0, "%s: %d answered calls have no audit record and %d have several", where, m.none, m.several)
	v.Check(t, m.orphans == 0, "%s: %d audit records match no call", where, m.orphans)
	v.Check(t, m.ofUnanswered <= agents, "%s: %d records of unanswered calls, more than one in flight per agent at the kill", where, m.ofUnanswered)
}

// cpRecord is one record of "gwctl audit query -o json".
type cpRecord struct {
	Dataplane string        `json:"dataplane"`
	Sequence  harness.Int64 `json:"sequence"`
	Agent     string        `json:"agent"`
	Tool      string        `json:"tool"`
	Time      time.Time     `json:"time"`
}

// controlPlaneAudit waits until the control plane holds every record of
// dp's local log (the data plane uploads them beside the calls), checks
// that it holds each exactly once (sequences 1…N) and that "gwctl audit
// verify" passes on every node, and returns the times of the load's
// records by agent and a figure.
func controlPlaneAudit(t testing.TB, g *gateway, dp *harness.Dataplane, v *Verdict) (map[string][]time.Time, string) {
	t.Helper()
	local := 0
	for _, err := range audit.ReadDir(dp.AuditLogDir(), 1) {
		if err != nil {
			t.Fatalf("read the audit log: %v", err)
		}
		local++
	}
	var recs []cpRecord
	start := time.Now()
	err := harness.Poll(30*time.Second, func() error {
		var out struct {
			Records []cpRecord `json:"records"`
		}
		r := harness.Gwctl(t, g.c.Env(), "audit", "query", "--dataplane", dp.Name, "--all", "--limit", "1000", "-o", "json", "--timeout", "30s")
		if err := r.Err(); err != nil {
			return err
		}
		if err := r.JSON(&out); err != nil {
			return err
		}
		recs = out.Records
		if len(recs) < local {
			return fmt.Errorf("%d of %d records uploaded", len(recs), local)
		}
		return nil
	})
	v.Check(t, err == nil, "the control plane does not hold the data plane's %d records: %v", local, err)
	seqs := map[int64]int{}
	byAgent := map[string][]time.Time{}
	for _, r := range recs {
		seqs[int64(r.Sequence)]++
		if r.Tool == action("demo", readTool) && slices.Contains(g.agents, r.Agent) {
			byAgent[r.Agent] = append(byAgent[r.Agent], r.Time)
		}
	}
	gapsOrRepeats := 0
	for i := int64(1); i <= int64(len(recs)); i++ {
		if seqs[i] != 1 {
			gapsOrRepeats++
		}
	}
	v.Check(t, len(recs) == local && gapsOrRepeats == 0, "the control plane holds %d records of %s (the local log %d), %d sequences missing or repeated", len(recs), dp.Name, local, gapsOrRepeats)
	verified := 0
	for _, cp := range g.c.Nodes {
		r := harness.Gwctl(t, g.c.Env(cp.URL), "audit", "verify", "-o", "json", "--timeout", "30s")
		if v.Check(t, r.OK(), "gwctl audit verify on %s: %v", cp.NodeID, r.Err()) {
			verified++
		}
	}
	return byAgent, fmt.Sprintf("%d records uploaded (all there %s after the load), sequences 1…%d with %d missing or repeated, gwctl audit verify passed on %d of %d node(s)",
		len(recs), ms(time.Since(start)), len(recs), gapsOrRepeats, verified, len(g.c.Nodes))
}

// auditMatch counts how calls and audit records match.
type auditMatch struct {
	answered, ok int
	records      int
	exactlyOne   int // answered calls with exactly one record
	none         int // answered calls without a record
	several      int // calls with more than one record
	ofUnanswered int // records of calls that got no answer
	orphans      int // records in no call's window
}

// matchAudit matches each agent's records to its calls by time: worker w
// called as agents[w], one call at a time, so each record's time falls in
// at most one of its calls' [send, answer] windows.
func matchAudit(calls []call, agents []string, byAgent map[string][]time.Time) auditMatch {
	var m auditMatch
	for _, ts := range byAgent {
		m.records += len(ts)
	}
	matched := map[string]int{}
	for _, c := range calls {
		agent := agents[c.worker%len(agents)]
		from, to := c.res.Start, c.res.Start.Add(c.res.Elapsed)
		n := 0
		for _, ts := range byAgent[agent] {
			if !ts.Before(from) && !ts.After(to) {
				n++
			}
		}
		matched[agent] += n
		switch {
		case n > 1:
			m.several++
		case !c.answered:
			m.ofUnanswered += n
		case n == 1:
			m.exactlyOne++
		default:
			m.none++
		}
		if c.answered {
			m.answered++
			if c.err == nil {
				m.ok++
			}
		}
	}
	for agent, ts := range byAgent {
		m.orphans += len(ts) - min(len(ts), matched[agent])
	}
	return m
}

func (m auditMatch) String() string {
	return fmt.Sprintf("%d records of the load: %d answered calls with exactly one, %d with none, %d with several; %d of calls in flight at the kill, %d of no call",
		m.records, m.exactlyOne, m.none, m.several, m.ofUnanswered, m.orphans)
}
