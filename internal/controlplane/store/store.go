// Package store defines the resource store the admin API and config sync
// stand on. The embedded implementation is Raft (package raftstore); an
// etcd-backed store can implement the same interface without anything above
// it changing: commands are applied by package state's deterministic Apply
// in log order, whatever orders them.
package store

import (
	"context"
	"errors"

	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// Store is the replicated resource store. Implementations must be safe for
// concurrent use by any number of goroutines.
type Store interface {
	// Apply replicates cmd and returns its result once it is committed and
	// applied. A domain refusal is a result with Error set, not an error;
	// an error means the outcome is unknown (the caller may retry with the
	// same request id) or the store could not take the command.
	Apply(ctx context.Context, cmd *fsmv1.Command) (*fsmv1.Result, error)
	// State returns an immutable view of the state. With linearizable set,
	// the view includes every write acknowledged before the call began.
	State(ctx context.Context, linearizable bool) (*state.State, error)
	// Changed returns a channel closed at the next state change.
	Changed() <-chan struct{}
}

// Errors callers branch on.
var (
	// ErrNoLeader: no leader is known right now (an election is under way
	// or quorum is lost). Retry later or on another node.
	ErrNoLeader = errors.New("no leader elected; the cluster may be electing one or may have lost quorum")
	// ErrNotLeader: the operation must run on the leader and this node is
	// not it.
	ErrNotLeader = errors.New("this node is not the leader")
	// ErrShutdown: the node is stopping.
	ErrShutdown = errors.New("the node is shutting down")
	// ErrInvalid: the request cannot succeed as given (e.g. a corrupt or
	// foreign backup); retrying it unchanged is pointless.
	ErrInvalid = errors.New("invalid request")
)
