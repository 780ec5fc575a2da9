// Package rafttest starts a real one-node Raft store for tests of the
// packages that stand on it: bootstrapped on loopback with short timing,
// with an audit store, its node record at the cluster version this binary
// supports (so every command is allowed), stopped when the test ends.
package rafttest

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Start returns a bootstrapped node that leads, and its audit store.
func Start(t testing.TB) (*raftstore.Node, *auditstore.Store) {
	t.Helper()
	dir := t.TempDir()
	audit, err := auditstore.Open(auditstore.Options{Dir: filepath.Join(dir, "audit")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	n, err := raftstore.Open(raftstore.Config{
		ID: "n1", DataDir: dir, RaftBind: addr, Audit: audit,
		Timing: raftstore.Timing{HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.Shutdown()
		_ = audit.Close()
	})
	if err := n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !n.IsLeader() {
		select {
		case <-ctx.Done():
			t.Fatal("the node did not become leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
	MustApply(t, n, statetest.Bootstrap(), statetest.Update(statetest.NodeVersion("n1", uint32(clusterversion.Current()))))
	return n, audit
}

// MustApply applies commands in order, failing the test on any error or
// refusal.
func MustApply(t testing.TB, n *raftstore.Node, cmds ...*fsmv1.Command) *fsmv1.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res *fsmv1.Result
	for _, cmd := range cmds {
		var err error
		if cmd.GetTime() == nil {
			cmd.Time = timestamppb.Now()
		}
		res, err = n.Apply(ctx, cmd)
		if err != nil {
			t.Fatalf("apply %s: %v", cmd.GetMethod(), err)
		}
		if res.GetError() != nil {
			t.Fatalf("apply %s: %v", cmd.GetMethod(), res.GetError())
		}
	}
	return res
}

// Uploader appends records of one data plane through the log, as a data
// plane's uploads do.
type Uploader struct {
	Dataplane string
	next      uint64
	prev      []byte
}

// Upload appends recs (their chain fields are filled in) as the next
// records of the data plane.
func (u *Uploader) Upload(t testing.TB, n *raftstore.Node, recs ...*auditv1.Record) {
	t.Helper()
	if u.prev == nil {
		u.next, u.prev = 1, auditchain.Zero
	}
	for _, r := range recs {
		if r.GetTime() == nil {
			r.Time = timestamppb.Now()
		}
		r.Dataplane, r.Sequence, r.PrevHash = u.Dataplane, u.next, u.prev
		sum, _, err := auditchain.Hash(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Hash = sum[:]
		u.prev, u.next = r.Hash, u.next+1
	}
	MustApply(t, n, &fsmv1.Command{Op: &fsmv1.Command_AppendAudit{AppendAudit: &fsmv1.AppendAudit{Dataplane: u.Dataplane, Records: recs}}})
}
