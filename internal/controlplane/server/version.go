package server

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Decision: a node makes the highest cluster version its binary supports
// known by writing it into its own Node record (Node.max_cluster_version),
// through an ordinary Put of the node kind, which every version since the
// baseline applies (a baseline replica stores the field it does not know
// and passes it on in its snapshots). The version gates then read only
// replicated state, so the leader's check before proposing and every
// replica's check while applying see the same voters. Asking each voter
// over the peer API instead would give the leader a fresher answer but
// nothing a replica could check deterministically in Apply. A node whose
// binary predates cluster versions records nothing, and nothing recorded
// counts as the baseline version: the gates stay closed while such a node
// is a voter.
//
// The record is written by the node itself, not by whoever adds it: the
// admin API refuses request fields it does not know, so a new node could
// not tell its version to an older member it joins through. AddNode
// (re-)writes the record without a version, which counts as the baseline
// until the node records its own again.

// recordVersion keeps this node's record carrying the highest cluster
// version its binary supports: whenever the record exists (the node
// bootstrapped or was added) and says otherwise, and a leader is known, it
// writes it. A record without a version says Baseline, so a binary that
// supports only the baseline writes nothing. It runs until ctx ends.
func (s *Server) recordVersion(ctx context.Context) {
	want := clusterversion.Current()
	backoff := 100 * time.Millisecond
	for {
		changed := s.b.Changed()
		r, ok := s.b.LocalState().Get(resource.Node, s.cfg.NodeID)
		wait := (<-chan time.Time)(nil)
		if ok && clusterversion.Of(r.GetNode().GetMaxClusterVersion()) != want {
			if !s.b.Ready() {
				wait = time.After(250 * time.Millisecond) // a leader being elected moves no state
			} else if err := s.writeVersion(ctx, r, want); err != nil {
				s.log.WarnContext(ctx, "could not record this node's cluster version; retrying", "version", want, "err", err)
				wait = time.After(backoff)
				backoff = min(2*backoff, 5*time.Second)
			} else {
				backoff = 100 * time.Millisecond
				continue // look again: the write is applied locally by now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-wait:
		}
	}
}

// writeVersion puts the node record r with max_cluster_version set to
// version, if r is still the stored revision.
func (s *Server) writeVersion(ctx context.Context, r *fsmv1.Resource, version clusterversion.Version) error {
	node := proto.Clone(r.GetNode()).(*configv1.Node)
	rev := node.GetMeta().GetRevision()
	node.MaxClusterVersion = uint32(version)
	cmd := &fsmv1.Command{
		RequestId: fmt.Sprintf("node-version-%s-%d-%d", s.cfg.NodeID, rev, version),
		Actor:     &configv1.Actor{TokenId: "node:" + s.cfg.NodeID, Role: configv1.Role_ROLE_ADMIN},
		Time:      timestamppb.Now(),
		Method:    "controlplane start: record cluster version",
		Op: &fsmv1.Command_Put{Put: &fsmv1.Put{
			Resource: resource.Wrap(node), Mode: fsmv1.WriteMode_WRITE_MODE_UPDATE, ExpectedRevision: rev,
		}},
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.b.Apply(ctx, cmd)
	if err != nil {
		return err
	}
	if e := res.GetError(); e != nil && e.GetCode() != fsmv1.ErrorCode_ERROR_CODE_ABORTED {
		return fmt.Errorf("%s: %s", e.GetCode(), e.GetMessage())
	}
	if res.GetError() == nil && !res.GetDeduplicated() {
		s.log.InfoContext(ctx, "recorded this node's cluster version", "version", version)
	}
	// Look again only once this node has applied the write (or the
	// refusal), so that it does not propose the same write twice.
	if err := waitIndex(ctx, s.b, res.GetIndex()); err != nil {
		return err
	}
	return nil // ABORTED: the record changed meanwhile; the loop looks again
}

// waitIndex waits until b has applied the command at index.
func waitIndex(ctx context.Context, b backend, index uint64) error {
	for {
		ch := b.Changed()
		if b.LocalState().Index() >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d: %w", index, ctx.Err())
		case <-ch:
		}
	}
}
