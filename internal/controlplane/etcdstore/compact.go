package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/singleton"
	etcdstorev1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/etcdstore/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// Jobs is the store's own singleton work: snapshots and log truncation,
// done by the elected node.
func (n *Node) Jobs() []singleton.Job {
	return []singleton.Job{{Name: "etcd-log-compaction", Run: n.compactLoop}}
}

func (n *Node) compactLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.Timing.SnapshotInterval)
	defer t.Stop()
	for {
		if err := n.Compact(ctx); err != nil && ctx.Err() == nil {
			n.log.WarnContext(ctx, "snapshot and log truncation", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// snapshotPrefix starts the blob ids of state snapshots.
const snapshotPrefix = "snap-"

// Compact writes a state snapshot when the node applied more than the
// current one covers, then truncates the log up to the lower of the
// snapshot's revision and every node's hold, deletes the chunks nothing
// refers to, and drops the hold of the node furthest behind when the log
// outgrows MaxLogBytes. Each step is a conditional transaction, so two
// nodes that both believe they lead cannot undo each other's work. The
// elected node runs it every SnapshotInterval; tests call it directly.
func (n *Node) Compact(ctx context.Context) error {
	n.compactMu.Lock()
	defer n.compactMu.Unlock()
	m, err := n.writeSnapshot(ctx)
	if err != nil || m == nil {
		return err
	}
	trunc, minHold, err := n.truncate(ctx, m.GetRevision())
	if err != nil {
		return err
	}
	if err := n.collect(ctx, trunc, m); err != nil {
		return err
	}
	if err := n.compactHistory(ctx, trunc); err != nil {
		return err
	}
	return n.bound(ctx, minHold)
}

// compactHistory compacts etcd's history up to the truncation point (with
// Config.CompactHistory, at most every Timing.HistoryCompaction). Every node's watch starts
// after its hold, hence after the truncation point, so none is cut off.
func (n *Node) compactHistory(ctx context.Context, trunc int64) error {
	if !n.cfg.CompactHistory || trunc <= n.compactedRev || time.Since(n.compactedAt) < n.cfg.Timing.HistoryCompaction {
		return nil
	}
	if _, err := n.cli.Compact(ctx, trunc); err != nil && !compacted(err) {
		return describe(err)
	}
	n.compactedAt, n.compactedRev = time.Now(), trunc
	n.log.DebugContext(ctx, "etcd history compacted", "revision", trunc)
	return nil
}

// writeSnapshot makes the manifest cover this node's applied revision:
// it writes the state in chunks (or, when no state changed since the
// current snapshot, reuses that one's chunks) and then the manifest, if
// the manifest is still the one it read. It returns the manifest in
// force afterwards (nil when another node changed it meanwhile).
func (n *Node) writeSnapshot(ctx context.Context) (*etcdstorev1.Manifest, error) {
	resp, err := n.cli.Get(ctx, n.keys.manifest())
	if err != nil {
		return nil, describe(err)
	}
	cur, curMod, err := parseManifest(resp.Kvs)
	if err != nil {
		return nil, err
	}
	n.applyMu.Lock()
	st := n.fsm.State()
	n.mu.Lock()
	applied, stateRev := n.applied, n.stateRev
	n.mu.Unlock()
	n.applyMu.Unlock()
	if st.Identity() == nil || (cur != nil && applied <= cur.GetRevision()) {
		return cur, nil
	}
	next := &etcdstorev1.Manifest{Revision: applied, Index: st.Index(), NodeId: n.cfg.NodeID}
	if cur != nil && stateRev <= cur.GetRevision() {
		next.State = cur.GetState()
	} else {
		var buf strings.Builder
		if _, err := st.WriteTo(&buf); err != nil {
			return nil, fmt.Errorf("write the state snapshot: %w", err)
		}
		if next.State, err = n.writeBlob(ctx, snapshotPrefix+strconv.FormatInt(applied, 10), []byte(buf.String())); err != nil {
			return nil, err
		}
	}
	val, err := proto.Marshal(next)
	if err != nil {
		return nil, err
	}
	// The manifest is written only if it is still the one read, and only
	// if its chunks are all there (a chunk prefix is deleted at once, so
	// the first chunk stands for all).
	same := clientv3.Compare(clientv3.ModRevision(n.keys.manifest()), "=", curMod)
	chunks := clientv3.Compare(clientv3.CreateRevision(n.keys.chunk(next.GetState().GetId(), 0)), ">", 0)
	tr, err := n.cli.Txn(ctx).If(same, chunks).Then(clientv3.OpPut(n.keys.manifest(), string(val))).Commit()
	if err != nil {
		return nil, describe(err)
	}
	if !tr.Succeeded {
		return nil, nil
	}
	n.log.DebugContext(ctx, "state snapshot written", "revision", applied, "index", st.Index(), "bytes", next.GetState().GetSize())
	if cur != nil && cur.GetState().GetId() != next.GetState().GetId() {
		if _, err := n.cli.Delete(ctx, n.keys.blob(cur.GetState().GetId()), clientv3.WithPrefix()); err != nil {
			return next, describe(err)
		}
	}
	return next, nil
}

// truncate moves the truncation point to the lower of snap and every
// hold, then deletes the log entries (and their chunks) at or below it.
// The point moves only if no hold was created since the holds were read:
// a node that just created its hold (at its position, or 0) is never
// truncated past.
func (n *Node) truncate(ctx context.Context, snap int64) (trunc, minHold int64, err error) {
	resp, err := n.cli.Txn(ctx).Then(
		clientv3.OpGet(n.keys.holds(), clientv3.WithPrefix()),
		clientv3.OpGet(n.keys.truncated()),
	).Commit()
	if err != nil {
		return 0, 0, describe(err)
	}
	minHold = snap
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		v, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("hold %s holds %q, not a revision", kv.Key, kv.Value)
		}
		minHold = min(minHold, v)
	}
	old, oldMod, err := parseRevision(resp.Responses[1].GetResponseRange().GetKvs())
	if err != nil {
		return 0, 0, err
	}
	trunc = old
	if target := min(snap, minHold); target > old {
		tr, err := n.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(n.keys.holds()), "<", resp.Header.Revision+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(n.keys.truncated()), "=", oldMod),
		).Then(clientv3.OpPut(n.keys.truncated(), strconv.FormatInt(target, 10))).Commit()
		if err != nil {
			return 0, 0, describe(err)
		}
		if !tr.Succeeded {
			return old, minHold, nil // a hold appeared, or another node moved it; next round
		}
		trunc = target
	}
	if trunc == 0 {
		return 0, minHold, nil
	}
	keys, err := n.cli.Get(ctx, n.keys.log(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, 0, describe(err)
	}
	var ops []clientv3.Op
	deleted := 0
	for _, kv := range keys.Kvs {
		if kv.ModRevision > trunc {
			continue
		}
		id := n.keys.entryID(string(kv.Key))
		ops = append(ops, clientv3.OpDelete(string(kv.Key)), clientv3.OpDelete(n.keys.blob(id), clientv3.WithPrefix()))
		deleted++
		if len(ops) >= 64 {
			if err := n.commit(ctx, ops); err != nil {
				return 0, 0, err
			}
			ops = ops[:0]
		}
	}
	if err := n.commit(ctx, ops); err != nil {
		return 0, 0, err
	}
	if deleted > 0 {
		n.log.DebugContext(ctx, "log truncated", "up_to_revision", trunc, "entries", deleted)
	}
	return trunc, minHold, nil
}

func (n *Node) commit(ctx context.Context, ops []clientv3.Op) error {
	if len(ops) == 0 {
		return nil
	}
	if _, err := n.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return describe(err)
	}
	return nil
}

// collect deletes chunks nothing refers to: of entries whose writer gave
// up before appending them, and of snapshots whose manifest lost a race.
// Only chunks created at or below the truncation point go, so a writer
// still between its chunks and its entry is not robbed (and if it is that
// slow, its append finds its chunks gone and fails rather than append an
// entry nobody can read).
func (n *Node) collect(ctx context.Context, trunc int64, m *etcdstorev1.Manifest) error {
	if trunc == 0 {
		return nil
	}
	resp, err := n.cli.Txn(ctx).Then(
		clientv3.OpGet(n.keys.blobs(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(n.keys.log(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(n.keys.manifest()),
	).Commit()
	if err != nil {
		return describe(err)
	}
	live := map[string]bool{m.GetState().GetId(): true}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		live[n.keys.entryID(string(kv.Key))] = true
	}
	if cur, _, err := parseManifest(resp.Responses[2].GetResponseRange().GetKvs()); err == nil && cur != nil {
		live[cur.GetState().GetId()] = true
	}
	var ops []clientv3.Op
	seen := map[string]bool{}
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		id := n.keys.blobID(string(kv.Key))
		if id == "" || live[id] || seen[id] || kv.CreateRevision > trunc {
			continue
		}
		seen[id] = true
		ops = append(ops, clientv3.OpDelete(n.keys.blob(id), clientv3.WithPrefix()))
		if len(ops) >= 64 {
			if err := n.commit(ctx, ops); err != nil {
				return err
			}
			ops = ops[:0]
		}
	}
	return n.commit(ctx, ops)
}

// bound drops the hold of the node furthest behind while the log held for
// it (the entries this node applied above that hold) is larger than
// MaxLogBytes: etcd must not fill up because one node is down. That node
// resyncs from a snapshot when it returns (after merging a peer's audit
// store).
func (n *Node) bound(ctx context.Context, minHold int64) error {
	n.mu.Lock()
	var held int64
	for _, s := range n.backlog {
		if s.rev > minHold {
			held += s.bytes
		}
	}
	n.mu.Unlock()
	if held <= n.cfg.Timing.MaxLogBytes {
		return nil
	}
	resp, err := n.cli.Get(ctx, n.keys.holds(), clientv3.WithPrefix())
	if err != nil {
		return describe(err)
	}
	var laggard string
	var lagMod int64
	low := int64(-1)
	for _, kv := range resp.Kvs {
		v, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			continue
		}
		if node := n.keys.holdNode(string(kv.Key)); node != n.cfg.NodeID && (low < 0 || v < low) {
			laggard, lagMod, low = node, kv.ModRevision, v
		}
	}
	if laggard == "" {
		return errors.New("the log outgrew its bound and only this node holds it")
	}
	tr, err := n.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(n.keys.hold(laggard)), "=", lagMod)).
		Then(clientv3.OpDelete(n.keys.hold(laggard))).Commit()
	if err != nil {
		return describe(err)
	}
	if tr.Succeeded {
		n.log.WarnContext(ctx, "the etcd log held for a lagging node outgrew its bound: dropped that node's hold; it resyncs from a snapshot when it returns",
			"node", laggard, "its_position", low, "held_bytes", held, "bound_bytes", n.cfg.Timing.MaxLogBytes)
	}
	return nil
}
