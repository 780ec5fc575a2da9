package etcdstore

import (
	"context"
	"errors"

	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
)

// AuditCopy implements peer.AuditSource: a copy of this node's audit store
// that holds exactly the records of the log entries up to the revision it
// returns — a manifest (sealed segments by hash, the open segment's bytes)
// when manifest is set, else a whole copy.
func (n *Node) AuditCopy(_ context.Context, manifest bool) (peer.AuditCopy, uint64, error) {
	if n.cfg.Audit == nil {
		return nil, 0, errors.New("this node keeps no audit store")
	}
	// No log entry is applied, so nothing is appended, while it is taken.
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	if manifest {
		m, err := n.cfg.Audit.Manifest()
		if err != nil {
			return nil, 0, err
		}
		return m, uint64(n.Applied()), nil
	}
	snap, err := n.cfg.Audit.Snapshot()
	if err != nil {
		return nil, 0, err
	}
	return snap, uint64(n.Applied()), nil
}
