package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
)

// cluster implements adminapi.Cluster over the Raft node, forwarding
// leader-only operations through the peer client.
type cluster struct {
	node     *raftstore.Node
	peer     *peer.Client
	registry *configsync.Registry
}

var _ adminapi.Cluster = (*cluster)(nil)

func (c *cluster) NodeID() string           { return c.node.ID() }
func (c *cluster) Leader() (string, string) { return c.node.Leader() }
func (c *cluster) LastContact() time.Time   { return c.node.LastContact() }
func (c *cluster) Members() ([]adminapi.Member, error) {
	ms, err := c.node.Members()
	if err != nil {
		return nil, err
	}
	out := make([]adminapi.Member, len(ms))
	for i, m := range ms {
		out[i] = adminapi.Member{ID: m.ID, RaftAddr: m.RaftAddr, APIAddr: m.APIAddr, Suffrage: m.Suffrage, Leader: m.Leader, Version: m.Version}
	}
	return out, nil
}

// onLeader runs local on the leader, or remote against the leader's API,
// retrying across leadership changes until ctx ends.
func (c *cluster) onLeader(ctx context.Context, local func() error, remote func(addr string) error) error {
	backoff := 50 * time.Millisecond
	for {
		var err error
		if c.node.IsLeader() {
			err = local()
		} else if id, addr := c.node.Leader(); id == "" || addr == "" {
			err = store.ErrNoLeader
		} else {
			err = remote(addr)
		}
		if err == nil || !(errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrNoLeader)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *cluster) AddVoter(ctx context.Context, id, raftAddr string) error {
	if raftAddr == "" {
		return fmt.Errorf("%w: raft_addr is required to add a node to a Raft cluster", store.ErrInvalid)
	}
	return c.onLeader(ctx,
		func() error { return c.node.AddVoterLocal(ctx, id, raftAddr) },
		func(addr string) error { return c.peer.ChangeMembership(ctx, addr, id, raftAddr, false) })
}

func (c *cluster) RemoveServer(ctx context.Context, id string) error {
	return c.onLeader(ctx,
		func() error { return c.node.RemoveLocal(ctx, id) },
		func(addr string) error { return c.peer.ChangeMembership(ctx, addr, id, "", true) })
}

func (c *cluster) Restore(ctx context.Context, backup []byte) error {
	return c.onLeader(ctx,
		func() error { return c.node.RestoreLocal(ctx, backup) },
		func(addr string) error { return c.peer.Restore(ctx, addr, backup) })
}

// DataplaneStatuses gathers this node's statuses and every reachable
// peer's; an unreachable peer only means its data planes are missing.
func (c *cluster) DataplaneStatuses(ctx context.Context) ([]*adminv1.DataplaneStatus, error) {
	members, err := c.Members()
	if err != nil {
		return c.registry.List(), nil //nolint:nilerr // this node's own statuses are still an answer
	}
	return gatherStatuses(ctx, c.node.ID(), c.registry, members, c.peer), nil
}

// gatherStatuses lists the data-plane statuses of this node (self) and of
// every member that answers within 2s.
func gatherStatuses(ctx context.Context, self string, registry *configsync.Registry, members []adminapi.Member, pc *peer.Client) []*adminv1.DataplaneStatus {
	out := registry.List()
	for _, m := range members {
		if m.ID == self || m.APIAddr == "" {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		remote, err := pc.ListDataplaneStatus(pctx, m.APIAddr)
		cancel()
		if err == nil {
			out = append(out, remote...)
		}
	}
	return out
}
