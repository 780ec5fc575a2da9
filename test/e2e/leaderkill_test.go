package e2e

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestClusterSurvivesLeaderKill is the acceptance test of the replicated
// control plane: a steady writer keeps creating agents through gwctl (all
// three URLs in --server) while the leader is killed with SIGKILL a third of
// the way through and restarted from its data dir two thirds of the way
// through. Every write gwctl acknowledged must then be on every node, no
// agent twice, and writes must succeed again within seconds of the kill.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	c := harness.Cluster3(t)
	victim := c.Leader(t, 10*time.Second)
	t.Logf("leader before the kill: %s", victim.NodeID)

	const total = 90
	type write struct {
		name string
		res  harness.Result
	}
	var (
		mu        sync.Mutex
		writes    []write
		stop      atomic.Bool
		done      = make(chan struct{})
		third     = make(chan struct{}) // the writer starts write total/3
		twoThirds = make(chan struct{}) // the writer starts write 2*total/3
	)
	urls := c.URLs()
	go func() {
		defer close(done)
		for i := 1; i <= total && !stop.Load(); i++ {
			switch i {
			case total / 3:
				close(third)
			case 2 * total / 3:
				close(twoThirds)
			}
			name := fmt.Sprintf("w-%04d", i)
			servers := strings.Join(rotate(urls, i), ",")
			r := harness.Gwctl(t, c.BaseEnv(), "--server", servers, "agent", "create", name, "--timeout", "20s", "-o", "json")
			mu.Lock()
			writes = append(writes, write{name, r})
			mu.Unlock()
		}
	}()
	// Runs before the cluster's cleanups, so a failing test never leaves the
	// writer talking to dead nodes.
	t.Cleanup(func() {
		stop.Store(true)
		<-done
	})
	awaitSignal := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-done:
			t.Fatalf("the writer finished before %s", what)
		case <-time.After(2 * time.Minute):
			t.Fatalf("the writer did not reach %s within 2m", what)
		}
	}

	awaitSignal(third, "a third of its writes")
	victim.Kill()
	killedAt := time.Now()

	newLeader := c.Leader(t, 15*time.Second)
	electedIn := time.Since(killedAt)
	if newLeader == victim {
		t.Fatalf("the killed node %s is still named leader", victim.NodeID)
	}
	t.Logf("new leader %s observed %s after the kill", newLeader.NodeID, electedIn.Round(time.Millisecond))

	awaitSignal(twoThirds, "two thirds of its writes")
	victim.Restart()
	victim.AwaitReady(t, harness.StartTimeout)
	t.Logf("%s restarted from its data dir and ready %s after the kill", victim.NodeID, time.Since(killedAt).Round(time.Millisecond))
	// Not part of the acceptance, but worth knowing: how long after /readyz
	// the restarted node serves the admin API (it refuses tokens until it
	// has re-applied its log).
	readyAt := time.Now()
	if st, err := c.Status(t, victim); err != nil {
		t.Logf("%s right after /readyz said ready: cluster status fails: %v", victim.NodeID, err)
		harness.Await(t, 30*time.Second, victim.NodeID+" serves cluster status", func() error {
			_, err := c.Status(t, victim)
			return err
		})
		t.Logf("%s serves the admin API %s after /readyz said ready", victim.NodeID, time.Since(readyAt).Round(time.Millisecond))
	} else {
		t.Logf("%s right after /readyz said ready: leader %s, applied index %d", victim.NodeID, st.LeaderID, st.AppliedIndex)
	}

	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the writer did not finish within 3m")
	}

	attempted := map[string]bool{}
	acked := map[string]bool{}
	var failed []string
	var firstAfterKill *write
	for i := range writes {
		w := &writes[i]
		attempted[w.name] = true
		if !w.res.OK() {
			failed = append(failed, fmt.Sprintf("%s (started %+.3fs from the kill): %s", w.name,
				w.res.Start.Sub(killedAt).Seconds(), strings.TrimSpace(w.res.Stderr)))
			if strings.Contains(w.res.Stderr, "already_exists") {
				t.Errorf("%s: gwctl's retry was not deduplicated: %s", w.name, w.res.Stderr)
			}
			continue
		}
		acked[w.name] = true
		if firstAfterKill == nil && w.res.Start.After(killedAt) {
			firstAfterKill = w
		}
	}
	t.Logf("%d writes: %d acknowledged, %d failed", len(writes), len(acked), len(failed))
	for _, f := range failed {
		t.Logf("  unacknowledged: %s", f)
	}
	if len(writes) != total {
		t.Fatalf("the writer made %d writes, want %d", len(writes), total)
	}
	if firstAfterKill == nil {
		t.Fatal("no write issued after the kill was acknowledged")
	}
	recovery := firstAfterKill.res.Start.Add(firstAfterKill.res.Elapsed).Sub(killedAt)
	t.Logf("kill → first acknowledged write issued after it (%s): %s", firstAfterKill.name, recovery.Round(time.Millisecond))
	if recovery > 5*time.Second {
		t.Errorf("writes succeeded again only %s after the leader was killed, want within 5s", recovery.Round(time.Millisecond))
	}

	// Every acknowledged write on every node, each node asked alone with
	// --server <node> (local reads: the point is what each replica holds),
	// nothing twice, nothing that was never attempted.
	sets := map[string]map[string]int{}
	c.AwaitOnEveryNode(t, 30*time.Second, "every acknowledged write present", func(cp *harness.ControlPlane, _ []string) error {
		names, err := agentNames(t, c.BaseEnv(), "--server", cp.URL)
		if err != nil {
			return err
		}
		ws := withPrefix(names, "w-")
		if m := missing(acked, ws); len(m) > 0 {
			return fmt.Errorf("%d acknowledged writes missing: %v", len(m), m)
		}
		if d := duplicates(ws); len(d) > 0 {
			t.Errorf("%s lists agents more than once: %v", cp.NodeID, d)
		}
		for n := range ws {
			if !attempted[n] {
				t.Errorf("%s lists agent %s that was never written", cp.NodeID, n)
			}
		}
		sets[cp.NodeID] = ws
		return nil
	})
	// Unacknowledged writes may or may not have happened, but all replicas
	// must agree on which did.
	harness.Await(t, 15*time.Second, "all nodes hold the same agents", func() error {
		for _, cp := range c.Nodes {
			names, err := agentNames(t, c.BaseEnv(), "--server", cp.URL)
			if err != nil {
				return err
			}
			sets[cp.NodeID] = withPrefix(names, "w-")
		}
		for _, cp := range c.Nodes[1:] {
			if !maps.Equal(sets[cp.NodeID], sets[c.Nodes[0].NodeID]) {
				return fmt.Errorf("%s holds %v, %s holds %v", cp.NodeID, sortedKeys(sets[cp.NodeID]),
					c.Nodes[0].NodeID, sortedKeys(sets[c.Nodes[0].NodeID]))
			}
		}
		return nil
	})
	var applied []string
	for n := range sets[c.Nodes[0].NodeID] {
		if !acked[n] {
			applied = append(applied, n)
		}
	}
	t.Logf("all 3 nodes hold the %d acknowledged writes; unacknowledged writes that were applied anyway: %v", len(acked), applied)

	c.MustCleanShutdown(t)
}
