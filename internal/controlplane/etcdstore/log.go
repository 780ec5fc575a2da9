package etcdstore

import (
	"bytes"
	"context"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	etcdstorev1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/etcdstore/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// waiter is a proposal waiting for its entry to be applied here.
type waiter struct {
	rev int64 // the entry's revision, once the append returned
	res chan result
}

type result struct {
	res *fsmv1.Result
	err error
}

// errSkipped: this node installed a snapshot past the entry before it
// applied it, so it does not know the entry's result.
var errSkipped = fmt.Errorf("%w: this node resynced past the write before applying it; its outcome is unknown here", ErrUnavailable)

// Apply implements store.Store: it appends cmd to the log and waits until
// this node has applied it. Any node may append; there is no leader to
// forward to. An error means the outcome is unknown (etcd may have
// committed the entry): retrying with the same request id is safe, since
// the state machine applies a request id once.
//
// Before appending it checks the version gate as Raft's leader does
// (raftstore.Admit): a command this binary cannot apply, or one that
// needs a cluster version some node recorded in the state does not
// support, is refused with a domain error and never enters the log. The
// nodes recorded in the state are the voters: on etcd every registered
// control-plane node applies the log.
func (n *Node) Apply(ctx context.Context, cmd *fsmv1.Command) (*fsmv1.Result, error) {
	admitted, refused := raftstore.Admit(n.cfg.NodeID, cmd, n.fsm.State().Voters)
	if refused != nil {
		// Every node proposes here, from its own applied state, which may
		// lag a node record another node just wrote (a voter that now
		// supports the version): judge again from a state that includes
		// every write acknowledged before this one.
		st, err := n.State(ctx, true)
		if err != nil {
			return nil, err
		}
		if admitted, refused = raftstore.Admit(n.cfg.NodeID, cmd, st.Voters); refused != nil {
			return refused, nil
		}
	}
	cmd = admitted
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	if _, err := raftstore.DecodeCommand(data); err != nil {
		return nil, err // never let an entry into the log that a node cannot apply
	}
	id := newID()
	entry := &etcdstorev1.Entry{NodeId: n.cfg.NodeID}
	if len(data) <= maxInline {
		entry.Entry = &etcdstorev1.Entry_Command{Command: data}
		return n.propose(ctx, id, entry, nil, nil)
	}
	return n.propose(ctx, id, entry, data, func(b *etcdstorev1.Blob) { entry.Entry = &etcdstorev1.Entry_CommandBlob{CommandBlob: b} })
}

// propose appends entry under id and waits for this node to apply it.
// With setBlob, it first writes blob in chunks and has setBlob put the
// chunks' description in entry.
func (n *Node) propose(ctx context.Context, id string, entry *etcdstorev1.Entry, blob []byte, setBlob func(*etcdstorev1.Blob)) (*fsmv1.Result, error) {
	if err := n.Fatal(); err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrShutdown, err)
	}
	w := &waiter{res: make(chan result, 1)}
	n.mu.Lock()
	n.waiters[id] = w
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, id)
		n.mu.Unlock()
	}()
	if setBlob != nil {
		b, err := n.writeBlob(ctx, id, blob)
		if err != nil {
			return nil, err
		}
		setBlob(b)
	}
	val, err := proto.Marshal(entry)
	if err != nil {
		return nil, fmt.Errorf("encode log entry: %w", err)
	}
	rev, err := n.appendEntry(ctx, id, val, setBlob != nil)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	w.rev = rev
	n.mu.Unlock()
	for {
		n.mu.Lock()
		applied, ch := n.applied, n.appliedCh
		n.mu.Unlock()
		select {
		case r := <-w.res:
			return r.res, r.err
		default:
		}
		if applied >= rev {
			// Applied results are delivered under the lock that moves
			// applied: none came, so the node skipped the entry.
			return nil, errSkipped
		}
		select {
		case r := <-w.res:
			return r.res, r.err
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the write to be applied: %w", ctx.Err())
		case <-n.fatalCh:
			return nil, fmt.Errorf("%w: %w", store.ErrShutdown, n.Fatal())
		case <-n.ctx.Done():
			return nil, store.ErrShutdown
		}
	}
}

// appendEntry writes the log entry id (and moves the head) in one
// transaction that succeeds only if the key does not exist yet, so a
// retry after a lost answer never appends the entry twice, and, for an
// entry with chunks, only if its chunks are still there. It returns the
// entry's revision.
func (n *Node) appendEntry(ctx context.Context, id string, val []byte, chunked bool) (int64, error) {
	key := n.keys.entry(id)
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	if chunked {
		conds = append(conds, clientv3.Compare(clientv3.CreateRevision(n.keys.chunk(id, 0)), ">", 0))
	}
	var rev int64
	err := retry(ctx, n.log, "append to the log", func(ctx context.Context) error {
		resp, err := n.cli.Txn(ctx).
			If(conds...).
			Then(clientv3.OpPut(key, string(val)), clientv3.OpPut(n.keys.head(), "")).
			Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
			Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			rev = resp.Header.Revision
			return nil
		}
		// An earlier attempt committed and its answer was lost.
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			rev = kvs[0].ModRevision
			return nil
		}
		return fmt.Errorf("%w: the write's chunks were collected before its entry was appended (etcd answered very slowly); retry the write", errMissing)
	})
	if err != nil {
		return 0, describe(err)
	}
	return rev, nil
}

// deliver hands an applied entry's result to its proposer on this node.
// Called with n.mu held.
func (n *Node) deliver(id string, r result) {
	if w, ok := n.waiters[id]; ok {
		select {
		case w.res <- r:
		default:
		}
	}
}

// failWaiters ends every proposal still waiting.
func (n *Node) failWaiters(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, w := range n.waiters {
		select {
		case w.res <- result{err: err}:
		default:
		}
	}
}

// State implements store.Store. A linearizable read asks etcd (a quorum
// read) for the head, which every append moves in the same transaction,
// and waits until this node has applied the entry it names: every write
// acknowledged before the call is at or below it.
func (n *Node) State(ctx context.Context, linearizable bool) (*state.State, error) {
	if !linearizable {
		return n.fsm.State(), nil
	}
	var head int64
	err := retry(ctx, n.log, "read the head of the log", func(ctx context.Context) error {
		resp, err := n.cli.Get(ctx, n.keys.head())
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 1 {
			head = resp.Kvs[0].ModRevision
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("linearizable read: %w", describe(err))
	}
	n.contact()
	return n.waitApplied(ctx, head)
}

// waitApplied waits until this node has applied every entry up to rev
// and returns the state then.
func (n *Node) waitApplied(ctx context.Context, rev int64) (*state.State, error) {
	for {
		n.mu.Lock()
		applied, ch, fatal := n.applied, n.appliedCh, n.fatal
		n.mu.Unlock()
		if fatal != nil {
			return nil, fmt.Errorf("%w: %w", store.ErrShutdown, fatal)
		}
		if applied >= rev {
			return n.fsm.State(), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for revision %d to be applied: %w", rev, ctx.Err())
		case <-ch:
		case <-n.fatalCh:
		}
	}
}

// Restore replaces the whole state with a backup (a state snapshot
// stream), as a new epoch: it appends a restore entry, and every node
// installs the backup when it applies it, with the epoch after the one its
// state had at that entry (the same on every node, which all hold the same
// state there). The backup must belong to this cluster (same cluster id);
// a node whose state is not bootstrapped yet adopts the backup's cluster
// (a new etcd-backed cluster started from a backup).
func (n *Node) Restore(ctx context.Context, data []byte) error {
	backup, err := state.Read(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: the backup is unreadable: %w", store.ErrInvalid, err)
	}
	if err := restoreRefusal(n.fsm.State(), backup); err != "" {
		return fmt.Errorf("%w: %s", store.ErrInvalid, err)
	}
	id := newID()
	entry := &etcdstorev1.Entry{NodeId: n.cfg.NodeID}
	res, err := n.propose(ctx, id, entry, data, func(b *etcdstorev1.Blob) { entry.Entry = &etcdstorev1.Entry_Restore{Restore: b} })
	if err != nil {
		return err
	}
	if e := res.GetError(); e != nil {
		return fmt.Errorf("%w: %s", store.ErrInvalid, e.GetMessage())
	}
	st := n.fsm.State()
	n.log.WarnContext(ctx, "state restored from a backup; a new epoch starts", "epoch", st.Epoch(), "backup_index", backup.Index())
	return nil
}

// restoreRefusal says why backup cannot replace cur ("" when it can).
func restoreRefusal(cur, backup *state.State) string {
	if backup.Identity() == nil {
		return "the backup holds no cluster (it was taken before bootstrap)"
	}
	if id := cur.Identity(); id != nil && backup.Identity().GetClusterId() != id.GetClusterId() {
		return fmt.Sprintf("the backup belongs to cluster %q, not to this cluster %q", backup.Identity().GetClusterId(), id.GetClusterId())
	}
	return ""
}
