package raftstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// FSM is the Raft state machine: it decodes typed commands and hands them to
// state.Apply. Readers get the current immutable state without locks; the
// apply loop never waits for them. AppendAudit commands go to the node's
// audit store instead and never change the state; every other command's
// admin event is also appended there, to the control plane's own chain
// (see auditAdmin).
type FSM struct {
	cur   atomic.Pointer[state.State]
	audit *auditstore.Store // nil: AppendAudit is refused
	log   *slog.Logger
	// segments fetches sealed audit segments from peers when a snapshot's
	// manifest names some this node lacks (nil: none can be fetched);
	// self is this node's id and leader the leader's API address.
	segments SegmentFetcher
	self     string
	leader   func() string

	mu      sync.Mutex
	changed chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns a state machine holding the empty state, appending audit
// records to audit (nil for none).
func NewFSM(audit *auditstore.Store) *FSM {
	f := &FSM{changed: make(chan struct{}), audit: audit, log: slog.New(slog.DiscardHandler)}
	f.cur.Store(state.New())
	return f
}

// SegmentFetcher fetches a sealed audit segment from a peer
// (peer.Client). Implementations must be safe for concurrent use.
type SegmentFetcher interface {
	// FetchAuditSegment writes the bytes of the sealed segment name of the
	// node at apiAddr to w.
	FetchAuditSegment(ctx context.Context, apiAddr, name string, w io.Writer) error
}

// FetchSegmentsWith makes the state machine fetch the sealed audit
// segments a snapshot names and this node lacks with fetcher: from the
// leader (leader returns its API address, "" when unknown) first, then
// from every other node the snapshot's state records. self is this node's
// id. Call it before the node starts.
func (f *FSM) FetchSegmentsWith(fetcher SegmentFetcher, self string, leader func() string) {
	f.segments, f.self, f.leader = fetcher, self, leader
}

// sources lists where to fetch sealed audit segments from, given the
// state being restored: the leader, then the other nodes it records.
func (f *FSM) sources(st *state.State) []auditstore.Source {
	if f.segments == nil {
		return nil
	}
	var addrs []string
	if f.leader != nil {
		if a := f.leader(); a != "" {
			addrs = append(addrs, a)
		}
	}
	st.Each(resource.Node, func(r *fsmv1.Resource) bool {
		if a := r.GetNode().GetApiAddr(); resource.Name(r) != f.self && a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
		return true
	})
	out := make([]auditstore.Source, len(addrs))
	for i, a := range addrs {
		out[i] = func(ctx context.Context, name string, w io.Writer) error {
			return f.segments.FetchAuditSegment(ctx, a, name, w)
		}
	}
	return out
}

// DecodeCommand decodes a committed log entry and checks that this binary
// can apply it in full (clusterversion.Needs): an entry that does not
// decode, has no operation, uses an operation or resource kind this binary
// does not know, or needs a higher cluster version than it supports is an
// error. The leader runs it before proposing, so no entry that fails it on
// the leader enters the log; a replica that fails it on a committed entry
// runs an older binary than the leader's (or its log is corrupt). It is
// exported for the fuzz test of the decoder.
func DecodeCommand(data []byte) (*fsmv1.Command, error) {
	cmd := &fsmv1.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	if cmd.GetOp() == nil && clusterversion.UnknownFields(cmd.ProtoReflect()) == "" {
		return nil, fmt.Errorf("decode command: no operation")
	}
	if _, err := clusterversion.Needs(cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	return cmd, nil
}

// Apply applies one committed command. A command that cannot be decoded,
// or that this binary cannot apply in full (written by a newer version),
// stops the node: skipping it, or refusing it where the other replicas
// applied it, would leave this replica serving a state that differs from
// theirs. The version gates keep a rolling upgrade from ever getting here.
func (f *FSM) Apply(l *raft.Log) any {
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		f.halt(l.Index, err)
	}
	if op := cmd.GetAppendAudit(); op != nil {
		return f.applyAudit(l.Index, op)
	}
	next, res := state.Apply(f.cur.Load(), l.Index, cmd)
	f.auditWrite(l.Index, next)
	f.swap(next)
	return res
}

// halt stops the node on a committed entry it cannot apply: it logs why
// and panics, which ends the process (the apply loop cannot return an
// error to Raft, and carrying on would diverge).
func (f *FSM) halt(index uint64, err error) {
	msg := fmt.Sprintf("raftstore: this node cannot apply committed log entry %d and stops rather than diverge from the other replicas: %v", index, err)
	if ue := (*clusterversion.UnsupportedError)(nil); errors.As(err, &ue) {
		msg += "; a newer Portcullis version wrote it: upgrade this node's binary"
	}
	f.log.Error(msg, "index", index)
	panic(msg)
}

// applyAudit stores audit records. Refusals are domain errors: ABORTED for
// records that do not continue the stored sequence (the uploader resends
// from audit_next_sequence), FAILED_PRECONDITION for a broken chain or a
// foreign record.
func (f *FSM) applyAudit(index uint64, op *fsmv1.AppendAudit) *fsmv1.Result {
	res := &fsmv1.Result{Index: index}
	if f.audit == nil {
		res.Error = &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, Message: "this control-plane node keeps no audit store"}
		return res
	}
	if op.GetDataplane() == auditstore.ControlPlane {
		res.Error = &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION,
			Message: fmt.Sprintf("%q is the control plane's own audit chain; no data plane may upload under that name", auditstore.ControlPlane)}
		return res
	}
	next, err := f.audit.Append(op.GetDataplane(), op.GetRecords())
	res.AuditNextSequence = next
	switch {
	case err == nil:
	case errors.Is(err, auditstore.ErrGap):
		res.Error = &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_ABORTED, Message: err.Error()}
	case errors.Is(err, auditstore.ErrChain), errors.Is(err, auditstore.ErrDataplane):
		res.Error = &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, Message: err.Error()}
	default:
		// This node's disk failed; the other replicas hold the records,
		// and the uploader's retry brings them here again.
		res.Error = &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_UNSPECIFIED, Message: "the audit store could not write: " + err.Error()}
	}
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

// snapshotMagic starts a snapshot that carries the audit store after the
// state:
//
//	magic   8 bytes "PCFSM002"
//	length  uint64, little-endian: bytes of the state stream
//	state   the state stream (state.WriteTo)
//	audit   the audit store (auditstore.Snapshot.WriteTo), or nothing
//
// A snapshot without the magic is a bare state stream (older snapshots,
// and backups): restoring it leaves the audit store as it is. A bare state
// stream never starts with "PCFSM" (it starts with the length and then
// field 1 of its header), so another "PCFSM…" magic is a container of a
// newer version, which Restore refuses.
const snapshotMagic = "PCFSM002"

// snapshotFamily is the part of the magic every version of the container
// shares.
const snapshotFamily = "PCFSM"

// Snapshot captures the current state and audit store. The state is
// immutable, so this is O(1); the audit store's segments are held open.
// Persist streams both while the apply loop carries on. Once every voter
// supports clusterversion.AuditSegments the audit store goes in as a
// manifest (its sealed segments by name and hash, and the open segment);
// before, as every segment's bytes, which older replicas read.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	st := f.cur.Load()
	s := &fsmSnapshot{st: st}
	if f.audit != nil {
		var err error
		if clusterversion.Supports(st.Voters(), clusterversion.AuditSegments) {
			s.audit, err = f.audit.Manifest()
		} else {
			s.audit, err = f.audit.Snapshot()
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Restore replaces the state with a snapshot, atomically for readers, and
// merges the snapshot's audit records into the audit store.
//
// A snapshot written by a newer version (state.ErrTooNew) stops the node
// like an entry it cannot apply: refusing it would leave this replica
// behind the others for good, serving an ever older state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	err := f.restore(rc)
	if errors.Is(err, state.ErrTooNew) {
		msg := fmt.Sprintf("raftstore: this node cannot restore a snapshot and stops rather than fall behind the other replicas: %v", err)
		f.log.Error(msg)
		panic(msg)
	}
	return err
}

func (f *FSM) restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	head, _ := br.Peek(len(snapshotMagic))
	if string(head) != snapshotMagic && strings.HasPrefix(string(head), snapshotFamily) {
		return fmt.Errorf("restore snapshot: %w: its container is %q, this binary reads %q; upgrade this node's binary", state.ErrTooNew, head, snapshotMagic)
	}
	if string(head) != snapshotMagic {
		st, err := state.Read(br)
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		f.swap(st)
		return nil
	}
	var pre [len(snapshotMagic) + 8]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	lr := io.LimitReader(br, int64(binary.LittleEndian.Uint64(pre[len(snapshotMagic):])))
	st, err := state.Read(lr)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if f.audit != nil {
		if _, err := br.Peek(1); err == nil {
			if err := f.audit.Restore(br, f.sources(st)...); err != nil {
				return fmt.Errorf("restore snapshot: %w", err)
			}
		}
	}
	f.swap(st)
	return nil
}

type fsmSnapshot struct {
	st    *state.State
	audit auditPart
}

// auditPart is the audit store's part of a snapshot: an
// *auditstore.Snapshot or an *auditstore.Manifest.
type auditPart interface {
	WriteTo(w io.Writer) (int64, error)
	Release()
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.persist(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) persist(w io.Writer) error {
	var st bytes.Buffer
	if _, err := s.st.WriteTo(&st); err != nil {
		return err
	}
	var pre [len(snapshotMagic) + 8]byte
	copy(pre[:], snapshotMagic)
	binary.LittleEndian.PutUint64(pre[len(snapshotMagic):], uint64(st.Len()))
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	if _, err := st.WriteTo(w); err != nil {
		return err
	}
	if s.audit != nil {
		if _, err := s.audit.WriteTo(w); err != nil {
			return err
		}
	}
	return nil
}

func (s *fsmSnapshot) Release() {
	if s.audit != nil {
		s.audit.Release()
	}
}
