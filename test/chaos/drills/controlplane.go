package drills

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Read-only load of the control-plane drills: two workers, each a call
// every 50ms at most, over both data planes.
const (
	readWorkers = 2
	readEvery   = 50 * time.Millisecond
	// writeClients are the gwctl clients of the config-write load.
	writeClients = 2
)

// soak lets the load run for d. It is a drill's load window, not a wait
// for the system to settle (those wait on conditions); it ends the drill
// early when the run is interrupted.
func soak(t testing.TB, d time.Duration, what string) {
	t.Helper()
	t.Logf("%s: load for %s", what, d)
	select {
	case <-time.After(d):
	case <-t.Context().Done():
		t.Fatalf("interrupted during %s", what)
	}
}

// LeaderKill kills the Raft leader with SIGKILL while gwctl clients write
// and read config and agents make read-only calls through two data
// planes, waits for a new leader, restarts the old one from its data dir,
// and checks that the config history is linearizable with every
// acknowledged write present, and that no read-only call failed.
func LeaderKill(t testing.TB, s Size, v *Verdict) {
	g := startGateway(t, gatewaySpec{nodes: 3, dataplanes: []string{"dp1", "dp2"}})
	reads := readLoad(t, g, "demo", g.dps, readWorkers, readEvery)
	writes := startWriteLoad(t, g.c, writeClients)
	soak(t, s.Phase, "before the kill")

	victim := g.c.Leader(t, 10*time.Second)
	victim.Kill()
	killedAt := time.Now()
	next := g.c.Leader(t, 15*time.Second)
	failover := time.Since(killedAt)
	v.Check(t, next != victim, "the killed node %s is still named leader", victim.NodeID)
	v.Figure("leader %s killed, %s leads %s later", victim.NodeID, next.NodeID, ms(failover))
	soak(t, s.Phase, "with the old leader dead")

	victim.Restart()
	victim.AwaitReady(t, harness.StartTimeout)
	soak(t, s.Phase, "with the old leader back")

	checkReads(t, v, reads.Stop())
	writes.finish(t, g.c, v)
}

// Partition stops the leader with SIGSTOP for s.Pause (the other two
// elect a new one), continues it, then does the same to a follower, all
// under the load of LeaderKill and with the same invariants.
func Partition(t testing.TB, s Size, v *Verdict) {
	g := startGateway(t, gatewaySpec{nodes: 3, dataplanes: []string{"dp1", "dp2"}})
	reads := readLoad(t, g, "demo", g.dps, readWorkers, readEvery)
	writes := startWriteLoad(t, g.c, writeClients)
	soak(t, s.Phase, "before the partitions")

	var last *harness.ControlPlane // the previous victim
	for _, role := range []string{"leader", "follower"} {
		leader := g.c.Leader(t, 20*time.Second)
		victim := leader
		if role == "follower" {
			// A follower other than the node just continued, if there is one.
			fs := g.c.Followers(leader)
			victim = fs[0]
			if victim == last && len(fs) > 1 {
				victim = fs[1]
			}
		}
		last = victim
		victim.Pause()
		paused := true
		resume := func() {
			if paused {
				victim.Resume()
				paused = false
			}
		}
		t.Cleanup(resume) // a failed drill must not leave it stopped
		pausedAt := time.Now()
		others := slices.DeleteFunc(slices.Clone(g.c.Nodes), func(cp *harness.ControlPlane) bool { return cp == victim })
		id, err := agreedLeader(t, g.c, others, s.Pause+10*time.Second)
		took := time.Since(pausedAt)
		switch role {
		case "leader":
			v.Check(t, err == nil && id != victim.NodeID, "with leader %s stopped the others agree on %q (%v)", victim.NodeID, id, err)
			v.Figure("leader %s stopped %s: %s leads %s later", victim.NodeID, s.Pause, id, ms(took))
		default:
			v.Check(t, err == nil && id == leader.NodeID, "with follower %s stopped the others agree on %q (%v), want %s still", victim.NodeID, id, err, leader.NodeID)
			v.Figure("follower %s stopped %s: leader %s kept", victim.NodeID, s.Pause, id)
		}
		if rest := s.Pause - time.Since(pausedAt); rest > 0 {
			soak(t, rest, fmt.Sprintf("with %s %s stopped", role, victim.NodeID))
		}
		resume()
		g.c.Leader(t, 20*time.Second) // all three agree again
		soak(t, s.Phase, fmt.Sprintf("after %s %s continued", role, victim.NodeID))
	}

	checkReads(t, v, reads.Stop())
	writes.finish(t, g.c, v)
}

// agreedLeader waits until every node of nodes, asked alone, names the
// same leader among them, and returns its id.
func agreedLeader(t testing.TB, c *harness.Cluster, nodes []*harness.ControlPlane, timeout time.Duration) (string, error) {
	var id string
	err := harness.Poll(timeout, func() error {
		id = ""
		for _, cp := range nodes {
			st, err := c.Status(t, cp)
			if err != nil {
				return err
			}
			if st.LeaderID == "" || (id != "" && st.LeaderID != id) {
				return fmt.Errorf("%s names leader %q, another %q", cp.NodeID, st.LeaderID, id)
			}
			id = st.LeaderID
		}
		for _, cp := range nodes {
			if cp.NodeID == id {
				return nil
			}
		}
		return fmt.Errorf("they name %s, not one of them", id)
	})
	return id, err
}

// checkReads records the read-only calls' figures and requires that none
// failed.
func checkReads(t testing.TB, v *Verdict, calls []call) {
	t.Helper()
	st := summarize(calls)
	v.Figure("read-only %s", st)
	v.Check(t, st.n >= 10, "only %d read-only calls were made", st.n)
	v.Check(t, st.failed == 0, "%d read-only calls failed, first: %v", st.failed, st.firstFailures)
}

// normalWithin bounds how long after the control-plane processes start
// again the data planes must serve normally (mutating calls included).
const normalWithin = 20 * time.Second

// AllControlPlanesDown kills every control-plane node under read-only
// load: the data planes turn degraded, serve every read-only call and
// refuse every mutating call with reason "degraded"; once the nodes are
// restarted the data planes are back to normal service, mutating calls
// included, within normalWithin.
func AllControlPlanesDown(t testing.TB, s Size, v *Verdict) {
	g := startGateway(t, gatewaySpec{nodes: 3, dataplanes: []string{"dp1", "dp2"}})
	reads := readLoad(t, g, "demo", g.dps, readWorkers, readEvery)
	soak(t, s.Phase/2, "before the kill")

	for _, cp := range g.c.Nodes {
		cp.Kill()
	}
	killedAt := time.Now()
	for _, dp := range g.dps {
		awaitMode(t, dp, "degraded", g.version, degradedAfter+10*time.Second)
	}
	v.Figure("all 3 nodes killed, data planes degraded after %s", ms(time.Since(killedAt)))

	muts := mutatingLoad(t, g, g.dps)
	soak(t, s.Phase, "with no control plane")
	refusals := muts.Stop()
	mst := summarize(refusals)
	v.Figure("mutating %d calls while degraded, %d not refused as degraded", mst.n, mst.failed)
	v.Check(t, mst.n >= 4, "only %d mutating calls were made while degraded", mst.n)
	v.Check(t, mst.failed == 0, "%d mutating calls were not refused with reason degraded, first: %v", mst.failed, mst.firstFailures)

	for _, cp := range g.c.Nodes {
		cp.Restart()
	}
	restartedAt := time.Now()
	var slowest time.Duration
	for _, dp := range g.dps {
		err := harness.Poll(normalWithin+10*time.Second, func() error {
			st, err := dp.Readyz()
			if err != nil {
				return err
			}
			if st.Mode != "normal" || !st.ControlPlane {
				return fmt.Errorf("/readyz says %s", st)
			}
			return mutatingCall(g, dp)
		})
		took := time.Since(restartedAt)
		slowest = max(slowest, took)
		v.Check(t, err == nil && took <= normalWithin, "%s not in normal service %s after the nodes restarted (bound %s): %v", dp.Name, took.Round(time.Millisecond), normalWithin, err)
	}
	v.Figure("normal service (mode normal, mutating call served) %s after the nodes restarted (bound %s)", slowest.Round(100*time.Millisecond), normalWithin)
	soak(t, s.Phase/2, "with the control plane back")
	checkReads(t, v, reads.Stop())
}

// mutatingLoad calls send_payment through dps, one call every 200ms at
// most; a call counts as failed unless the gateway refused it with reason
// "degraded".
func mutatingLoad(t testing.TB, g *gateway, dps []*harness.Dataplane) *load {
	return startLoad(t, loadSpec{
		workers: 1, every: 200 * time.Millisecond, dps: dps, keys: g.agentKeys(), action: action("demo", writeTool),
		args: func(_, i int) map[string]any { return map[string]any{"to": "acme", "amount": 100 + i} },
		validate: func(c harness.ToolCall, _ map[string]any) error {
			if c.Err() == nil || c.Reason != "degraded" {
				return fmt.Errorf("HTTP %d, isError %t, reason %q (%s); want a refusal with reason degraded", c.HTTPStatus, c.IsError, c.Reason, c.Text)
			}
			return nil
		},
	})
}

// mutatingCall makes one send_payment call through dp and returns nil
// when it was served.
func mutatingCall(g *gateway, dp *harness.Dataplane) error {
	c, err := dp.CallTool(context.Background(), g.agentKeys()[0], action("demo", writeTool), map[string]any{"to": "acme", "amount": 1})
	if err != nil {
		return err
	}
	return c.Err()
}
