package server

import (
	"context"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/controlplane/lease"
	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// leaseRouter answers data planes' lease requests: with the granter on
// the node that leads, by forwarding to the leader elsewhere (followers
// forward demand reports, so a data plane may talk to any node).
type leaseRouter struct {
	granter *lease.Granter
	b       backend
	peer    *peer.Client
}

// Lease implements configsync.Leases.
func (r *leaseRouter) Lease(ctx context.Context, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error) {
	if r.granter.Leading() {
		return r.granter.Grant(req.GetName(), req)
	}
	id, addr := r.b.Leader()
	if id == "" || addr == "" || r.b.IsLeader() {
		// No leader, or this node leads but its granter has not started
		// (or just stopped): the data plane keeps what it has and retries.
		return nil, store.ErrNoLeader
	}
	resp, err := r.peer.ForwardLease(ctx, addr, req)
	if err != nil {
		return nil, fmt.Errorf("forward lease request to leader %s: %w", id, err)
	}
	return resp, nil
}
