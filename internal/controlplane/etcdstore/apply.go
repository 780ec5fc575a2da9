package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	etcdstorev1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/etcdstore/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// errResync: the node must resync from one consistent read of the prefix
// (its watch position was compacted away, or a value it needs is gone).
var errResync = errors.New("resync needed")

// fatalError is an entry this node cannot apply.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error { return fatalError{fmt.Errorf(format, args...)} }

// applyLoop applies the log until the node shuts down or meets an entry
// it cannot apply. It follows a watch from the last applied revision, and
// resyncs (sync) when it starts with nothing applied, when the watch
// position was compacted away, or when the log it needs was truncated.
func (n *Node) applyLoop() {
	defer n.wg.Done()
	ctx := n.ctx
	needSync := n.Applied() == 0
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		var err error
		if needSync {
			if err = n.sync(ctx); err == nil {
				needSync = false
			}
		}
		if err == nil {
			err = n.follow(ctx)
		}
		var fe fatalError
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &fe):
			n.halt(err)
			return
		case errors.Is(err, errResync):
			n.log.InfoContext(ctx, "resyncing with the etcd log", "from_revision", n.Applied(), "why", err)
			needSync = true
			continue
		}
		n.log.WarnContext(ctx, "following the etcd log: retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// follow applies the log from a watch starting after the last applied
// revision. It returns errResync when etcd has compacted that revision
// away.
func (n *Node) follow(ctx context.Context) error {
	from := n.Applied() + 1
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := n.cli.Watch(wctx, n.keys.log(), clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithFilterDelete())
	for resp := range wch {
		if resp.CompactRevision != 0 || compacted(resp.Err()) {
			return fmt.Errorf("%w: etcd compacted the log's history past revision %d (to %d)", errResync, from, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch the log: %w", err)
		}
		for _, ev := range resp.Events {
			if err := n.applyKV(ctx, ev.Kv, 0); err != nil {
				return err
			}
		}
		n.contact()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("the watch of the log ended")
}

// sync brings the node up to date from one consistent read of the prefix
// at revision X: the snapshot manifest, the truncation point and every
// log key. When the node has applied everything up to the truncation
// point, it applies the log entries after its position (etcd only
// compacted their history, the keys are there). Otherwise entries it
// never applied are gone: it takes a peer's audit store (which holds
// their upload batches and admin records), installs the snapshot and
// applies the entries after it. Either way nothing is skipped.
func (n *Node) sync(ctx context.Context) error {
	var resp *clientv3.TxnResponse
	err := retry(ctx, n.log, "read the log", func(ctx context.Context) error {
		var err error
		resp, err = n.cli.Txn(ctx).Then(
			clientv3.OpGet(n.keys.manifest()),
			clientv3.OpGet(n.keys.truncated()),
			clientv3.OpGet(n.keys.log(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		).Commit()
		return err
	})
	if err != nil {
		return describe(err)
	}
	n.contact()
	at := resp.Header.Revision
	manifest, _, err := parseManifest(resp.Responses[0].GetResponseRange().GetKvs())
	if err != nil {
		return fatalError{err}
	}
	trunc, _, err := parseRevision(resp.Responses[1].GetResponseRange().GetKvs())
	if err != nil {
		return fatalError{err}
	}
	entries := resp.Responses[2].GetResponseRange().GetKvs()
	if pos := n.Applied(); pos < trunc {
		if manifest == nil || manifest.GetRevision() < trunc {
			return fatalf("etcd's log under %s is truncated up to revision %d but no snapshot covers it (the snapshot key is missing or older): something else changed the prefix", n.cfg.Prefix, trunc)
		}
		if err := n.installSnapshot(ctx, manifest, at, pos); err != nil {
			return err
		}
	}
	slices.SortFunc(entries, func(a, b *mvccpb.KeyValue) int { return int(a.ModRevision - b.ModRevision) })
	pos := n.Applied()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ops := make([]clientv3.Op, len(batch))
		for i, k := range batch {
			ops[i] = clientv3.OpGet(k, clientv3.WithRev(at))
		}
		batch = batch[:0]
		var got *clientv3.TxnResponse
		err := retry(ctx, n.log, "read log entries", func(ctx context.Context) error {
			var err error
			got, err = n.cli.Txn(ctx).Then(ops...).Commit()
			if compacted(err) {
				return fmt.Errorf("%w: %w", errMissing, err)
			}
			return err
		})
		if errors.Is(err, errMissing) {
			return fmt.Errorf("%w: %w", errResync, err)
		}
		if err != nil {
			return describe(err)
		}
		for _, r := range got.Responses {
			for _, kv := range r.GetResponseRange().GetKvs() {
				if err := n.applyKV(ctx, kv, at); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, kv := range entries {
		if kv.ModRevision <= pos {
			continue
		}
		if batch = append(batch, string(kv.Key)); len(batch) == 32 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	n.applyMu.Lock()
	n.publish(at, false, "", result{})
	n.applyMu.Unlock()
	return nil
}

// installSnapshot installs the snapshot m, read as of revision at, over a
// gap in what this node applied (it stands at pos), after merging a
// peer's audit store that covers the gap.
func (n *Node) installSnapshot(ctx context.Context, m *etcdstorev1.Manifest, at, pos int64) error {
	data, err := n.readBlob(ctx, m.GetState(), at)
	if errors.Is(err, errMissing) {
		return fmt.Errorf("%w: %w", errResync, err)
	}
	if err != nil {
		return err
	}
	st, err := state.Read(bytes.NewReader(data))
	if err != nil {
		return fatalf("the state snapshot in etcd (revision %d) is unreadable: %w", m.GetRevision(), err)
	}
	n.log.WarnContext(ctx, "the log this node needs was truncated: starting from the state snapshot in etcd",
		"position", pos, "snapshot_revision", m.GetRevision(), "snapshot_index", st.Index())
	if err := n.copyAudit(ctx, st, m.GetRevision()); err != nil {
		return err
	}
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	if err := n.install(st); err != nil {
		return err
	}
	n.mu.Lock()
	n.stateRev = m.GetRevision()
	n.mu.Unlock()
	n.publish(m.GetRevision(), false, "", result{})
	return nil
}

// copyAudit takes the audit store of a peer that applied at least rev
// (the peers are the nodes st records, other than this one): a manifest
// whose sealed segments this node fetches where it lacks them, or, from a
// peer of an older release, a whole copy it merges.
func (n *Node) copyAudit(ctx context.Context, st *state.State, rev int64) error {
	if n.cfg.Audit == nil {
		return nil
	}
	var peers []string
	st.Each(resource.Node, func(r *fsmv1.Resource) bool {
		if name := resource.Name(r); name != n.cfg.NodeID && r.GetNode().GetApiAddr() != "" {
			peers = append(peers, r.GetNode().GetApiAddr())
		}
		return true
	})
	if len(peers) == 0 || n.cfg.Peers == nil {
		n.log.WarnContext(ctx, "no other node to copy the audit store from: upload batches and admin records of the skipped log entries are missing from this node's audit store", "snapshot_revision", rev)
		return nil
	}
	from, err := n.cfg.Peers.CopyAudit(ctx, st, peers, rev)
	if err != nil {
		return fmt.Errorf("copy a peer's audit store: %w", err)
	}
	n.log.InfoContext(ctx, "took a peer's audit store", "peer", from, "covers_revision", rev)
	return nil
}

// applyKV applies the log entry kv, read as of revision at (0: from the
// watch, whose chunks are read at the newest revision).
func (n *Node) applyKV(ctx context.Context, kv *mvccpb.KeyValue, at int64) error {
	rev := kv.ModRevision
	if rev <= n.Applied() {
		return nil
	}
	entry, err := DecodeEntry(kv.Value)
	if err != nil {
		return fatalf("log entry %s at revision %d: %w", kv.Key, rev, err)
	}
	id := n.keys.entryID(string(kv.Key))
	size := int64(len(kv.Key) + len(kv.Value))
	data, blob := entry.GetCommand(), entry.GetCommandBlob()
	if entry.GetRestore() != nil {
		blob = entry.GetRestore()
	}
	if blob != nil {
		var err error
		if data, err = n.readBlob(ctx, blob, at); errors.Is(err, errMissing) {
			return fmt.Errorf("%w: log entry at revision %d: %w", errResync, rev, err)
		} else if err != nil {
			if errors.Is(err, ErrUnavailable) {
				return err
			}
			return fatalError{err}
		}
		size += int64(len(data))
	}
	if entry.GetRestore() != nil {
		return n.applyRestore(rev, id, data, size)
	}
	return n.applyCommand(rev, id, data, size)
}

// DecodeEntry decodes a log entry and checks that it is one this version
// can apply: it holds a command or a restore this version knows, and the
// chunks it refers to are plausibly described. An entry that fails is
// never skipped: the node stops (see fatalError).
func DecodeEntry(val []byte) (*etcdstorev1.Entry, error) {
	entry := &etcdstorev1.Entry{}
	if err := proto.Unmarshal(val, entry); err != nil {
		return nil, fmt.Errorf("does not decode: %w", err)
	}
	var blob *etcdstorev1.Blob
	switch e := entry.GetEntry().(type) {
	case *etcdstorev1.Entry_Command:
		if len(e.Command) == 0 {
			return nil, errors.New("holds an empty command")
		}
		return entry, nil
	case *etcdstorev1.Entry_CommandBlob:
		blob = e.CommandBlob
	case *etcdstorev1.Entry_Restore:
		blob = e.Restore
	default:
		return nil, errors.New("holds nothing this version knows (written by a newer Portcullis version? upgrade this node's binary)")
	}
	if err := checkBlob(blob); err != nil {
		return nil, err
	}
	return entry, nil
}

// checkBlob checks a blob description before anything is read for it.
func checkBlob(b *etcdstorev1.Blob) error {
	switch {
	case b.GetId() == "" || len(b.GetId()) > 64 || strings.ContainsAny(b.GetId(), "/\x00"):
		return fmt.Errorf("refers to chunks with an invalid id %q", b.GetId())
	case b.GetChunks() == 0 || b.GetChunks() > maxBlobChunks || b.GetSize() > uint64(b.GetChunks())*chunkSize:
		return fmt.Errorf("refers to %d chunks of %d bytes in all, which no writer produces", b.GetChunks(), b.GetSize())
	case len(b.GetSha256()) != 32:
		return errors.New("refers to chunks without a SHA-256")
	}
	return nil
}

// applyCommand applies one command at revision rev. Its index is the
// revision, or one past the state's index when that is higher (a state
// restored from a cluster whose indices ran further), so indices only grow
// and every node computes the same one.
func (n *Node) applyCommand(rev int64, id string, data []byte, size int64) error {
	cmd, err := raftstore.DecodeCommand(data)
	if err != nil {
		return fatalf("log entry at revision %d: %w", rev, err)
	}
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	idx := max(n.fsm.State().Index()+1, uint64(rev))
	res, ok := n.fsm.Apply(&raft.Log{Index: idx, Data: data}).(*fsmv1.Result)
	if !ok {
		return fatalf("log entry at revision %d: the state machine returned no result", rev)
	}
	n.record(rev, size)
	n.publish(rev, cmd.GetAppendAudit() == nil, id, result{res: res})
	return nil
}

// applyRestore installs a backup as the whole state (see Restore). A
// refusal is the entry's result, the same on every node.
func (n *Node) applyRestore(rev int64, id string, data []byte, size int64) error {
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	cur := n.fsm.State()
	idx := max(cur.Index()+1, uint64(rev))
	res := &fsmv1.Result{Index: idx}
	backup, err := state.Read(bytes.NewReader(data))
	switch {
	case err != nil:
		res.Error = &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, Message: "the backup is unreadable: " + err.Error()}
	case restoreRefusal(cur, backup) != "":
		res.Error = &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, Message: restoreRefusal(cur, backup)}
	default:
		res.Index = max(idx, backup.Index())
		if err := n.install(backup.WithNextEpoch(cur.Epoch()).WithIndex(res.Index)); err != nil {
			return err
		}
	}
	n.record(rev, size)
	n.publish(rev, res.Error == nil, id, result{res: res})
	return nil
}

// install makes st the state.
func (n *Node) install(st *state.State) error {
	var buf bytes.Buffer
	if _, err := st.WriteTo(&buf); err != nil {
		return fatalf("install a state: %w", err)
	}
	if err := n.fsm.Restore(io.NopCloser(&buf)); err != nil {
		return fatalf("install a state: %w", err)
	}
	return nil
}

// record notes an applied entry's size in etcd, for the log's bound.
func (n *Node) record(rev, size int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.backlog = append(n.backlog, sized{rev, size})
}

// publish moves applied to rev (the state changed when changedState),
// hands the entry id's result to its proposer and wakes waiters. Called
// with applyMu held.
func (n *Node) publish(rev int64, changedState bool, id string, r result) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if rev > n.applied {
		n.applied = rev
	}
	if changedState {
		n.stateRev = rev
	}
	if id != "" {
		n.deliver(id, r)
	}
	if !n.caughtUp && n.applied >= n.startHead {
		n.caughtUp = true
	}
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
}

// contact notes that etcd answered.
func (n *Node) contact() {
	n.mu.Lock()
	n.lastContact = time.Now()
	n.mu.Unlock()
}

// parseManifest decodes the snapshot manifest key (nil when absent).
func parseManifest(kvs []*mvccpb.KeyValue) (*etcdstorev1.Manifest, int64, error) {
	if len(kvs) == 0 {
		return nil, 0, nil
	}
	m := &etcdstorev1.Manifest{}
	if err := proto.Unmarshal(kvs[0].Value, m); err != nil {
		return nil, 0, fmt.Errorf("the snapshot manifest %s does not decode: %w", kvs[0].Key, err)
	}
	return m, kvs[0].ModRevision, nil
}

// parseRevision decodes a key holding a revision in decimal (0 when
// absent).
func parseRevision(kvs []*mvccpb.KeyValue) (int64, int64, error) {
	if len(kvs) == 0 {
		return 0, 0, nil
	}
	v, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
	if err != nil || v < 0 {
		return 0, 0, fmt.Errorf("key %s holds %q, not a revision", kvs[0].Key, kvs[0].Value)
	}
	return v, kvs[0].ModRevision, nil
}
