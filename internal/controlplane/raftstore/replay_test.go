package raftstore_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// deepPolicySet is the policy set whose commit took every node down: one
// condition nested n parentheses deep.
func deepPolicySet(n int) *fsmv1.Command {
	src := "permit(principal, action, resource) when { " + strings.Repeat("(", n) + "true" + strings.Repeat(")", n) + " };"
	return statetest.By(statetest.Upsert(statetest.PolicySet("deep", src)), statetest.BootToken, "r-deep", 20)
}

// TestFSMAppliesDeepPolicyAsRefusal applies the raw log entry of the
// 500,000-parenthesis policy, as an older version committed it: the FSM
// returns a domain error, the state holds no such policy set, and the
// entries after it apply.
func TestFSMAppliesDeepPolicyAsRefusal(t *testing.T) {
	f := raftstore.NewFSM(nil)
	steps := statetest.Script()[:8]
	for i, st := range steps {
		f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: encode(t, st.Cmd)})
	}
	got := f.Apply(&raft.Log{Index: 9, Type: raft.LogCommand, Data: encode(t, deepPolicySet(500_000))})
	res, ok := got.(*fsmv1.Result)
	if !ok || res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT ||
		!strings.Contains(res.GetError().GetMessage(), "brackets nest more than 64 levels deep") {
		t.Fatalf("Apply = %v, want an INVALID_ARGUMENT result about nesting", got)
	}
	if _, ok := f.State().Get(resource.PolicySet, "deep"); ok {
		t.Error("the refused policy set is in the state")
	}
	after := f.Apply(&raft.Log{Index: 10, Type: raft.LogCommand, Data: encode(t, statetest.By(statetest.Create(statetest.Agent("after", "")), statetest.BootToken, "r-after", 21))})
	if res := after.(*fsmv1.Result); res.GetError() != nil {
		t.Fatalf("the next entry was refused: %v", res.GetError())
	}
}

// TestNodeReplaysDeepPolicy commits the deep policy through a real
// one-node Raft cluster on loopback (proposed directly, as a version
// without the limits would have), restarts the node from its data
// directory so that it replays the whole log, and checks that it comes
// back with the same state and goes on taking writes.
func TestNodeReplaysDeepPolicy(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	n := openNode(t, dir, addr)
	if err := n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	mustLead(ctx, t, n)
	for _, st := range statetest.Script()[:8] {
		if _, err := n.Apply(ctx, st.Cmd); err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
	}
	res, err := n.Apply(ctx, deepPolicySet(500_000))
	if err != nil || res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("Apply(deep policy) = %v, %v; want an INVALID_ARGUMENT result", res, err)
	}
	before := n.LocalState()
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	n = openNode(t, dir, addr)
	mustLead(ctx, t, n)
	after := awaitIndex(ctx, t, n, before.Index())
	keys := statetest.DedupKeys(statetest.Script()[:8])
	keys = append(keys, statetest.DedupKey{Token: statetest.BootToken, RequestID: "r-deep"})
	if d := statetest.Diff(before, after, keys); len(d) > 0 {
		t.Fatalf("the replayed state differs:\n%s", strings.Join(d, "\n"))
	}
	res, err = n.Apply(ctx, statetest.By(statetest.Create(statetest.Agent("after-restart", "")), statetest.BootToken, "r-after", 30))
	if err != nil || res.GetError() != nil {
		t.Fatalf("a write after the replay: %v, %v", res, err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

func openNode(t *testing.T, dir, addr string) *raftstore.Node {
	t.Helper()
	n, err := raftstore.Open(raftstore.Config{
		ID: "n1", DataDir: dir, RaftBind: addr,
		Timing: raftstore.Timing{
			HeartbeatTimeout:   50 * time.Millisecond,
			ElectionTimeout:    50 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustLead(ctx context.Context, t *testing.T, n *raftstore.Node) {
	t.Helper()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
}

// awaitIndex waits until the node's state has applied index.
func awaitIndex(ctx context.Context, t *testing.T, n *raftstore.Node, index uint64) *state.State {
	t.Helper()
	for {
		changed := n.Changed()
		if s := n.LocalState(); s.Index() >= index {
			return s
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the node applied up to %d, not %d", n.LocalState().Index(), index)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
