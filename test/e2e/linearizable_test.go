package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/portcullis-gw/portcullis/test/harness"
	"github.com/portcullis-gw/portcullis/test/harness/linearize"
)

// fault is one step of a fault schedule: do runs once the clients have
// completed the fraction at of their operations.
type fault struct {
	at   float64
	what string
	do   func(t *testing.T)
}

// TestLinearizableHistory records a concurrent history of secret writes and
// linearizable reads from three gwctl clients, with the leader killed with
// SIGKILL a third of the way through and restarted two thirds of the way
// through, and checks it with porcupine against a versioned register per
// secret. Writes that failed have unknown outcomes (they may still apply
// later) and stay pending; failed reads are dropped.
func TestLinearizableHistory(t *testing.T) {
	c := harness.Cluster3(t)
	victim := c.Leader(t, 10*time.Second)
	checkLinearizable(t, c, 45, []fault{
		{1.0 / 3, "kill -9 the leader " + victim.NodeID, func(*testing.T) { victim.Kill() }},
		{2.0 / 3, "restart " + victim.NodeID, func(t *testing.T) {
			victim.Restart()
			victim.AwaitReady(t, harness.StartTimeout)
		}},
	})
	c.MustCleanShutdown(t)
}

// TestLinearizableHistoryOnEtcd is the same check with the control plane
// on a three-member etcd cluster, under the faults of that setup: an etcd
// member killed with SIGKILL (and restarted), the elected control-plane
// node killed (and restarted), and a control-plane node stopped while etcd
// compacts its history past the node's watch position, then restarted:
// it must resync without a gap.
func TestLinearizableHistoryOnEtcd(t *testing.T) {
	ec := harness.StartEtcd(t, 3)
	c := harness.StartClusterWith(t, harness.ClusterOptions{Nodes: 3, Etcd: ec})
	var elected, stopped *harness.ControlPlane
	var logFrom int
	checkLinearizable(t, c, 150, []fault{
		{1.0 / 6, "kill -9 etcd member m1", func(*testing.T) { ec.Members[0].Kill() }},
		{2.0 / 6, "restart etcd member m1", func(t *testing.T) {
			ec.Members[0].Restart()
			ec.Members[0].AwaitHealthy(t, harness.StartTimeout)
		}},
		{2.0 / 6, "kill -9 the elected control-plane node", func(t *testing.T) {
			elected = c.Leader(t, 10*time.Second)
			t.Logf("the elected node is %s", elected.NodeID)
			elected.Kill()
		}},
		{3.0 / 6, "restart the elected node", func(t *testing.T) {
			elected.Restart()
			elected.AwaitReady(t, harness.StartTimeout)
		}},
		{4.0 / 6, "stop a control-plane node", func(t *testing.T) {
			stopped = c.Followers(c.Leader(t, 10*time.Second))[0]
			t.Logf("stopping %s", stopped.NodeID)
			if err := stopped.Stop(); err != nil {
				t.Errorf("stop %s: %v", stopped.NodeID, err)
			}
		}},
		{5.0 / 6, "compact etcd past the stopped node's position, restart it", func(t *testing.T) {
			ec.Compact(t)
			logFrom = len(stopped.Log.String())
			stopped.Restart()
			stopped.AwaitReady(t, harness.StartTimeout)
		}},
	})
	if log := stopped.Log.String()[logFrom:]; !strings.Contains(log, "compacted") {
		t.Errorf("%s did not meet the compaction on restart (its log says nothing of it):\n%s", stopped.NodeID, log)
	}
	c.MustCleanShutdown(t)
}

// checkLinearizable runs three gwctl clients of opsPerClient operations
// each (secret writes and linearizable reads of three keys, every client
// trying the nodes in its own order), runs the faults as the clients pass
// their marks, and checks the history with porcupine.
func checkLinearizable(t *testing.T, c *harness.Cluster, opsPerClient int, faults []fault) {
	t.Helper()
	const clients = 3
	total := clients * opsPerClient
	keys := []string{"k0", "k1", "k2"}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d; %d clients × %d operations on %v", seed, clients, opsPerClient, keys)

	h := linearize.NewHistory()
	var (
		completed atomic.Int32
		stop      atomic.Bool
		wg        sync.WaitGroup
		urls      = c.URLs()
		progress  = make(chan struct{}, total)
		writeSeq  atomic.Int64
	)
	for id := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(id)))
			env := c.BaseEnv()
			servers := strings.Join(rotate(urls, id), ",")
			for range opsPerClient {
				if stop.Load() {
					return
				}
				in := linearize.Input{Key: keys[rng.IntN(len(keys))], Write: rng.IntN(2) == 0}
				if in.Write {
					in.Value = fmt.Sprintf("v%d", writeSeq.Add(1))
				}
				r := harness.Gwctl(t, env, append([]string{"--server", servers}, linearize.GwctlArgs(in, 10*time.Second)...)...)
				if ok, why := h.Record(id, in, r); !ok && r.OK() {
					t.Errorf("client %d: %s", id, why)
				}
				completed.Add(1)
				progress <- struct{}{}
			}
		}()
	}
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
	})
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	t0 := time.Now()
	for _, f := range faults {
		mark := int32(f.at * float64(total))
		for completed.Load() < mark {
			select {
			case <-progress:
			case <-allDone:
				t.Fatalf("the clients finished before %q", f.what)
			case <-time.After(2 * time.Minute):
				t.Fatalf("the clients did not reach %q within 2m", f.what)
			}
		}
		t.Logf("%+.1fs, %d operations done: %s", time.Since(t0).Seconds(), completed.Load(), f.what)
		f.do(t)
	}
	select {
	case <-allDone:
	case <-time.After(3 * time.Minute):
		t.Fatal("the clients did not finish within 3m")
	}

	s := h.Check(time.Minute)
	t.Logf("history: %d operations recorded (%d acknowledged writes, %d of unknown outcome, %d reads), %d failed, in %s",
		s.Ops, s.Acked, s.Unknown, s.Reads, len(s.Failed), time.Since(t0).Round(100*time.Millisecond))
	for _, f := range s.Failed {
		t.Logf("  failed: %s", f)
	}
	if s.Ops < total/2 {
		t.Errorf("only %d of %d operations are in the history", s.Ops, total)
	}
	if s.Result != porcupine.Ok {
		// ArtifactDir is t.TempDir() unless the run asks to keep artifacts
		// (go test -artifacts -outputdir DIR).
		path := filepath.Join(t.ArtifactDir(), "linearizability.html")
		if err := porcupine.VisualizePath(linearize.Model, s.Info, path); err != nil {
			t.Logf("write the visualization: %v", err)
		}
		t.Errorf("porcupine: the history is %s (not linearizable); visualization: %s", s.Result, path)
		if f, err := os.Stat(path); err == nil {
			t.Logf("visualization: %d bytes; rerun with -artifacts -outputdir DIR to keep it", f.Size())
		}
		return
	}
	t.Logf("porcupine: the history of %d operations is linearizable", s.Ops)
}
