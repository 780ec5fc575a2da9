package etcdstore

import (
	"context"
	"errors"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
)

// AuditCopy implements peer.AuditSource: a copy of this node's audit store
// that holds exactly the records of the log entries up to the revision it
// returns.
func (n *Node) AuditCopy(context.Context) (*auditstore.Snapshot, uint64, error) {
	if n.cfg.Audit == nil {
		return nil, 0, errors.New("this node keeps no audit store")
	}
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	snap, err := n.cfg.Audit.Snapshot()
	if err != nil {
		return nil, 0, err
	}
	return snap, uint64(n.Applied()), nil
}
