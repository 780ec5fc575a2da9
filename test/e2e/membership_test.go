package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestNodeRemovedAndRejoins removes a follower with "gwctl cluster remove",
// shows that the cluster keeps taking writes without it and that it stops
// receiving them, re-adds it with "gwctl cluster join" and shows that it
// catches up: its own local reads list every agent written meanwhile.
func TestNodeRemovedAndRejoins(t *testing.T) {
	c := harness.Cluster3(t)
	leader := c.Leader(t, 10*time.Second)
	// The brief's example removes n3; any follower will do when n3 leads.
	removed := c.Node(t, "n3")
	if removed == leader {
		removed = c.Node(t, "n2")
	}
	var rest []*harness.ControlPlane
	var restIDs, restURLs []string
	for _, cp := range c.Nodes {
		if cp != removed {
			rest = append(rest, cp)
			restIDs = append(restIDs, cp.NodeID)
			restURLs = append(restURLs, cp.URL)
		}
	}
	env := c.Env(restURLs...)
	t.Logf("leader %s; removing follower %s", leader.NodeID, removed.NodeID)

	harness.MustGwctl(t, env, "cluster", "remove", removed.NodeID)
	c.AwaitMembers(t, restIDs, 15*time.Second)
	if st, err := c.Status(t, removed); err == nil {
		t.Logf("the removed node %s now reports leader %q, members %+v", removed.NodeID, st.LeaderID, st.Members)
	} else {
		t.Logf("the removed node %s: cluster status fails: %v", removed.NodeID, err)
	}

	want := map[string]bool{}
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("during-removal-%d", i)
		harness.MustGwctl(t, env, "agent", "create", name)
		want[name] = true
	}
	// The two remaining nodes have every write; the removed one none of them.
	for _, cp := range rest {
		harness.Await(t, 10*time.Second, "writes on "+cp.NodeID, func() error {
			names, err := agentNames(t, c.Env(cp.URL))
			if err != nil {
				return err
			}
			if m := missing(want, names); len(m) > 0 {
				return fmt.Errorf("missing %v", m)
			}
			return nil
		})
	}
	if names, err := agentNames(t, c.Env(removed.URL)); err != nil {
		t.Logf("local read on the removed node %s fails: %v", removed.NodeID, err)
	} else if got := withPrefix(names, "during-removal-"); len(got) > 0 {
		t.Errorf("the removed node %s received writes made after its removal: %v", removed.NodeID, sortedKeys(got))
	}

	harness.MustGwctl(t, env, "cluster", "join",
		"--node-id", removed.NodeID, "--raft-addr", removed.RaftAddr, "--api-addr", removed.APIAddr)
	c.AwaitMembers(t, c.NodeIDs(), 20*time.Second)

	// Once more through the re-added node itself, which forwards to the
	// leader.
	harness.MustGwctl(t, c.Env(removed.URL), "agent", "create", "after-rejoin")
	want["after-rejoin"] = true

	c.AwaitOnEveryNode(t, 20*time.Second, "every agent written during and after the removal", func(cp *harness.ControlPlane, env []string) error {
		names, err := agentNames(t, env)
		if err != nil {
			return err
		}
		if m := missing(want, names); len(m) > 0 {
			return fmt.Errorf("missing %v (has %v)", m, sortedKeys(names))
		}
		if d := duplicates(names); len(d) > 0 {
			t.Errorf("%s lists agents more than once: %v", cp.NodeID, d)
		}
		return nil
	})
	st, err := c.Status(t, removed)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Voters(); !slices.Equal(got, c.NodeIDs()) {
		t.Errorf("%s reports voters %v after rejoining, want %v", removed.NodeID, got, c.NodeIDs())
	}
	t.Logf("%s rejoined and caught up: applied index %d, leader %s", removed.NodeID, st.AppliedIndex, st.LeaderID)

	c.MustCleanShutdown(t)
}
