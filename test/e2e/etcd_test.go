package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/portcullis-gw/portcullis/test/harness"
)

// TestMoveBetweenRaftAndEtcd moves a running gateway's control plane from
// Raft to etcd and back, as an operator would: "gwctl snapshot save" on
// the Raft node, a node on etcd started from that backup
// (--bootstrap --restore-from) at the same address, a change made there,
// "gwctl snapshot save" again, and "gwctl snapshot restore" into the Raft
// node restarted. The data plane talks to neither store: it follows its
// control-plane URL through both moves, takes each new epoch from the
// stream, and serves the state of each store, while the admin token and
// the CA it pins stay the same.
func TestMoveBetweenRaftAndEtcd(t *testing.T) {
	g := startGateway(t, 1, "dp1")
	dp, raft := g.dps[0], g.c.Nodes[0]
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))
	fromRaft := filepath.Join(t.TempDir(), "raft.pcs")
	g.gwctl(t, "snapshot", "save", fromRaft, "--linearizable")
	raft.MustCleanShutdown(t)

	ec := harness.StartEtcd(t, 1)
	prefix := "/moved-here"
	onEtcd := harness.StartControlPlane(t, harness.ControlPlaneOptions{
		NodeID: "e1", KEKFile: g.c.KEKFile, APIAddr: raft.APIAddr, Bootstrap: true,
		StoreArgs: harness.EtcdArgs(ec, prefix), Args: []string{"--restore-from", fromRaft},
	})
	onEtcd.AwaitReady(t, harness.StartTimeout)
	if log := onEtcd.Log.String(); !strings.Contains(log, "cluster bootstrapped from a backup") || !strings.Contains(log, g.c.CAFingerprint) {
		t.Fatalf("the node on etcd did not say it started from the backup with the same CA:\n%s", log)
	}
	st := dp.AwaitReadyz(t, 30*time.Second, "epoch 2 from the node on etcd", func(st harness.ReadyStatus) error {
		if st.Epoch != 2 || st.Mode != "normal" {
			return fmt.Errorf("want epoch 2, normal")
		}
		return nil
	})
	t.Logf("on etcd, dp1 serves %s", st)
	mustCall(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"))

	// A change on etcd reaches the data plane.
	var disabled struct {
		Agent revisioned `json:"agent"`
	}
	harness.GwctlJSON(t, g.env(), &disabled, "agent", "disable", "ops-agent", "--timeout", "20s")
	dp.AwaitReadyz(t, 30*time.Second, "the change made on etcd", func(st harness.ReadyStatus) error {
		if st.Epoch != 2 || st.Version < uint64(disabled.Agent.Meta.Revision) {
			return fmt.Errorf("want epoch 2, version ≥ %d", disabled.Agent.Meta.Revision)
		}
		return nil
	})
	mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "unauthenticated")
	if n := ec.Get(t, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()).Count; n == 0 {
		t.Fatalf("nothing under %s in etcd", prefix)
	}

	fromEtcd := filepath.Join(t.TempDir(), "etcd.pcs")
	g.gwctl(t, "snapshot", "save", fromEtcd, "--linearizable")
	onEtcd.MustCleanShutdown(t)
	raft.Restart()
	raft.AwaitReady(t, harness.StartTimeout)
	var res struct {
		Epoch harness.Int64 `json:"epoch"`
	}
	harness.GwctlJSON(t, g.env(), &res, "snapshot", "restore", fromEtcd, "--yes", "--timeout", "20s")
	if res.Epoch != 3 {
		t.Fatalf("the restore into the Raft node started epoch %d, want 3", res.Epoch)
	}
	dp.AwaitReadyz(t, 30*time.Second, "epoch 3 back on Raft", func(st harness.ReadyStatus) error {
		if st.Epoch != 3 || st.Mode != "normal" {
			return fmt.Errorf("want epoch 3, normal")
		}
		return nil
	})
	// The Raft cluster now holds what was changed on etcd.
	mustRefuse(t, dp, g.opsKey, actionWeather, weatherArgs("Oslo"), "unauthenticated")
	g.gwctl(t, "audit", "verify")
	dp.MustCleanShutdown(t)
	g.c.MustCleanShutdown(t)
}
