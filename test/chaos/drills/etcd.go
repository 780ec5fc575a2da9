package drills

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// Etcd runs the control plane on a three-member etcd cluster (three
// control-plane nodes, two data planes) under the load of LeaderKill and
// injects the faults of that setup one after another: an etcd member
// killed with SIGKILL and restarted; the elected control-plane node
// killed and restarted; a node stopped while etcd compacts its history
// past the node's watch position, then restarted (it must resync, never
// skip). The data planes never talk to etcd: every read-only call is
// served throughout, and the config history stays linearizable with every
// acknowledged write present.
func Etcd(t testing.TB, s Size, v *Verdict) {
	g := startGateway(t, gatewaySpec{nodes: 3, etcd: 3, dataplanes: []string{"dp1", "dp2"}})
	reads := readLoad(t, g, "demo", g.dps, readWorkers, readEvery)
	writes := startWriteLoad(t, g.c, writeClients)
	soak(t, s.Phase, "before the faults")

	member := g.etcd.Members[0]
	member.Kill()
	soak(t, s.Phase, "with etcd member "+member.Name+" dead")
	member.Restart()
	restarted := time.Now()
	member.AwaitHealthy(t, harness.StartTimeout)
	v.Figure("etcd member %s killed for %s, healthy %s after its restart", member.Name, s.Phase, ms(time.Since(restarted)))
	soak(t, s.Phase/2, "with etcd member "+member.Name+" back")

	victim := g.c.Leader(t, 10*time.Second)
	victim.Kill()
	killedAt := time.Now()
	next := g.c.Leader(t, 20*time.Second)
	took := time.Since(killedAt)
	v.Check(t, next != victim, "the killed node %s is still named the elected node", victim.NodeID)
	v.Figure("elected node %s killed, %s elected %s later", victim.NodeID, next.NodeID, ms(took))
	soak(t, s.Phase, "with the elected node dead")
	victim.Restart()
	victim.AwaitReady(t, harness.StartTimeout)

	stopped := g.c.Followers(g.c.Leader(t, 10*time.Second))[0]
	if err := stopped.Stop(); err != nil {
		t.Errorf("stop %s: %v", stopped.NodeID, err)
	}
	soak(t, s.Phase, "with "+stopped.NodeID+" stopped")
	rev := g.etcd.Compact(t)
	logFrom := len(stopped.Log.String())
	stopped.Restart()
	back := time.Now()
	stopped.AwaitReady(t, harness.StartTimeout)
	log := stopped.Log.String()[logFrom:]
	v.Check(t, strings.Contains(log, "compacted"), "%s restarted after etcd compacted to revision %d but its log does not say it met the compaction", stopped.NodeID, rev)
	v.Figure("%s restarted after etcd compacted its watch position away (revision %d): ready %s later", stopped.NodeID, rev, ms(time.Since(back)))
	soak(t, s.Phase, "with every node back")

	checkReads(t, v, reads.Stop())
	writes.finish(t, g.c, v)
	st, err := g.c.Status(t, stopped)
	v.Check(t, err == nil && st.LeaderID != "", "%s names no elected node after the drill: %v", stopped.NodeID, err)
	if err == nil {
		v.Figure("%s at applied index %d", stopped.NodeID, st.AppliedIndex)
	}
}
