package raftstore

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// FSM is the Raft state machine: it decodes typed commands and hands them to
// state.Apply. Readers get the current immutable state without locks; the
// apply loop never waits for them.
type FSM struct {
	cur atomic.Pointer[state.State]

	mu      sync.Mutex
	changed chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns a state machine holding the empty state.
func NewFSM() *FSM {
	f := &FSM{changed: make(chan struct{})}
	f.cur.Store(state.New())
	return f
}

// DecodeCommand decodes a committed log entry. It is exported for the fuzz
// test of the decoder.
func DecodeCommand(data []byte) (*fsmv1.Command, error) {
	cmd := &fsmv1.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	if cmd.GetOp() == nil {
		return nil, fmt.Errorf("decode command: no operation")
	}
	return cmd, nil
}

// Apply applies one committed command. A command that cannot be decoded
// means this replica's log diverged from what the leader proposed; crashing
// is safer than serving a state that may differ from the other replicas'.
func (f *FSM) Apply(l *raft.Log) any {
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		panic(fmt.Sprintf("raftstore: committed log entry %d is not a command: %v", l.Index, err))
	}
	next, res := state.Apply(f.cur.Load(), l.Index, cmd)
	f.swap(next)
	return res
}

// State returns the current state.
func (f *FSM) State() *state.State { return f.cur.Load() }

// Changed returns a channel that is closed at the next state change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *FSM) swap(next *state.State) {
	f.cur.Store(next)
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Snapshot captures the current state. The state is immutable, so this is
// O(1); Persist streams it while the apply loop carries on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{st: f.cur.Load()}, nil
}

// Restore replaces the state with a snapshot, atomically for readers.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := state.Read(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.swap(st)
	return nil
}

type fsmSnapshot struct{ st *state.State }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.st.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
