package etcdstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A node's hold (P/applied/<node>) is its durable position. The elected
// node truncates the log only up to the lowest hold, so every node can
// resume from its checkpoint without a gap. A node creates its hold when
// it starts (at its checkpoint's position, 0 for a new node, which holds
// the whole log until it has caught up) and moves it after each
// checkpoint; removing the node from the cluster, or the bound on the
// log (MaxLogBytes), drops it.

// hold creates this node's hold at its position, or takes over the one an
// earlier run of it left.
func (n *Node) hold(ctx context.Context) error {
	key := n.keys.hold(n.cfg.NodeID)
	pos := strconv.FormatInt(n.applied, 10)
	err := retry(ctx, n.log, "record this node's position", func(ctx context.Context) error {
		resp, err := n.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, pos)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			n.holdCreate = resp.Header.Revision
			return nil
		}
		kv := resp.Responses[0].GetResponseRange().GetKvs()[0]
		n.holdCreate = kv.CreateRevision
		return n.moveHold(ctx, n.applied)
	})
	if err != nil {
		return fmt.Errorf("record this node's position in etcd: %w", describe(err))
	}
	return nil
}

// moveHold sets this node's hold to pos, unless the hold was dropped
// (then it stays dropped until the node restarts).
func (n *Node) moveHold(ctx context.Context, pos int64) error {
	n.mu.Lock()
	dropped := n.holdDropped
	n.mu.Unlock()
	if dropped {
		return nil
	}
	key := n.keys.hold(n.cfg.NodeID)
	resp, err := n.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", n.holdCreate)).
		Then(clientv3.OpPut(key, strconv.FormatInt(pos, 10))).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		n.mu.Lock()
		n.holdDropped = true
		n.mu.Unlock()
		n.log.ErrorContext(ctx, "this node's hold on the etcd log was dropped (the node was removed from the cluster, or it lagged past the bound on the log): it keeps applying, and resyncs from a snapshot if the log it needs is gone")
	}
	return nil
}

// Release drops the hold of node id (a node removed from the cluster), so
// the log no longer waits for it.
func (n *Node) Release(ctx context.Context, id string) error {
	err := retry(ctx, n.log, "drop a node's hold", func(ctx context.Context) error {
		_, err := n.cli.Delete(ctx, n.keys.hold(id))
		return err
	})
	if err != nil {
		return describe(err)
	}
	return nil
}

// maintainLoop looks at etcd and checkpoints every Timing.Checkpoint.
func (n *Node) maintainLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Timing.Checkpoint)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.probe(n.ctx)
		if err := n.checkpoint(n.ctx, false); err != nil && n.ctx.Err() == nil {
			n.log.WarnContext(n.ctx, "checkpoint", "err", err)
		}
	}
}

// probe reads the head and the truncation point: it tells readiness
// whether this node keeps up and etcd answers, and trims the sizes kept
// for the log's bound.
func (n *Node) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	resp, err := n.cli.Txn(ctx).Then(clientv3.OpGet(n.keys.head()), clientv3.OpGet(n.keys.truncated())).Commit()
	if err != nil {
		return
	}
	var head int64
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		head = kvs[0].ModRevision
	}
	trunc, _, _ := parseRevision(resp.Responses[1].GetResponseRange().GetKvs())
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastContact = time.Now()
	n.prevHead, n.lastHead = n.lastHead, head
	i := 0
	for i < len(n.backlog) && n.backlog[i].rev <= trunc {
		i++
	}
	n.backlog = append(n.backlog[:0], n.backlog[i:]...)
}

// checkpoint makes this node's position durable and publishes it: it
// fsyncs the audit store, writes the state file when the state changed
// since the last one (at most every StateCheckpoint, unless final) or
// else only the position file, then moves the hold.
func (n *Node) checkpoint(ctx context.Context, final bool) error {
	n.applyMu.Lock()
	st := n.fsm.State()
	n.mu.Lock()
	applied, stateRev, fatal := n.applied, n.stateRev, n.fatal
	n.mu.Unlock()
	n.applyMu.Unlock()
	if fatal != nil || applied <= n.ckpt.Position {
		return nil
	}
	changed := stateRev > n.ckpt.Revision || n.ckpt.Revision == 0
	if changed && !final && time.Since(n.ckptStateAt) < n.cfg.Timing.StateCheckpoint {
		return nil // the position moves past a change of state with the state file only
	}
	if n.cfg.Audit != nil {
		if err := n.cfg.Audit.Sync(); err != nil {
			return err
		}
	}
	h := ckptHeader{Prefix: n.cfg.Prefix, EtcdClusterID: n.etcdClusterID, Revision: n.ckpt.Revision}
	if changed {
		n.ckptStateAt = time.Now()
		h.Revision = applied
		if err := writeStateFile(n.cfg.Dir, h, st); err != nil {
			return err
		}
		n.ckpt.Revision = applied
	} else {
		h.Position = applied
		if err := writePositionFile(n.cfg.Dir, h); err != nil {
			return err
		}
	}
	n.ckpt.Position = applied
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	if err := n.moveHold(ctx, applied); err != nil {
		return fmt.Errorf("publish this node's position: %w", err)
	}
	return nil
}
