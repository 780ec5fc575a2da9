// Package etcdstore is the control plane's store on an existing etcd
// cluster: the alternative to the embedded Raft store (package raftstore)
// behind the same store.Store interface, for teams that already run etcd.
//
// Control-plane nodes on etcd keep no replicated state of their own. A
// write is appended under the prefix as one log entry, a key of its own
// whose etcd revision is its place in the one total order every node
// agrees on. Every node applies the entries through the same
// deterministic state machine as Raft (raftstore.FSM over state.Apply),
// in revision order, from a watch. The layout under the prefix P:
//
//	P/log/<id>            one log entry (etcdstorev1.Entry); its mod
//	                      revision orders it
//	P/head                rewritten with every entry, so one quorum read
//	                      of it names the newest entry (linearizable reads)
//	P/blob/<id>/<i>       chunks of values too large for one etcd request
//	                      (etcd refuses requests over 1.5 MiB by default):
//	                      large commands, audit batches, backups and state
//	                      snapshots, written before the key that refers to
//	                      them
//	P/snapshot            the manifest of the newest state snapshot (written
//	                      last): new and lagging nodes start from it
//	P/truncated           the revision up to which log entries may be gone
//	P/applied/<node>      each node's durable position: the revision up to
//	                      which it has applied every entry and made the
//	                      result survive a crash (its checkpoint and audit
//	                      store are fsynced)
//	P/election/           the etcd election of the node that does the
//	                      cluster's singleton work
//
// The elected node periodically writes a state snapshot and deletes the
// log entries (and their chunks) that every node has durably applied and
// the snapshot covers, so etcd holds the recent log only; audit upload
// batches pass through it that way into every node's own audit store and
// are deleted once every node has them. A node that restarts resumes
// from its checkpoint; when etcd has compacted its watch position away it
// resyncs from one consistent read of the prefix, and when the log it
// needs was truncated, from the snapshot (after merging a peer's audit
// store, which holds the upload batches etcd no longer has). Nothing is
// ever skipped silently.
package etcdstore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/singleton"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPrefix is the prefix of the keys when none is given.
const DefaultPrefix = "/portcullis"

// Timing is the store's timing. Zero fields take the defaults.
type Timing struct {
	// SessionTTL is the lease of the node's election session: how long
	// after a node dies another takes its singleton work over (default
	// 5s; etcd rounds it up to whole seconds).
	SessionTTL time.Duration
	// Checkpoint is how often the node makes its position durable (fsyncs
	// its audit store, writes its position) and publishes it (default 1s).
	// Log entries live in etcd at least this long after every node
	// applied them.
	Checkpoint time.Duration
	// StateCheckpoint is how often, at most, the node rewrites its whole
	// state to disk when it changed (default 10s): its position moves past
	// a change of state only then, so etcd holds that much more log.
	StateCheckpoint time.Duration
	// SnapshotInterval is how often the elected node writes a state
	// snapshot (when the state changed) and truncates the log (default
	// 5s).
	SnapshotInterval time.Duration
	// HistoryCompaction is how often, at most, the elected node compacts
	// etcd's history with Config.CompactHistory (default 1m).
	HistoryCompaction time.Duration
	// MaxLogBytes bounds the log etcd holds for nodes that lag: past it,
	// the elected node drops the hold of the node furthest behind, which
	// later resyncs from a snapshot (default 256 MiB).
	MaxLogBytes int64
}

func (t *Timing) defaults() {
	if t.SessionTTL <= 0 {
		t.SessionTTL = 5 * time.Second
	}
	if t.Checkpoint <= 0 {
		t.Checkpoint = time.Second
	}
	if t.StateCheckpoint <= 0 {
		t.StateCheckpoint = 10 * time.Second
	}
	if t.SnapshotInterval <= 0 {
		t.SnapshotInterval = 5 * time.Second
	}
	if t.HistoryCompaction <= 0 {
		t.HistoryCompaction = time.Minute
	}
	if t.MaxLogBytes <= 0 {
		t.MaxLogBytes = 256 << 20
	}
}

// AuditCopier merges the audit store of a peer into this node's. The
// store calls it when it installs a state snapshot over a gap in what it
// applied: the upload batches (and admin writes) of the skipped entries
// are no longer in etcd, but every node that applied them holds them.
// Implementations must be safe for concurrent use.
type AuditCopier interface {
	// CopyAudit restores into the local audit store a copy from one of
	// peers (API addresses) that has applied every log entry up to
	// revision, and returns which peer it was. It keeps trying other
	// peers until one succeeds or ctx ends. st is the state the node is
	// about to install (it names the cluster's CA).
	CopyAudit(ctx context.Context, st *state.State, peers []string, revision int64) (string, error)
}

// Config configures a Node.
type Config struct {
	NodeID string
	// Endpoints are the etcd client URLs; TLS secures the connections to
	// them (nil: plaintext).
	Endpoints []string
	TLS       *tls.Config
	// Prefix is where the store's keys live (default DefaultPrefix).
	Prefix string
	// Dir holds the node's checkpoint (created 0700 when missing).
	Dir string
	// Audit stores the records of AppendAudit commands (nil: refused).
	Audit *auditstore.Store
	// Peers copies a peer's audit store when the node starts from a
	// snapshot (nil: it starts without one, and says so).
	Peers AuditCopier
	// CompactHistory has the elected node compact etcd's history up to
	// the truncation point (at most every Timing.HistoryCompaction), for
	// an etcd that does
	// not compact itself: etcd keeps every revision of every key until it
	// is compacted, so deleted log entries would otherwise still fill it.
	// Leave it off on an etcd whose operator (or Kubernetes' API server)
	// compacts it.
	CompactHistory bool
	Timing         Timing
	Logger         *slog.Logger
}

// Node is one control-plane node on etcd. It implements store.Store and
// singleton.Elector.
type Node struct {
	cfg  Config
	cli  *clientv3.Client
	fsm  *raftstore.FSM
	keys keys
	log  *slog.Logger

	ctx    context.Context // ends at Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// applyMu is held while an entry is applied (or a state installed),
	// so a copy of the audit store, or a state, taken under it matches
	// applied exactly.
	applyMu sync.Mutex
	// mu guards what the apply loop publishes.
	mu sync.Mutex
	// applied is the revision up to which every log entry is applied.
	applied int64
	// stateRev is the revision of the last entry that changed the state
	// (every entry but an audit upload): the state at applied equals the
	// state at stateRev.
	stateRev    int64
	appliedCh   chan struct{} // closed when applied moves
	waiters     map[string]*waiter
	backlog     []sized // entries applied above the last truncation point
	startHead   int64   // the newest entry when the node opened
	caughtUp    bool
	fatal       error
	fatalCh     chan struct{}
	lastContact time.Time
	prevHead    int64
	lastHead    int64
	holdDropped bool
	holdCreate  int64      // create revision of this node's hold
	ckpt        checkpoint // what the checkpoint on disk says
	ckptStateAt time.Time  // when the state file was last written

	// compactMu serializes Compact; it guards what follows.
	compactMu     sync.Mutex
	compactedAt   time.Time // when this node last compacted etcd's history
	compactedRev  int64
	election      electionState
	etcdClusterID uint64
}

// sized is one applied entry's revision and bytes in etcd.
type sized struct {
	rev   int64
	bytes int64
}

var (
	_ store.Store       = (*Node)(nil)
	_ singleton.Elector = (*Node)(nil)
)

// ErrUnavailable: etcd cannot be reached or has no quorum. It wraps
// store.ErrNoLeader, so the admin API answers "unavailable" and clients
// retry (a retried write carries its request id and takes effect once).
var ErrUnavailable = fmt.Errorf("%w: etcd is unreachable or has no quorum", store.ErrNoLeader)

// Open connects to etcd and starts the node from its checkpoint in
// cfg.Dir (from nothing when there is none): it applies the log from a
// watch and, in the background, publishes its position, campaigns in the
// election and checkpoints. It returns once etcd answered; WaitSynced
// waits until the node has caught up with the log.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.NodeID == "" || cfg.Dir == "" || len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcdstore: NodeID, Dir and Endpoints are required")
	}
	prefix, err := cleanPrefix(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	cfg.Prefix = prefix
	cfg.Timing.defaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logger := cfg.Logger.With("component", "etcdstore", "node", cfg.NodeID)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		TLS:                  cfg.TLS,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               newZapLogger(logger),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	n := &Node{
		cfg: cfg, cli: cli, fsm: raftstore.NewFSM(cfg.Audit), keys: keys{prefix}, log: logger,
		appliedCh: make(chan struct{}), waiters: map[string]*waiter{}, fatalCh: make(chan struct{}),
	}
	n.election.init()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.open(ctx); err != nil {
		n.cancel()
		_ = cli.Close()
		return nil, err
	}
	n.wg.Add(3)
	go n.applyLoop()
	go n.maintainLoop()
	// The election's session lives on a context of its own (not Open's,
	// which bounds only the start), so that Shutdown can still revoke it.
	go n.electLoop() //nolint:gosec // the loops live until Shutdown, not for Open's request

	return n, nil
}

// open reads where etcd stands and loads the checkpoint.
func (n *Node) open(ctx context.Context) error {
	var head *clientv3.GetResponse
	err := retry(ctx, n.log, "read the head of the etcd log", func(ctx context.Context) error {
		var err error
		head, err = n.cli.Get(ctx, n.keys.head())
		return err
	})
	if err != nil {
		return fmt.Errorf("etcd at %s: %w", strings.Join(n.cfg.Endpoints, ","), describe(err))
	}
	n.etcdClusterID = head.Header.GetClusterId()
	if len(head.Kvs) == 1 {
		n.startHead = head.Kvs[0].ModRevision
	}
	n.lastContact = time.Now()
	n.lastHead, n.prevHead = n.startHead, n.startHead
	ck, st, err := loadCheckpoint(n.cfg.Dir, n.cfg.Prefix, n.etcdClusterID)
	if err != nil {
		return err
	}
	if ck.Position > head.Header.GetRevision() {
		return fmt.Errorf("this node's checkpoint in %s is at etcd revision %d, past etcd's %d: etcd was reset or restored from its own backup; start this node with an empty --data-dir", n.cfg.Dir, ck.Position, head.Header.GetRevision())
	}
	n.ckpt = ck
	if st != nil {
		if err := n.install(st); err != nil {
			return err
		}
		n.applied, n.stateRev = ck.Position, ck.Revision
		n.log.InfoContext(ctx, "resuming from the checkpoint", "revision", ck.Position, "index", st.Index())
	}
	n.caughtUp = n.applied >= n.startHead
	return n.hold(ctx)
}

// cleanPrefix checks the prefix and drops a trailing slash.
func cleanPrefix(p string) (string, error) {
	if p == "" {
		p = DefaultPrefix
	}
	p = strings.TrimRight(p, "/")
	if p == "" || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\n") || len(p) > 128 {
		return "", fmt.Errorf("--etcd-prefix %q: want an absolute key prefix such as /portcullis (at most 128 bytes)", p)
	}
	return p, nil
}

// ID is this node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// LocalState returns this node's applied state.
func (n *Node) LocalState() *state.State { return n.fsm.State() }

// Changed implements store.Store.
func (n *Node) Changed() <-chan struct{} { return n.fsm.Changed() }

// Applied is the revision up to which this node applied the log.
func (n *Node) Applied() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applied
}

// LastContact is when this node last heard from etcd.
func (n *Node) LastContact() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastContact
}

// Err is closed when the node stopped applying the log because of an
// entry it cannot apply; Fatal then says why. The node serves nothing
// new after that: a replica that skipped an entry would diverge.
func (n *Node) Err() <-chan struct{} { return n.fatalCh }

// Fatal is why the node stopped (nil while it runs).
func (n *Node) Fatal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fatal
}

// Ready reports whether this node can serve: it has caught up with the
// log as of its last look at etcd, heard from etcd recently, and holds a
// bootstrapped state.
func (n *Node) Ready() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	fresh := time.Since(n.lastContact) < 3*n.cfg.Timing.Checkpoint+2*time.Second
	return n.fatal == nil && n.caughtUp && fresh && n.applied >= n.prevHead && n.fsm.State().Identity() != nil
}

// WaitSynced waits until the node has applied the log as it stood when
// the node opened.
func (n *Node) WaitSynced(ctx context.Context) error {
	for {
		n.mu.Lock()
		ok, ch, fatal := n.caughtUp, n.appliedCh, n.fatal
		n.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("catch up with the etcd log: %w", ctx.Err())
		case <-ch:
		case <-n.fatalCh:
		}
	}
}

// Leader returns the elected node's id and API address (from the node
// records in the state); empty when none is known.
func (n *Node) Leader() (id, apiAddr string) {
	id = n.election.leader()
	if id == "" {
		return "", ""
	}
	if r, ok := n.fsm.State().Get(resource.Node, id); ok {
		return id, r.GetNode().GetApiAddr()
	}
	return id, ""
}

// IsLeader reports whether this node holds the election.
func (n *Node) IsLeader() bool { return n.election.leading() }

// Client is the node's etcd client (for tests and tools).
func (n *Node) Client() *clientv3.Client { return n.cli }

// Shutdown stops the node: it stops applying, makes its position durable
// one last time, resigns from the election (so another node takes over at
// once) and closes the etcd client.
func (n *Node) Shutdown() error {
	n.cancel()
	n.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if n.Fatal() == nil {
		err = n.checkpoint(ctx, true)
	}
	n.election.close(ctx)
	if cerr := n.cli.Close(); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	n.failWaiters(store.ErrShutdown)
	return err
}

// halt stops applying for good: an entry this node cannot apply. Like
// Raft's state machine, the node stops rather than diverge.
func (n *Node) halt(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fatal != nil {
		return
	}
	n.fatal = err
	close(n.fatalCh)
	n.log.Error("this node stops applying the log and serving writes rather than diverge from the other nodes", "err", err)
}

// newID returns a random id for a log entry.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
