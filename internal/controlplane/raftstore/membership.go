package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
)

// Member is one server of the Raft configuration.
type Member struct {
	ID       string
	RaftAddr string
	// APIAddr comes from the replicated node records; empty when the node
	// has not registered one.
	APIAddr  string
	Suffrage string
	Leader   bool
	// Version is the highest cluster version the node's binary supports,
	// as its record says (clusterversion.Baseline when it recorded none).
	Version clusterversion.Version
}

// Members lists the Raft configuration as this node knows it.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	_, leader := n.raft.LeaderWithID()
	st := n.fsm.State()
	var out []Member
	for _, s := range f.Configuration().Servers {
		m := Member{ID: string(s.ID), RaftAddr: string(s.Address), Leader: s.ID == leader, Version: clusterversion.Baseline}
		switch s.Suffrage {
		case raft.Voter:
			m.Suffrage = "voter"
		case raft.Nonvoter:
			m.Suffrage = "nonvoter"
		default:
			m.Suffrage = "staging"
		}
		if r, ok := st.Get(resource.Node, m.ID); ok {
			m.APIAddr = r.GetNode().GetApiAddr()
			m.Version = clusterversion.Of(r.GetNode().GetMaxClusterVersion())
		}
		out = append(out, m)
	}
	return out, nil
}

// LastContact is when this node last heard from the leader (zero on the
// leader itself).
func (n *Node) LastContact() time.Time { return n.raft.LastContact() }

func (n *Node) membershipTimeout(ctx context.Context) time.Duration {
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	return timeout
}

func mapLeaderErr(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return store.ErrNotLeader
	}
	return err
}

// AddVoterLocal adds (or re-adds) a voter. Leader only. Adding a server
// already present with the same address changes nothing.
func (n *Node) AddVoterLocal(ctx context.Context, id, raftAddr string) error {
	if !n.IsLeader() {
		return store.ErrNotLeader
	}
	err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, n.membershipTimeout(ctx)).Error()
	if err != nil {
		return fmt.Errorf("add voter %s: %w", id, mapLeaderErr(err))
	}
	return nil
}

// RemoveLocal removes a server from the configuration. Leader only.
func (n *Node) RemoveLocal(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return store.ErrNotLeader
	}
	err := n.raft.RemoveServer(raft.ServerID(id), 0, n.membershipTimeout(ctx)).Error()
	if err != nil {
		return fmt.Errorf("remove server %s: %w", id, mapLeaderErr(err))
	}
	return nil
}

// SaveBackup writes a consistent copy of st, in the snapshot format, to w.
func SaveBackup(st *state.State, w io.Writer) error {
	_, err := st.WriteTo(w)
	return err
}

// RestoreLocal replaces the whole state with a backup through Raft's
// user-snapshot restore, which the followers then install. Leader only. The
// backup must belong to this cluster (same cluster id): restoring another
// cluster's state would strand its certificates and tokens.
//
// The restored state starts a new epoch, one past both the current state's
// and the backup's: its config versions may be lower than ones data planes
// already applied, and data planes refuse a lower version within an epoch.
// The epoch is written into the stream Raft installs, so every replica
// reads the same one (a replica never derives it from its own history).
// Restores are serialized on this node, and a barrier first makes sure the
// current epoch read here includes every earlier restore.
func (n *Node) RestoreLocal(ctx context.Context, data []byte) error {
	n.restoreMu.Lock()
	defer n.restoreMu.Unlock()
	if !n.IsLeader() {
		return store.ErrNotLeader
	}
	backup, err := state.Read(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: the backup is unreadable: %w", store.ErrInvalid, err)
	}
	if err := n.raft.Barrier(n.membershipTimeout(ctx)).Error(); err != nil {
		return fmt.Errorf("raft barrier before restore: %w", mapLeaderErr(err))
	}
	current := n.fsm.State()
	cur := current.Identity()
	// A node bootstrapped from a backup (controlplane --bootstrap
	// --restore-from) has no identity yet: it adopts the backup's.
	if backup.Identity() == nil || (cur != nil && backup.Identity().GetClusterId() != cur.GetClusterId()) {
		return fmt.Errorf("%w: the backup belongs to cluster %q, not to this cluster %q", store.ErrInvalid, backup.Identity().GetClusterId(), cur.GetClusterId())
	}
	restored := backup.WithNextEpoch(current.Epoch())
	var buf bytes.Buffer
	if _, err := restored.WriteTo(&buf); err != nil {
		return fmt.Errorf("write the restored state: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(buf.Len()), Index: backup.Index(), Term: 1}
	if err := n.raft.Restore(meta, &buf, n.membershipTimeout(ctx)); err != nil {
		return fmt.Errorf("raft restore: %w", mapLeaderErr(err))
	}
	n.log.WarnContext(ctx, "state restored from a backup; a new epoch starts", "epoch", restored.Epoch(), "backup_index", backup.Index())
	return nil
}
