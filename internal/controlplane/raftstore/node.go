// Package raftstore is the embedded resource store: hashicorp/raft with a
// raft-wal log, file snapshots, and a transport on mutual TLS (plain TCP only
// in --dev). Writes on a follower are forwarded to the leader through a
// Forwarder; reads are local, or linearizable through a leader barrier.
package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

// Forwarder reaches the leader's node-to-node API. Implementations must be
// safe for concurrent use.
type Forwarder interface {
	// Apply has the leader at apiAddr apply a serialized command and
	// returns the serialized result.
	Apply(ctx context.Context, apiAddr string, command []byte) ([]byte, error)
	// ReadIndex asks the leader at apiAddr for a read index.
	ReadIndex(ctx context.Context, apiAddr string) (uint64, error)
}

// Timing is Raft's timing. Zero fields take hashicorp/raft's defaults
// (1s heartbeat and election timeouts: failover in about 1-2s).
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries are kept after a snapshot.
	TrailingLogs     uint64
	SnapshotInterval time.Duration
	// LogSegmentSize is the size of the Raft log's segment files (0:
	// raft-wal's 64 MiB). The log drops whole segments only, and serves
	// every entry of the segment it appends to: tests that need a follower
	// to catch up from a snapshot make it small.
	LogSegmentSize int
}

// Config configures a Node.
type Config struct {
	ID      string
	DataDir string
	// RaftBind is the address the Raft listener binds; RaftAdvertise is the
	// address peers dial (defaults to the bound address).
	RaftBind      string
	RaftAdvertise string
	// ServerTLS and ClientTLS secure the Raft transport; both nil in --dev.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	Forwarder Forwarder
	Timing    Timing
	Logger    *slog.Logger
	// Audit stores the records of AppendAudit commands (nil: refused).
	Audit *auditstore.Store
	// Segments fetches the sealed audit segments a snapshot names and this
	// node lacks from peers (nil: a restore that needs one fails).
	Segments SegmentFetcher
}

// Node is one member of the Raft cluster and implements store.Store.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *FSM
	wal       *wal.WAL
	meta      *metadb.BoltMetaDB
	transport *raft.NetworkTransport
	log       *slog.Logger
	// restoreMu serializes RestoreLocal, so two restores never start the
	// same epoch.
	restoreMu sync.Mutex
}

var _ store.Store = (*Node)(nil)

// applyTimeout bounds how long a proposal may wait to be enqueued.
const applyTimeout = 10 * time.Second

// Open starts the Raft node from its data directory (creating it when
// absent). It does not bootstrap; see Bootstrap.
func Open(cfg Config) (*Node, error) {
	if cfg.ID == "" || cfg.DataDir == "" || cfg.RaftBind == "" {
		return nil, errors.New("raftstore: ID, DataDir and RaftBind are required")
	}
	if (cfg.ServerTLS == nil) != (cfg.ClientTLS == nil) {
		return nil, errors.New("raftstore: give both TLS configs or neither")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "raft", "node", cfg.ID)
	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(filepath.Join(raftDir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	hl := newHCLog(logger, "raft")
	// raft-wal's Close leaves its metadata database open (and locked), so
	// we own it and close it ourselves; otherwise a node could not reopen
	// its data dir in the same process.
	meta := &metadb.BoltMetaDB{}
	segSize := wal.DefaultSegmentSize
	if cfg.Timing.LogSegmentSize > 0 {
		segSize = cfg.Timing.LogSegmentSize
	}
	w, err := wal.Open(filepath.Join(raftDir, "wal"), wal.WithLogger(hl.Named("wal")), wal.WithMetaStore(meta), wal.WithSegmentSize(segSize))
	if err != nil {
		_ = meta.Close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 3, hl.Named("snapshots"))
	if err != nil {
		_ = w.Close()
		_ = meta.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	var advertise net.Addr
	if cfg.RaftAdvertise != "" {
		if advertise, err = net.ResolveTCPAddr("tcp", cfg.RaftAdvertise); err != nil {
			_ = w.Close()
			_ = meta.Close()
			return nil, fmt.Errorf("raft advertise address: %w", err)
		}
	}
	var layer raft.StreamLayer
	if cfg.ServerTLS != nil {
		layer, err = newTLSStreamLayer(cfg.RaftBind, advertise, cfg.ServerTLS, cfg.ClientTLS)
	} else {
		layer, err = newPlainStreamLayer(cfg.RaftBind, advertise)
	}
	if err != nil {
		_ = w.Close()
		_ = meta.Close()
		return nil, err
	}
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl.Named("transport"),
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	// A removed node must be able to rejoin with its data intact.
	rc.ShutdownOnRemove = false
	t := cfg.Timing
	setDur(&rc.HeartbeatTimeout, t.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, t.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, t.LeaderLeaseTimeout)
	setDur(&rc.CommitTimeout, t.CommitTimeout)
	setDur(&rc.SnapshotInterval, t.SnapshotInterval)
	if t.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = t.SnapshotThreshold
	}
	if t.TrailingLogs > 0 {
		rc.TrailingLogs = t.TrailingLogs
	}

	fsm := NewFSM(cfg.Audit)
	if cfg.Logger != nil {
		fsm.log = cfg.Logger.With("component", "fsm", "node", cfg.ID)
	}
	// raft.NewRaft restores the latest snapshot, before n exists: the
	// leader is looked up through it once it does.
	var node atomic.Pointer[Node]
	fsm.FetchSegmentsWith(cfg.Segments, cfg.ID, func() string {
		if n := node.Load(); n != nil {
			_, addr := n.Leader()
			return addr
		}
		return ""
	})
	r, err := raft.NewRaft(rc, fsm, w, w, snaps, transport)
	if err != nil {
		_ = transport.Close()
		_ = w.Close()
		_ = meta.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n := &Node{cfg: cfg, raft: r, fsm: fsm, wal: w, meta: meta, transport: transport, log: logger}
	node.Store(n)
	return n, nil
}

func setDur(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// HasState reports whether dataDir holds Raft state from an earlier run.
func HasState(dataDir string) bool {
	entries, err := os.ReadDir(filepath.Join(dataDir, "raft", "wal"))
	return err == nil && len(entries) > 0
}

// Bootstrap makes this node a single-voter cluster. Only for a node with no
// Raft state.
func (n *Node) Bootstrap() error {
	f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(n.cfg.ID),
		Address:  n.transport.LocalAddr(),
	}}})
	if err := f.Error(); err != nil {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// ID is this node's id.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr is the address peers reach this node's Raft transport at.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// Changed implements store.Store.
func (n *Node) Changed() <-chan struct{} { return n.fsm.Changed() }

// LocalState returns this node's applied state.
func (n *Node) LocalState() *state.State { return n.fsm.State() }

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's id and its API address (from the
// replicated node records); empty when unknown.
func (n *Node) Leader() (id, apiAddr string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	if r, ok := n.fsm.State().Get(resource.Node, string(lid)); ok {
		return string(lid), r.GetNode().GetApiAddr()
	}
	return string(lid), ""
}

// Ready reports whether this node can serve: a leader is known and
// reachable for forwarding, and this node has applied everything it knows
// to be committed (a restarted node replays its log first).
func (n *Node) Ready() bool {
	id, addr := n.Leader()
	if id == "" || (addr == "" && !n.IsLeader()) {
		return false
	}
	return n.fsm.State().Identity() != nil && n.raft.AppliedIndex() >= n.raft.CommitIndex()
}

// WaitLeader waits until some leader is known.
func (n *Node) WaitLeader(ctx context.Context) error {
	for {
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a leader: %w", store.ErrNoLeader)
		case <-n.raft.LeaderCh():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Apply implements store.Store: on the leader it proposes cmd; on a
// follower it forwards it to the leader, retrying across a leadership
// change until ctx ends. Retrying is safe because the state machine
// deduplicates by request id.
//
// Before proposing (or forwarding) it checks the version gate: a command
// this binary cannot apply, or one that needs a cluster version some
// voter does not support yet, is refused with a domain error (a result
// with Error set) and never reaches the log. A command that needs more
// than the baseline is stamped with that version (Command.cluster_version)
// so that every replica checks the same gate when it applies it.
func (n *Node) Apply(ctx context.Context, cmd *fsmv1.Command) (*fsmv1.Result, error) {
	cmd, refused := n.admit(cmd)
	if refused != nil {
		return refused, nil
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	backoff := 20 * time.Millisecond
	for {
		res, err := n.applyOnce(ctx, data)
		if err == nil || !retryable(err) {
			return res, err
		}
		n.log.DebugContext(ctx, "apply: retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

func retryable(err error) bool {
	return errors.Is(err, store.ErrNoLeader) || errors.Is(err, store.ErrNotLeader) ||
		errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

func (n *Node) applyOnce(ctx context.Context, data []byte) (*fsmv1.Result, error) {
	if n.IsLeader() {
		return n.ApplyLocal(ctx, data)
	}
	id, addr := n.Leader()
	if id == "" || addr == "" {
		return nil, store.ErrNoLeader
	}
	if n.cfg.Forwarder == nil {
		return nil, store.ErrNotLeader
	}
	out, err := n.cfg.Forwarder.Apply(ctx, addr, data)
	if err != nil {
		return nil, fmt.Errorf("forward to leader %s: %w", id, err)
	}
	res := &fsmv1.Result{}
	if err := proto.Unmarshal(out, res); err != nil {
		return nil, fmt.Errorf("decode forwarded result: %w", err)
	}
	return res, nil
}

// ApplyLocal proposes a serialized command on this node, which must be the
// leader, and waits for it to be applied.
//
// The leader checks what every command needs again here, whoever sent it:
// a command it cannot apply in full, or whose version some voter does not
// support, is refused (a result with Error set) and never enters the log.
func (n *Node) ApplyLocal(ctx context.Context, data []byte) (*fsmv1.Result, error) {
	// Never let an entry into the log that does not decode, or that this
	// binary could not apply (the checks of DecodeCommand, in admit).
	cmd := &fsmv1.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	if stamped, refused := n.admit(cmd); refused != nil {
		return refused, nil
	} else if stamped.GetClusterVersion() != cmd.GetClusterVersion() {
		var err error
		if data, err = proto.Marshal(stamped); err != nil {
			return nil, fmt.Errorf("encode command: %w", err)
		}
	}
	timeout := applyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return nil, store.ErrNotLeader
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return nil, store.ErrShutdown
		}
		return nil, fmt.Errorf("raft apply: %w", err)
	}
	res, ok := f.Response().(*fsmv1.Result)
	if !ok {
		return nil, fmt.Errorf("raft apply: unexpected response %T", f.Response())
	}
	return res, nil
}

// admit checks cmd against the version gate before it is proposed (see
// Admit).
func (n *Node) admit(cmd *fsmv1.Command) (*fsmv1.Command, *fsmv1.Result) {
	return Admit(n.cfg.ID, cmd, n.gateVoters)
}

// Admit checks cmd against the version gate before node proposes it. It
// returns the command to propose (a stamped copy when it needs more than
// the baseline version) or, when cmd must not be proposed, the refusal to
// return instead. voters lists the voters the gate counts; it is called
// only for a command that needs more than the baseline. Every store
// proposes through it (the etcd store too).
func Admit(node string, cmd *fsmv1.Command, voters func() []clusterversion.Voter) (*fsmv1.Command, *fsmv1.Result) {
	if cmd.GetOp() == nil && clusterversion.UnknownFields(cmd.ProtoReflect()) == "" {
		return nil, &fsmv1.Result{Error: &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, Message: "the command has no operation"}}
	}
	need, err := clusterversion.Needs(cmd)
	if err != nil {
		return nil, &fsmv1.Result{Error: &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION,
			Message: fmt.Sprintf("control-plane node %s cannot propose this write: %v; upgrade this node's binary first", node, err)}}
	}
	if need.Version <= clusterversion.Baseline {
		return cmd, nil
	}
	if err := clusterversion.Gate(need, voters()); err != nil {
		return nil, &fsmv1.Result{Error: &fsmv1.Error{Code: fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, Message: err.Error()}}
	}
	if cmd.GetClusterVersion() != uint32(need.Version) {
		cmd = proto.Clone(cmd).(*fsmv1.Command)
		cmd.ClusterVersion = uint32(need.Version)
	}
	return cmd, nil
}

// gateVoters lists the voters the version gate counts before a write is
// proposed: every node the state records (with the version it recorded)
// and every voter of the Raft configuration that has no record yet (at
// the baseline version, since it has recorded nothing). Applying a command
// counts the recorded nodes only (state.State.Voters), which is what
// every replica can agree on.
func (n *Node) gateVoters() []clusterversion.Voter {
	out := n.fsm.State().Voters()
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return out
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if !slices.ContainsFunc(out, func(v clusterversion.Voter) bool { return v.ID == string(s.ID) }) {
			out = append(out, clusterversion.Voter{ID: string(s.ID), Version: clusterversion.Baseline})
		}
	}
	return out
}

// State implements store.Store.
func (n *Node) State(ctx context.Context, linearizable bool) (*state.State, error) {
	if !linearizable {
		return n.fsm.State(), nil
	}
	var idx uint64
	var err error
	if n.IsLeader() {
		idx, err = n.ReadIndexLocal(ctx)
	} else {
		id, addr := n.Leader()
		if id == "" || addr == "" {
			return nil, store.ErrNoLeader
		}
		if n.cfg.Forwarder == nil {
			return nil, store.ErrNotLeader
		}
		idx, err = n.cfg.Forwarder.ReadIndex(ctx, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("linearizable read: %w", err)
	}
	return n.WaitIndex(ctx, idx)
}

// ReadIndexLocal confirms leadership with a barrier (a log entry a quorum
// must accept) and returns the index of the last command applied before it:
// every acknowledged write is at or below it.
func (n *Node) ReadIndexLocal(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, store.ErrNotLeader
	}
	timeout := applyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, store.ErrNotLeader
		}
		return 0, fmt.Errorf("raft barrier: %w", err)
	}
	return n.fsm.State().Index(), nil
}

// WaitIndex waits until this node has applied the command at idx and
// returns the state then.
func (n *Node) WaitIndex(ctx context.Context, idx uint64) (*state.State, error) {
	for {
		ch := n.fsm.Changed()
		if st := n.fsm.State(); st.Index() >= idx {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for index %d: %w", idx, ctx.Err())
		case <-ch:
		}
	}
}

// Shutdown stops Raft and closes the log and transport.
func (n *Node) Shutdown() error {
	err := n.raft.Shutdown().Error()
	if cerr := n.transport.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := n.wal.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := n.meta.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
