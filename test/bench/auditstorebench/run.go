package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/peer"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// result is what was measured at one size.
type result struct {
	records    int
	fill       time.Duration
	encoded    int64 // bytes of the records, encoded
	storeBytes int64 // bytes of the store's segments
	segments   int

	snapTake, snapPersist time.Duration
	snapBytes             int64

	warm, cold startTimes

	follower       time.Duration
	followerScaled bool  // scaled from a smaller size, not measured
	followerFetch  int64 // bytes the empty follower fetched from the peer

	// lagging is the catch-up of a follower that holds every sealed
	// segment but the newest laggingBehind ones (manifest format only).
	lagging      time.Duration
	laggingFetch int64
}

// startTimes is a node start: the audit store's Open, then raftstore.Open
// (raft.NewRaft restores the latest snapshot into the state machine).
type startTimes struct {
	open, raft time.Duration
}

func (s startTimes) total() time.Duration { return s.open + s.raft }

func run(cfg config) error {
	started := time.Now()
	base := cfg.dir
	if base == "" {
		d, err := os.MkdirTemp("", "auditstorebench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		base = d
	}
	var results []result
	for _, n := range cfg.sizes {
		dir := filepath.Join(base, fmt.Sprintf("n%d", n))
		r, err := measure(dir, n, n <= cfg.followerMax, cfg.legacy)
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("%d records: %w", n, err)
		}
		results = append(results, r)
	}
	scaleFollower(results)
	report := render(results, time.Since(started), cfg.legacy)
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(cfg.out, []byte(report), 0o644)
	}
	return nil
}

// Where a node keeps its data, as cmd/controlplane lays it out.
const (
	nodeID     = "n1"
	snapIndex  = 1000 // the snapshot's Raft index and term: any will do
	snapTerm   = 1
	auditDir   = "audit"
	raftSubdir = "raft"
)

// measure fills a store at dir with n records and measures the snapshot,
// the node's start (warm, then cold) and, when follower is set, an empty
// follower's catch-up; in the manifest format also a lagging follower's.
// legacy writes snapshots in the format before cluster version 8 (every
// segment's bytes).
func measure(dir string, n int, follower, legacy bool) (result, error) {
	r := result{records: n}
	node := filepath.Join(dir, "node")
	log := slog.New(slog.DiscardHandler)
	progress := func(what string) { fmt.Fprintf(os.Stderr, "auditstorebench: %d records: %s …\n", n, what) }

	progress("filling the store")
	s, err := auditstore.Open(auditstore.Options{Dir: filepath.Join(node, auditDir), Retention: -1, SegmentSize: segmentSize, Logger: log})
	if err != nil {
		return r, err
	}
	t := time.Now()
	r.encoded, err = fill(s, n)
	r.fill = time.Since(t)
	if err != nil {
		s.Close()
		return r, err
	}
	want := map[string]uint64{}
	for i := range fillDataplanes {
		name := fmt.Sprintf("dp-%d", i+1)
		want[name] = s.Next(name)
	}

	progress("taking a Raft snapshot")
	fsm := raftstore.NewFSM(s)
	if err := recordNode(fsm, legacy); err != nil {
		s.Close()
		return r, err
	}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(node, raftSubdir), 3, io.Discard)
	if err != nil {
		s.Close()
		return r, err
	}
	addr, trans := raft.NewInmemTransport("127.0.0.1:1")
	defer trans.Close()
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: nodeID, Address: addr}}}
	t = time.Now()
	snap, err := fsm.Snapshot()
	r.snapTake = time.Since(t)
	if err != nil {
		s.Close()
		return r, err
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, snapIndex, snapTerm, conf, 1, trans)
	if err != nil {
		snap.Release()
		s.Close()
		return r, err
	}
	t = time.Now()
	err = snap.Persist(sink) // closes the sink: fsync and rename
	r.snapPersist = time.Since(t)
	snap.Release()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return r, err
	}
	metas, err := snaps.List()
	if err != nil {
		return r, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) != 1 {
		return r, fmt.Errorf("list snapshots: %d snapshots, want the one just taken", len(metas))
	}
	r.snapBytes = metas[0].Size
	if r.storeBytes, r.segments, err = segments(filepath.Join(node, auditDir)); err != nil {
		return r, err
	}

	progress("starting the node (warm page cache)")
	if r.warm, err = start(node, want, log); err != nil {
		return r, fmt.Errorf("warm start: %w", err)
	}
	progress("starting the node (cold page cache)")
	if err := evict(node); err != nil {
		return r, err
	}
	if r.cold, err = start(node, want, log); err != nil {
		return r, fmt.Errorf("cold start: %w", err)
	}

	if follower {
		progress("restoring the snapshot on an empty follower")
		if r.follower, r.followerFetch, err = catchUp(node, filepath.Join(dir, "follower"), 0, snaps, metas[0].ID, want, log); err != nil {
			return r, fmt.Errorf("follower: %w", err)
		}
	}
	if !legacy {
		progress("restoring the snapshot on a lagging follower")
		if r.lagging, r.laggingFetch, err = catchUp(node, filepath.Join(dir, "lagging"), laggingBehind, snaps, metas[0].ID, want, log); err != nil {
			return r, fmt.Errorf("lagging follower: %w", err)
		}
	}
	return r, nil
}

// segmentSize is the audit store's segment size (0: its default, 64 MiB;
// the tests make it small).
var segmentSize int64

// laggingBehind is how many of the newest sealed segments the lagging
// follower lacks.
const laggingBehind = 1

// recordNode records the node in the state machine's state at the
// cluster version whose snapshot format is measured: AuditSegments (a
// manifest) or the one before (every segment's bytes).
func recordNode(fsm *raftstore.FSM, legacy bool) error {
	v := clusterversion.AuditSegments
	if legacy {
		v = clusterversion.AuditSegments - 1
	}
	for i, cmd := range []*fsmv1.Command{
		statetest.Bootstrap(),
		statetest.By(statetest.Upsert(statetest.NodeAt(nodeID, v)), statetest.BootToken, "bench-node", 1),
	} {
		b, err := proto.Marshal(cmd)
		if err != nil {
			return err
		}
		if res, ok := fsm.Apply(&raft.Log{Index: uint64(i + 1), Data: b}).(*fsmv1.Result); !ok || res.GetError() != nil {
			return fmt.Errorf("record the node: %v", res.GetError())
		}
	}
	return nil
}

// start opens the node's audit store and its Raft node as a control plane
// starts, times both, checks that every chain stands where the fill left
// it, and shuts the node down.
func start(node string, want map[string]uint64, log *slog.Logger) (startTimes, error) {
	var st startTimes
	t := time.Now()
	s, err := auditstore.Open(auditstore.Options{Dir: filepath.Join(node, auditDir), Retention: -1, SegmentSize: segmentSize, Logger: log})
	st.open = time.Since(t)
	if err != nil {
		return st, err
	}
	defer s.Close()
	t = time.Now()
	n, err := raftstore.Open(raftstore.Config{ID: nodeID, DataDir: node, RaftBind: "127.0.0.1:0", Audit: s, Logger: log})
	st.raft = time.Since(t)
	if err != nil {
		return st, err
	}
	if err := n.Shutdown(); err != nil {
		return st, err
	}
	return st, check(s, want)
}

// catchUp restores the snapshot id into a follower's store at dir, as a
// follower does on InstallSnapshot (without the snapshot's transfer), and
// times it. The follower starts with the leader's sealed segments but the
// newest behind ones (all of them when behind is 0: an empty follower)
// and fetches the others from the leader's store at node over the peer
// API on loopback (plain HTTP: no TLS cost). It returns the bytes
// fetched.
func catchUp(node, dir string, behind int, snaps *raft.FileSnapshotStore, id string, want map[string]uint64, log *slog.Logger) (time.Duration, int64, error) {
	defer os.RemoveAll(dir)
	audit := filepath.Join(dir, auditDir)
	if behind > 0 {
		if err := linkSealed(filepath.Join(node, auditDir), audit, behind); err != nil {
			return 0, 0, err
		}
	}
	leader, err := auditstore.Open(auditstore.Options{Dir: filepath.Join(node, auditDir), Retention: -1, SegmentSize: segmentSize, Logger: log})
	if err != nil {
		return 0, 0, err
	}
	defer leader.Close()
	addr, stop, err := servePeer(leader)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	s, err := auditstore.Open(auditstore.Options{Dir: audit, Retention: -1, SegmentSize: segmentSize, Logger: log})
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	_, rc, err := snaps.Open(id)
	if err != nil {
		return 0, 0, err
	}
	counter := &countingFetcher{c: peer.NewClient(nil, benchKey)}
	fsm := raftstore.NewFSM(s)
	fsm.FetchSegmentsWith(counter, "n2", func() string { return addr })
	t := time.Now()
	err = fsm.Restore(rc) // closes rc
	d := time.Since(t)
	if err != nil {
		return d, counter.n, err
	}
	return d, counter.n, check(s, want)
}

// benchKey is the node-forward key of the benchmark's peer API.
var benchKey = []byte("auditstorebench-node-forward-key")

// servePeer serves the peer API's FetchAuditSegment from store on a
// loopback port.
func servePeer(store *auditstore.Store) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ps := peer.NewServer(nil, nil, benchKey, false, slog.New(slog.DiscardHandler))
	ps.ServeAuditSegments(store)
	mux := http.NewServeMux()
	mux.Handle(ps.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// countingFetcher counts the bytes fetched.
type countingFetcher struct {
	c *peer.Client
	n int64
}

func (f *countingFetcher) FetchAuditSegment(ctx context.Context, addr, name string, w io.Writer) error {
	return f.c.FetchAuditSegment(ctx, addr, name, writerFunc(func(p []byte) (int, error) {
		k, err := w.Write(p)
		f.n += int64(k)
		return k, err
	}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// linkSealed hard-links the leader's sealed segments and their indexes
// into dir, but the newest behind ones.
func linkSealed(from, dir string, behind int) error {
	idx, err := filepath.Glob(filepath.Join(from, "*.idx"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, p := range idx[:max(0, len(idx)-behind)] {
		seg := strings.TrimSuffix(p, ".idx") + ".seg"
		for _, f := range []string{seg, p} {
			if err := os.Link(f, filepath.Join(dir, filepath.Base(f))); err != nil {
				return err
			}
		}
	}
	return nil
}

// check fails unless every data plane's chain stands at want.
func check(s *auditstore.Store, want map[string]uint64) error {
	for dp, next := range want {
		if got := s.Next(dp); got != next {
			return fmt.Errorf("the store expects %d next from %s, want %d", got, dp, next)
		}
	}
	return nil
}

// segments sums the store's segment files.
func segments(dir string) (int64, int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return 0, 0, err
		}
		total += st.Size()
	}
	return total, len(files), nil
}

// evict writes back and drops from the page cache every file under dir
// (posix_fadvise DONTNEED), so the next start reads them from the disk as
// after a machine restart, without touching any other file's pages.
func evict(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("evict %s: %w", path, err)
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return fmt.Errorf("evict %s: %w", path, err)
		}
		return nil
	})
}

// scaleFollower fills in the follower catch-up of sizes above the largest
// size measured, in proportion to the records.
func scaleFollower(results []result) {
	var from *result
	for i := range results {
		if results[i].follower > 0 && (from == nil || results[i].records > from.records) {
			from = &results[i]
		}
	}
	if from == nil {
		return
	}
	for i := range results {
		if results[i].follower == 0 {
			results[i].follower = time.Duration(float64(from.follower) * float64(results[i].records) / float64(from.records))
			results[i].followerScaled = true
		}
	}
}

// render formats the Markdown report.
func render(results []result, elapsed time.Duration, legacy bool) string {
	var b strings.Builder
	host, _ := os.Hostname()
	format := "manifest (cluster version 8: the sealed segments' list and hashes, and the open segment)"
	if legacy {
		format = "every segment's bytes (before cluster version 8)"
	}
	fmt.Fprintf(&b, "## Control-plane audit store at volume\n\n")
	fmt.Fprintf(&b, "Setup: %s, %d CPUs, %s/%s, %s, load average %s. Snapshot format: %s. In process: an audit store filled with typical data-plane records "+
		"(an allowed MCP tools/call each, hash-chained, %d data planes, %d-record uploads); the state machine's Raft snapshot "+
		"(`FSM.Snapshot` + `Persist` into hashicorp/raft's file snapshot store, fsynced); a node's start (`auditstore.Open`, "+
		"then `raftstore.Open`, whose raft.NewRaft restores the latest snapshot), with the files in the page cache (warm: a process restart) "+
		"and dropped from it (cold: a machine restart); a new follower's catch-up (the snapshot restored into an empty store, "+
		"without the snapshot's transfer, fetching sealed segments over the peer API on loopback); and a lagging follower's "+
		"(it holds all sealed segments but the newest %d).\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().Format("2006-01-02"), loadavg(), format, fillDataplanes, fillBatch, laggingBehind)
	fmt.Fprintf(&b, "| stored records | store on disk (segments) | fill | snapshot: take | snapshot: persist | snapshot size | node start, warm (open + raft) | node start, cold (open + raft) | follower catch-up (fetched) | lagging follower (fetched) |\n")
	fmt.Fprintf(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		follower := fmt.Sprintf("%s (%s)", dur(r.follower), size(r.followerFetch))
		if r.followerScaled {
			follower = "≈ " + dur(r.follower) + " (scaled)"
		}
		lagging := "–"
		if r.lagging > 0 {
			lagging = fmt.Sprintf("%s (%s)", dur(r.lagging), size(r.laggingFetch))
		}
		fmt.Fprintf(&b, "| %s | %s (%d) | %s (%.0fk records/s) | %s | %s | %s | %s (%s + %s) | %s (%s + %s) | %s | %s |\n",
			count(r.records), size(r.storeBytes), r.segments, dur(r.fill), float64(r.records)/r.fill.Seconds()/1000,
			dur(r.snapTake), dur(r.snapPersist), size(r.snapBytes),
			dur(r.warm.total()), dur(r.warm.open), dur(r.warm.raft),
			dur(r.cold.total()), dur(r.cold.open), dur(r.cold.raft), follower, lagging)
	}
	if len(results) > 0 {
		r := results[0]
		fmt.Fprintf(&b, "\nRecords average %.0f bytes encoded, %.0f bytes per record in the segments (frames included).\n",
			float64(r.encoded)/float64(r.records), float64(r.storeBytes)/float64(r.records))
	}
	if len(results) > 1 {
		lo, hi := results[0], results[len(results)-1]
		x := float64(hi.records) / float64(lo.records)
		fmt.Fprintf(&b, "\nFrom %s to %s records (%.0f×): snapshot persist %.1f×, snapshot size %.1f×, node start %.1f× warm and %.1f× cold. "+
			"Issue 14's goal is that these stay flat as records grow.\n",
			count(lo.records), count(hi.records), x, ratio(hi.snapPersist, lo.snapPersist), float64(hi.snapBytes)/float64(lo.snapBytes),
			ratio(hi.warm.total(), lo.warm.total()), ratio(hi.cold.total(), lo.cold.total()))
	}
	fmt.Fprintf(&b, "\nThe whole run took %s; load average at the end %s.\n", elapsed.Round(time.Second), loadavg())
	return b.String()
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	default:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// loadavg is the machine's 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
