package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore/etcdtest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	etcdstorev1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/etcdstore/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fastTiming checkpoints and compacts often, so tests see it happen.
var fastTiming = etcdstore.Timing{
	SessionTTL:        time.Second,
	Checkpoint:        50 * time.Millisecond,
	StateCheckpoint:   100 * time.Millisecond,
	HistoryCompaction: time.Millisecond,
	SnapshotInterval:  time.Hour, // the tests call Compact themselves
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// cluster is a set of store nodes on one etcd prefix.
type cluster struct {
	t *testing.T
	// compactHistory starts nodes with Config.CompactHistory.
	compactHistory bool
	// manifest makes the nodes' audit copies manifests (as peer.Client
	// asks for them), and segmentSize is their audit stores' segment size
	// (0: the default).
	manifest    bool
	segmentSize int64
	// fetched counts the sealed segments manifest copies fetched.
	fetched atomic.Int64
	etcd    *etcdtest.Server
	prefix  string
	nodes   map[string]*node
}

// node is one store node with its own directory and audit store.
type node struct {
	id    string
	dir   string
	audit *auditstore.Store
	n     *etcdstore.Node
	c     *cluster
}

func newCluster(t *testing.T) *cluster {
	return &cluster{t: t, etcd: etcdtest.Start(t), prefix: "/test/" + strings.ReplaceAll(t.Name(), "/", "-"), nodes: map[string]*node{}}
}

// copier is the test's AuditCopier: it merges a running peer's copy
// straight from its store node.
type copier struct {
	c        *cluster
	into     func() *auditstore.Store
	self     string
	manifest bool // ask for a manifest copy, as peer.Client does
}

func (cp copier) CopyAudit(ctx context.Context, _ *state.State, _ []string, rev int64) (string, error) {
	for {
		for id, p := range cp.c.nodes {
			if id == cp.self || p.n == nil {
				continue
			}
			snap, applied, err := p.n.AuditCopy(ctx, cp.manifest)
			if err != nil {
				continue
			}
			if int64(applied) < rev {
				snap.Release()
				continue
			}
			pr, pw := io.Pipe()
			go func() {
				_, err := snap.WriteTo(pw)
				pw.CloseWithError(err)
			}()
			// The sealed segments a manifest lists come from the peer's
			// store, as FetchAuditSegment serves them.
			from := func(_ context.Context, name string, w io.Writer) error {
				f, _, err := p.audit.OpenSealed(name)
				if err != nil {
					return err
				}
				defer f.Close()
				cp.c.fetched.Add(1)
				_, err = io.Copy(w, f)
				return err
			}
			err = cp.into().Restore(pr, from)
			_ = pr.Close()
			snap.Release()
			if err != nil {
				return "", err
			}
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// start opens node id (a new one, or again from its directory).
func (c *cluster) start(id string) *node {
	c.t.Helper()
	nd := c.nodes[id]
	if nd == nil {
		nd = &node{id: id, dir: c.t.TempDir(), c: c}
		c.nodes[id] = nd
	}
	a, err := auditstore.Open(auditstore.Options{Dir: filepath.Join(nd.dir, "audit"), SegmentSize: c.segmentSize})
	if err != nil {
		c.t.Fatal(err)
	}
	nd.audit = a
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := etcdstore.Open(ctx, etcdstore.Config{
		NodeID: id, Endpoints: c.etcd.Endpoints, Prefix: c.prefix, Dir: filepath.Join(nd.dir, "etcd"),
		Audit: a, Peers: copier{c: c, into: func() *auditstore.Store { return nd.audit }, self: id, manifest: c.manifest}, CompactHistory: c.compactHistory,
		Timing: fastTiming, Logger: slog.New(slog.NewTextHandler(tWriter{c.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	if err := n.WaitSynced(ctx); err != nil {
		c.t.Fatalf("%s: %v", id, err)
	}
	nd.n = n
	c.t.Cleanup(nd.stop)
	return nd
}

func (nd *node) stop() {
	if nd.n != nil {
		if err := nd.n.Shutdown(); err != nil {
			nd.c.t.Errorf("shut %s down: %v", nd.id, err)
		}
		nd.n = nil
		_ = nd.audit.Close()
	}
}

func (nd *node) apply(cmd *fsmv1.Command) *fsmv1.Result {
	nd.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := nd.n.Apply(ctx, cmd)
	if err != nil {
		nd.c.t.Fatalf("apply on %s: %v", nd.id, err)
	}
	return res
}

// caughtUp waits until every running node has applied what etcd holds.
func (c *cluster) caughtUp() {
	c.t.Helper()
	for _, nd := range c.nodes {
		if nd.n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := nd.n.State(ctx, true); err != nil {
			c.t.Fatalf("%s: linearizable read: %v", nd.id, err)
		}
		cancel()
	}
}

// same fails the test unless every running node holds the same state and
// the same audit chains.
func (c *cluster) same(keys []statetest.DedupKey) {
	c.t.Helper()
	c.caughtUp()
	var first *node
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range c.nodes {
			if !yield(id) {
				return
			}
		}
	}) {
		nd := c.nodes[id]
		if nd.n == nil {
			continue
		}
		if first == nil {
			first = nd
			continue
		}
		if d := statetest.Diff(first.n.LocalState(), nd.n.LocalState(), keys); len(d) > 0 {
			c.t.Fatalf("%s and %s differ:\n%s", first.id, nd.id, strings.Join(d, "\n"))
		}
		ra, err := first.audit.Verify()
		if err != nil {
			c.t.Fatal(err)
		}
		rb, err := nd.audit.Verify()
		if err != nil {
			c.t.Fatal(err)
		}
		if ra.Problem != nil || rb.Problem != nil {
			c.t.Fatalf("audit stores not intact: %v / %v", ra.Problem, rb.Problem)
		}
		if fmt.Sprint(ra.Chains) != fmt.Sprint(rb.Chains) {
			c.t.Fatalf("audit chains differ:\n%s: %v\n%s: %v", first.id, ra.Chains, nd.id, rb.Chains)
		}
	}
}

// chain makes records from..to of data plane dp's hash chain (prev is the
// hash before from), padded to about pad bytes each.
func chain(t *testing.T, dp string, from, to int, prev []byte, pad int) []*auditv1.Record {
	t.Helper()
	var out []*auditv1.Record
	for i := from; i <= to; i++ {
		r := &auditv1.Record{Time: timestamppb.Now(), Dataplane: dp, Sequence: uint64(i), Agent: "a", Tool: "t", Outcome: "ok",
			ArgumentsJson: fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", pad)), PrevHash: prev}
		sum, _, err := auditchain.Hash(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Hash, prev = sum[:], sum[:]
		out = append(out, r)
	}
	return out
}

func appendAudit(dp string, recs []*auditv1.Record) *fsmv1.Command {
	return &fsmv1.Command{
		Actor:  &configv1.Actor{TokenId: "dp:" + dp, Role: configv1.Role_ROLE_DATAPLANE},
		Time:   timestamppb.Now(),
		Method: "AuditService.Upload",
		Op:     &fsmv1.Command_AppendAudit{AppendAudit: &fsmv1.AppendAudit{Dataplane: dp, Records: recs}},
	}
}

// TestEveryNodeAppliesTheSameLog: the scripted command sequence (every
// operation and resource kind, refusals, deduplicated retries), appended
// through alternating nodes, leaves every node with the same state, the
// same results as the pure state machine gives, and the same audit chain
// of admin writes; a linearizable read on one node sees a write just
// acknowledged on another.
func TestEveryNodeAppliesTheSameLog(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("n1"), c.start("n2")
	steps := statetest.Script()
	// The script's indices are 1, 2, …; here they are etcd revisions, so
	// an expected revision names the step's write by its result instead.
	indexOf := map[uint64]uint64{}
	for i, st := range steps {
		on := a
		if i%2 == 1 {
			on = b
		}
		if p := st.Cmd.GetPut(); p != nil && p.GetExpectedRevision() != 0 {
			p.ExpectedRevision = indexOf[p.GetExpectedRevision()]
		}
		// A rollout names the revision of the stored tests it passed: a
		// script index too.
		if r := st.Cmd.GetPut().GetResource().GetRollout(); r != nil && r.GetTestsRevision() != 0 {
			r.TestsRevision = indexOf[r.GetTestsRevision()]
		}
		res := on.apply(st.Cmd)
		indexOf[uint64(i+1)] = res.GetIndex()
		if err := statetest.CheckResult(st, res); err != nil {
			t.Fatalf("step %d (%s) on %s: %v", i, st.Name, on.id, err)
		}
		if res.GetError() == nil && res.GetIndex() == 0 {
			t.Fatalf("step %d: no index in the result", i)
		}
	}
	ctx := context.Background()
	a.apply(statetest.By(statetest.Create(statetest.Agent("read-your-write", "")), statetest.BootToken, "r-ryw", 50))
	st, err := b.n.State(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get(resource.Agent, "read-your-write"); !ok {
		t.Fatal("a linearizable read on n2 missed a write acknowledged on n1")
	}
	c.same(statetest.DedupKeys(steps))
}

// TestLargeWritesAreChunked: an audit batch far over etcd's 1.5 MiB
// request limit goes through in chunks and reaches every node.
func TestLargeWritesAreChunked(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("n1"), c.start("n2")
	a.apply(statetest.Bootstrap())
	recs := chain(t, "dp1", 1, 400, auditchain.Zero, 10<<10) // ~4 MiB
	if size := proto.Size(appendAudit("dp1", recs)); size < 3<<20 {
		t.Fatalf("the batch is only %d bytes", size)
	}
	res := b.apply(appendAudit("dp1", recs))
	if res.GetError() != nil || res.GetAuditNextSequence() != 401 {
		t.Fatalf("append: %v, next %d", res.GetError(), res.GetAuditNextSequence())
	}
	c.same(nil)
	if got := a.audit.Next("dp1"); got != 401 {
		t.Fatalf("n1 expects record %d next, want 401", got)
	}
}

// TestRestartResumesFromItsCheckpoint: a node restarted from its
// directory resumes where it stood (it does not apply anything twice:
// the admin chain has one record per write) and catches up with writes
// made while it was down.
func TestRestartResumesFromItsCheckpoint(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("n1"), c.start("n2")
	a.apply(statetest.Bootstrap())
	for i := range 5 {
		a.apply(statetest.By(statetest.Create(statetest.Agent(fmt.Sprintf("before-%d", i), "")), statetest.BootToken, fmt.Sprintf("r-%d", i), 10))
	}
	c.caughtUp()
	b.stop()
	a.apply(statetest.By(statetest.Create(statetest.Agent("while-down", "")), statetest.BootToken, "r-down", 20))
	b = c.start("n2")
	c.same(nil)
	if _, ok := b.n.LocalState().Get(resource.Agent, "while-down"); !ok {
		t.Fatal("n2 missed the write made while it was down")
	}
	r, _ := b.audit.Verify()
	for _, ch := range r.Chains {
		if ch.Dataplane == auditstore.ControlPlane && ch.Records != 7 {
			t.Fatalf("n2's admin chain has %d records, want 7", ch.Records)
		}
	}
}

// TestCompactedWatchPositionResyncs: a node down while etcd compacts its
// watch position away resyncs on restart from one consistent read of the
// log, with nothing skipped.
func TestCompactedWatchPositionResyncs(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("n1"), c.start("n2")
	a.apply(statetest.Bootstrap())
	c.caughtUp()
	b.stop()
	prev := auditchain.Zero
	for i := range 10 {
		a.apply(statetest.By(statetest.Create(statetest.Agent(fmt.Sprintf("while-down-%d", i), "")), statetest.BootToken, fmt.Sprintf("r-%d", i), 10))
		recs := chain(t, "dp1", 10*i+1, 10*i+10, prev, 100)
		prev = recs[len(recs)-1].Hash
		a.apply(appendAudit("dp1", recs))
	}
	c.etcd.Compact(t)
	b = c.start("n2")
	c.same(nil)
	if b.audit.Next("dp1") != 101 {
		t.Fatalf("n2 expects dp1 record %d next, want 101", b.audit.Next("dp1"))
	}
}

// TestTruncatedLogResyncsFromTheSnapshot: a node whose hold was dropped
// while it was down finds the log it needs truncated (the elected node
// snapshotted and truncated), and etcd compacted: it takes a peer's audit
// store (the upload batches and admin records it missed), installs the
// snapshot and catches up, ending with the same state and chains — from a
// whole copy (a peer of an older release), and from a manifest, fetching
// the sealed segments it lacks.
func TestTruncatedLogResyncsFromTheSnapshot(t *testing.T) {
	t.Run("whole copy", func(t *testing.T) { truncatedLogResyncs(t, false) })
	t.Run("manifest", func(t *testing.T) { truncatedLogResyncs(t, true) })
}

func truncatedLogResyncs(t *testing.T, manifest bool) {
	c := newCluster(t)
	c.manifest = manifest
	if manifest {
		c.segmentSize = 4 << 10 // several sealed segments for the copy to list
	}
	a, b := c.start("n1"), c.start("n2")
	a.apply(statetest.Bootstrap())
	a.apply(statetest.By(statetest.Upsert(statetest.Node("n1")), statetest.BootToken, "r-n1", 1))
	a.apply(statetest.By(statetest.Upsert(statetest.Node("n2")), statetest.BootToken, "r-n2", 1))
	c.caughtUp()
	b.stop()
	ctx := context.Background()
	if err := a.n.Release(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	prev := auditchain.Zero
	for i := range 5 {
		a.apply(statetest.By(statetest.Create(statetest.Agent(fmt.Sprintf("while-down-%d", i), "")), statetest.BootToken, fmt.Sprintf("r-%d", i), 10))
		recs := chain(t, "dp1", 10*i+1, 10*i+10, prev, 100)
		prev = recs[len(recs)-1].Hash
		a.apply(appendAudit("dp1", recs))
	}
	// n1's own hold must pass the writes before the log can be truncated.
	pollUntil(t, "n1 checkpoints past the writes", func() error {
		if err := a.n.Compact(ctx); err != nil {
			return err
		}
		keys, err := c.etcd.Client(t).Get(ctx, c.prefix+"/log/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if keys.Count != 0 {
			return fmt.Errorf("%d log entries left", keys.Count)
		}
		return nil
	})
	c.etcd.Compact(t)
	b = c.start("n2")
	a.apply(statetest.By(statetest.Create(statetest.Agent("after", "")), statetest.BootToken, "r-after", 30))
	c.same(nil)
	if b.audit.Next("dp1") != 51 {
		t.Fatalf("n2 expects dp1 record %d next, want 51", b.audit.Next("dp1"))
	}
	if n := c.fetched.Load(); manifest == (n == 0) {
		t.Fatalf("manifest copy %t fetched %d sealed segments", manifest, n)
	}
}

// TestRestoreStartsTheNextEpochOnEveryNode: a restore entry installs the
// backup with the epoch after the current one on every node, a restore
// of another cluster's backup is refused, and writes after it carry on
// with growing indices.
func TestRestoreStartsTheNextEpochOnEveryNode(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("n1"), c.start("n2")
	a.apply(statetest.Bootstrap())
	a.apply(statetest.By(statetest.Create(statetest.Agent("in-backup", "")), statetest.BootToken, "r-1", 10))
	backup := statetest.Snapshot(t, a.n.LocalState())
	a.apply(statetest.By(statetest.Create(statetest.Agent("after-backup", "")), statetest.BootToken, "r-2", 11))
	before := a.n.LocalState().Index()
	ctx := context.Background()
	if err := b.n.Restore(ctx, backup); err != nil {
		t.Fatal(err)
	}
	c.same(nil)
	st := a.n.LocalState()
	if _, ok := st.Get(resource.Agent, "after-backup"); ok || st.Epoch() != 2 {
		t.Fatalf("after the restore: epoch %d, after-backup present %t", st.Epoch(), ok)
	}
	res := a.apply(statetest.By(statetest.Create(statetest.Agent("after-restore", "")), statetest.BootToken, "r-3", 12))
	if res.GetIndex() <= before {
		t.Fatalf("a write after the restore has index %d, not past %d", res.GetIndex(), before)
	}
	other := state.New()
	boot := statetest.Bootstrap()
	boot.GetBootstrap().Identity.ClusterId = "another-cluster"
	other, _ = state.Apply(other, 1, boot)
	err := a.n.Restore(ctx, statetest.Snapshot(t, other))
	if err == nil || !strings.Contains(err.Error(), "belongs to cluster") {
		t.Fatalf("restoring another cluster's backup: %v", err)
	}
	if err := b.n.Restore(ctx, backup); err != nil {
		t.Fatal(err)
	}
	c.same(nil)
	if e := b.n.LocalState().Epoch(); e != 3 {
		t.Fatalf("after the second restore: epoch %d, want 3", e)
	}
}

// TestElectionHandsOver: one node leads at a time; when it shuts down
// another takes over.
func TestElectionHandsOver(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("n1"), c.start("n2")
	var leader, other *node
	pollUntil(t, "one leader", func() error {
		switch {
		case a.n.IsLeader() && !b.n.IsLeader():
			leader, other = a, b
		case b.n.IsLeader() && !a.n.IsLeader():
			leader, other = b, a
		default:
			return errors.New("not exactly one")
		}
		if id, _ := other.n.Leader(); id != leader.id {
			return fmt.Errorf("%s names %q", other.id, id)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	terms := 0
	go func() {
		for ctx.Err() == nil {
			term, err := other.n.Lead(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			terms++
			mu.Unlock()
			<-term.Done()
		}
	}()
	leader.stop()
	pollUntil(t, "the other node leads", func() error {
		mu.Lock()
		defer mu.Unlock()
		if terms == 0 || !other.n.IsLeader() {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestAnEntryItCannotApplyStopsTheNode: an entry that is not one this
// version knows stops every node with an error saying so; none skips it.
func TestAnEntryItCannotApplyStopsTheNode(t *testing.T) {
	c := newCluster(t)
	a := c.start("n1")
	a.apply(statetest.Bootstrap())
	cli := c.etcd.Client(t)
	ctx := context.Background()
	if _, err := cli.Put(ctx, c.prefix+"/log/garbage", "\xff\xff"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.n.Err():
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not stop")
	}
	if err := a.n.Fatal(); err == nil || !strings.Contains(err.Error(), "does not decode") {
		t.Fatalf("stopped with %v", err)
	}
	if _, err := a.n.Apply(ctx, statetest.Touch()); err == nil {
		t.Fatal("a stopped node accepted a write")
	}
}

func pollUntil(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a settle wait
	}
}

// TestVersionGates: a write that needs a cluster version above what this
// binary supports is refused before it enters the log; one that got into
// etcd anyway (written by a newer binary) stops the node with an error
// that says to upgrade, rather than being skipped.
func TestVersionGates(t *testing.T) {
	c := newCluster(t)
	a := c.start("n1")
	a.apply(statetest.Bootstrap())
	ctx := context.Background()
	stamped := statetest.By(statetest.Create(statetest.Agent("from-the-future", "")), statetest.BootToken, "r-future", 10)
	stamped.ClusterVersion = uint32(clusterversion.Current() + 1)
	res, err := a.n.Apply(ctx, stamped)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION || !strings.Contains(res.GetError().GetMessage(), "upgrade") {
		t.Fatalf("a write needing a newer version: %v", res.GetError())
	}
	cli := c.etcd.Client(t)
	keys, err := cli.Get(ctx, c.prefix+"/log/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if keys.Count != 1 {
		t.Fatalf("the refused write entered the log (%d entries)", keys.Count)
	}
	data, err := proto.Marshal(stamped)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := proto.Marshal(&etcdstorev1.Entry{Entry: &etcdstorev1.Entry_Command{Command: data}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, c.prefix+"/log/from-a-newer-binary", string(entry)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.n.Err():
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not stop")
	}
	if err := a.n.Fatal(); err == nil || !strings.Contains(err.Error(), "needs cluster version") {
		t.Fatalf("stopped with %v", err)
	}
	if _, ok := a.n.LocalState().Get(resource.Agent, "from-the-future"); ok {
		t.Fatal("the node applied a write it cannot apply in full")
	}
}

// TestCompactHistory: with CompactHistory, compaction also compacts etcd's
// history up to the truncation point, so the deleted log entries stop
// taking space; the nodes' watches, which start past their holds, go on.
func TestCompactHistory(t *testing.T) {
	c := newCluster(t)
	c.compactHistory = true
	a, b := c.start("n1"), c.start("n2")
	a.apply(statetest.Bootstrap())
	first := a.n.Applied()
	ctx := context.Background()
	for i := range 5 {
		a.apply(statetest.By(statetest.Create(statetest.Agent(fmt.Sprintf("a-%d", i), "")), statetest.BootToken, fmt.Sprintf("r-%d", i), 10))
	}
	cli := c.etcd.Client(t)
	pollUntil(t, "etcd's history compacted past the first write", func() error {
		if err := a.n.Compact(ctx); err != nil {
			return err
		}
		if _, err := cli.Get(ctx, c.prefix+"/head", clientv3.WithRev(first)); err == nil {
			return errors.New("revision still readable")
		}
		return nil
	})
	b.apply(statetest.By(statetest.Create(statetest.Agent("after", "")), statetest.BootToken, "r-after", 20))
	c.same(nil)
}
