package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/etcdstore/etcdtest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	"github.com/portcullis-gw/portcullis/internal/controlplane/singleton"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// sharedEtcd is the etcd member the tests on the etcd store share, each
// cluster under its own prefix; started by the first test that needs it.
var sharedEtcd struct {
	once sync.Once
	srv  *etcdtest.Server
	dir  string
	err  error
}

func etcdEndpoints(t *testing.T) []string {
	t.Helper()
	sharedEtcd.once.Do(func() {
		if sharedEtcd.dir, sharedEtcd.err = os.MkdirTemp("", "server-test-etcd-"); sharedEtcd.err == nil {
			sharedEtcd.srv, sharedEtcd.err = etcdtest.New(sharedEtcd.dir)
		}
	})
	if sharedEtcd.err != nil {
		t.Fatalf("start etcd: %v", sharedEtcd.err)
	}
	return sharedEtcd.srv.Endpoints
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEtcd.srv != nil {
		sharedEtcd.srv.Stop()
	}
	if sharedEtcd.dir != "" {
		_ = os.RemoveAll(sharedEtcd.dir)
	}
	if code == 0 {
		if err := goleak.Find(
			// hashicorp/raft's network transport leaves a short-lived goroutine
			// per pooled connection that exits once the peer closes it.
			goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*NetworkTransport).listen"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testNode is one in-process control-plane node.
type testNode struct {
	cfg server.Config
	srv *server.Server
}

type testCluster struct {
	t *testing.T
	// store is the store the nodes run on (server.StoreRaft or StoreEtcd).
	store string
	// prefix is the cluster's etcd prefix.
	prefix string
	// jobs, when set, gives each node a singleton job.
	jobs func(node string) singleton.Job
	// auditSegmentSize is the nodes' audit segment size (0: the default).
	auditSegmentSize int64
	// timing, when set, is the nodes' Raft timing (default fastTiming).
	timing raftstore.Timing
	// infoLogs logs from level info on (default: warn).
	infoLogs bool
	// logs, when set, receives every node's log as well.
	logs  *syncBuffer
	kek   string
	nodes map[string]*testNode
	token string
	ca    []byte
	fp    string
}

// fastEtcdTiming checkpoints and compacts often, so the tests see the log
// truncated and the election hand over quickly.
var fastEtcdTiming = etcdstore.Timing{
	SessionTTL:       time.Second,
	Checkpoint:       100 * time.Millisecond,
	StateCheckpoint:  200 * time.Millisecond,
	SnapshotInterval: 200 * time.Millisecond,
}

var fastTiming = raftstore.Timing{
	HeartbeatTimeout:   150 * time.Millisecond,
	ElectionTimeout:    150 * time.Millisecond,
	LeaderLeaseTimeout: 100 * time.Millisecond,
	CommitTimeout:      5 * time.Millisecond,
	SnapshotThreshold:  32,
	TrailingLogs:       8,
	SnapshotInterval:   200 * time.Millisecond,
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// syncBuffer collects log lines for a test to search.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newCluster returns an empty cluster of nodes on Raft.
func newCluster(t *testing.T) *testCluster { return newClusterOn(t, server.StoreRaft) }

// newClusterOn returns an empty cluster of nodes on store.
func newClusterOn(t *testing.T, store string) *testCluster {
	t.Helper()
	kek := filepath.Join(t.TempDir(), "kek")
	if err := seal.GenerateKeyFile(kek); err != nil {
		t.Fatal(err)
	}
	return &testCluster{t: t, store: store, prefix: "/" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), kek: kek, nodes: map[string]*testNode{}}
}

// onEveryStore runs test once on Raft and once on etcd, as subtests: the
// store's guarantees are the same, so its tests are too.
func onEveryStore(t *testing.T, test func(t *testing.T, c *testCluster)) {
	for _, store := range []string{server.StoreRaft, server.StoreEtcd} {
		t.Run(store, func(t *testing.T) { test(t, newClusterOn(t, store)) })
	}
}

func (c *testCluster) config(id string) server.Config {
	cfg := server.Config{
		NodeID: id, DataDir: filepath.Join(c.t.TempDir(), id),
		RaftAddr: cptest.FreeAddr(c.t), APIAddr: cptest.FreeAddr(c.t),
		KEKFile: c.kek, Timing: fastTiming, Logger: c.logger(), LeaseDuration: time.Second,
		AuditSegmentSize: c.auditSegmentSize,
	}
	if c.timing != (raftstore.Timing{}) {
		cfg.Timing = c.timing
	}
	if c.jobs != nil {
		cfg.Singletons = []singleton.Job{c.jobs(id)}
	}
	if c.store == server.StoreEtcd {
		cfg.Store = server.StoreEtcd
		cfg.Etcd = server.EtcdConfig{Endpoints: etcdEndpoints(c.t), Prefix: c.prefix, Timing: fastEtcdTiming}
	}
	return cfg
}

func (c *testCluster) logger() *slog.Logger {
	if c.logs == nil {
		return testLogger(c.t)
	}
	level := slog.LevelWarn
	if c.infoLogs {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(io.MultiWriter(tWriter{c.t}, c.logs), &slog.HandlerOptions{Level: level}))
}

func (c *testCluster) start(cfg server.Config) *testNode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	n := &testNode{cfg: cfg, srv: srv}
	c.nodes[cfg.NodeID] = n
	c.t.Cleanup(func() { n.stop() })
	return n
}

func (n *testNode) stop() {
	if n.srv != nil {
		_ = n.srv.Close()
		n.srv = nil
	}
}

// bootstrap starts n1 and then joins the others through it (on etcd the
// others need no join: they find the cluster under the prefix).
func (c *testCluster) bootstrap(ids ...string) {
	c.t.Helper()
	cfg := c.config(ids[0])
	cfg.Bootstrap = true
	n1 := c.start(cfg)
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminTokenFile))
	if err != nil {
		c.t.Fatal(err)
	}
	c.token = strings.TrimSpace(string(tok))
	if c.ca, err = os.ReadFile(filepath.Join(cfg.DataDir, "tls", server.CACertFile)); err != nil {
		c.t.Fatal(err)
	}
	st, err := c.client(n1).cluster.GetClusterStatus(context.Background(), c.req(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		c.t.Fatal(err)
	}
	c.fp = st.Msg.GetCaFingerprint()
	for _, id := range ids[1:] {
		cfg := c.config(id)
		if c.store != server.StoreEtcd {
			cfg.Join = "https://" + n1.cfg.APIAddr
			cfg.JoinToken = c.token
			cfg.JoinCAFingerprint = c.fp
		}
		c.start(cfg)
	}
	c.waitVoters(len(ids))
}

type clients struct {
	agents  adminv1connect.AgentServiceClient
	cluster adminv1connect.ClusterServiceClient
}

func (c *testCluster) client(n *testNode) clients {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	url := "https://" + n.cfg.APIAddr
	return clients{
		agents:  adminv1connect.NewAgentServiceClient(hc, url),
		cluster: adminv1connect.NewClusterServiceClient(hc, url),
	}
}

func req[T any](token string, m *T, headers ...string) *connect.Request[T] {
	r := connect.NewRequest(m)
	r.Header().Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header().Set(headers[i], headers[i+1])
	}
	return r
}

func (c *testCluster) req(m *adminv1.GetClusterStatusRequest) *connect.Request[adminv1.GetClusterStatusRequest] {
	return req(c.token, m)
}

// eventually retries fn until it returns nil or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a settle wait
	}
	t.Fatalf("%s: not within %s: %v", what, d, err)
}

func (c *testCluster) waitVoters(n int) {
	c.t.Helper()
	for _, node := range c.nodes {
		if node.srv == nil {
			continue
		}
		eventually(c.t, 20*time.Second, node.cfg.NodeID+" sees the cluster", func() error {
			st, err := c.client(node).cluster.GetClusterStatus(context.Background(), c.req(&adminv1.GetClusterStatusRequest{}))
			if err != nil {
				return err
			}
			voters := 0
			for _, m := range st.Msg.GetMembers() {
				if m.GetSuffrage() == "voter" {
					voters++
				}
			}
			if voters != n || st.Msg.GetLeaderId() == "" {
				return fmt.Errorf("%d voters, leader %q", voters, st.Msg.GetLeaderId())
			}
			return nil
		})
	}
}

func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var found *testNode
	eventually(c.t, 20*time.Second, "a leader", func() error {
		for _, n := range c.nodes {
			if n.srv != nil && n.srv.IsLeader() {
				found = n
				return nil
			}
		}
		return errors.New("no leader")
	})
	return found
}

func (c *testCluster) follower() *testNode {
	l := c.leader()
	for _, n := range c.nodes {
		if n != l && n.srv != nil {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func (c *testCluster) createAgent(n *testNode, name string) *configv1.Agent {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := c.client(n).agents.CreateAgent(ctx, req(c.token, &adminv1.CreateAgentRequest{Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}}}))
	if err != nil {
		c.t.Fatalf("create agent %s on %s: %v", name, n.cfg.NodeID, err)
	}
	return res.Msg.GetAgent()
}

// hasAgents waits until node n's local state holds every named agent.
func (c *testCluster) hasAgents(n *testNode, names ...string) {
	c.t.Helper()
	eventually(c.t, 20*time.Second, n.cfg.NodeID+" has the agents", func() error {
		for _, name := range names {
			if _, err := c.client(n).agents.GetAgent(context.Background(), req(c.token, &adminv1.GetAgentRequest{Name: name})); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
}

// TestFollowerForwardsWrites: a write through a node that is not the
// leader (forwarded on Raft; on etcd every node appends itself) reaches
// every node, and a linearizable read on one node sees a write just
// acknowledged through another.
func TestFollowerForwardsWrites(t *testing.T) {
	onEveryStore(t, func(t *testing.T, c *testCluster) {
		c.bootstrap("n1", "n2", "n3")
		f := c.follower()
		a := c.createAgent(f, "via-follower")
		if a.GetMeta().GetRevision() == 0 {
			t.Fatal("forwarded write has no revision")
		}
		for _, n := range c.nodes {
			c.hasAgents(n, "via-follower")
		}
		other := c.leader()
		c.createAgent(other, "read-your-write")
		if _, err := c.client(f).agents.GetAgent(context.Background(), req(c.token, &adminv1.GetAgentRequest{Name: "read-your-write"}, "Portcullis-Consistency", "linearizable")); err != nil {
			t.Fatalf("linearizable read on follower missed an acknowledged write: %v", err)
		}
	})
}

func TestLeaderKillElectsNewLeaderAndWritesContinue(t *testing.T) {
	onEveryStore(t, func(t *testing.T, c *testCluster) {
		c.bootstrap("n1", "n2", "n3")
		old := c.leader()
		c.createAgent(old, "before-kill")
		killed := time.Now()
		old.stop()
		var nl *testNode
		eventually(t, 10*time.Second, "new leader", func() error {
			for _, n := range c.nodes {
				if n.srv != nil && n.srv.IsLeader() {
					nl = n
					return nil
				}
			}
			return errors.New("none yet")
		})
		t.Logf("new leader %s after %s", nl.cfg.NodeID, time.Since(killed))
		for _, n := range c.nodes {
			if n.srv != nil {
				c.createAgent(n, "after-kill-via-"+n.cfg.NodeID)
			}
		}
		for _, n := range c.nodes {
			if n.srv != nil {
				c.hasAgents(n, "before-kill", "after-kill-via-"+nl.cfg.NodeID)
			}
		}
	})
}

func TestRestartFromDataDirKeepsState(t *testing.T) {
	onEveryStore(t, func(t *testing.T, c *testCluster) {
		c.bootstrap("n1", "n2", "n3")
		for i := range 5 {
			c.createAgent(c.leader(), fmt.Sprintf("keep-%d", i))
		}
		f := c.follower()
		f.stop()
		c.createAgent(c.leader(), "while-down")
		cfg := f.cfg
		cfg.Bootstrap, cfg.Join = false, ""
		n := c.start(cfg)
		c.hasAgents(n, "keep-0", "keep-1", "keep-2", "keep-3", "keep-4", "while-down")

		// Whole cluster restart: every node comes back from its data dir alone.
		for _, n := range c.nodes {
			n.stop()
		}
		for id, n := range c.nodes {
			cfg := n.cfg
			cfg.Bootstrap, cfg.Join = false, ""
			c.nodes[id] = c.start(cfg)
		}
		c.waitVoters(3)
		for _, n := range c.nodes {
			c.hasAgents(n, "keep-0", "keep-4", "while-down")
		}
	})
}

// TestRemovedNodeRejoinsFromSnapshot: a node removed and stopped misses
// enough writes that the log it needs is gone (Raft compacted it behind a
// snapshot; on etcd the elected node truncated it and etcd compacted its
// history); added back and restarted, it catches up from a snapshot.
func TestRemovedNodeRejoinsFromSnapshot(t *testing.T) {
	onEveryStore(t, func(t *testing.T, c *testCluster) {
		c.logs, c.infoLogs = &syncBuffer{}, true
		c.bootstrap("n1", "n2", "n3")
		f := c.follower()
		ctx := context.Background()
		l := c.leader()
		if _, err := c.client(l).cluster.RemoveNode(ctx, req(c.token, &adminv1.RemoveNodeRequest{NodeId: f.cfg.NodeID})); err != nil {
			t.Fatalf("remove: %v", err)
		}
		f.stop()
		// Enough writes that the leader snapshots and compacts its log past
		// what the removed node has (threshold 32, trailing 8).
		var names []string
		for i := range 60 {
			name := fmt.Sprintf("while-removed-%02d", i)
			c.createAgent(c.leader(), name)
			names = append(names, name)
		}
		if c.store == server.StoreEtcd {
			c.awaitTruncated(f)
		}
		raftAddr := f.cfg.RaftAddr
		if c.store == server.StoreEtcd {
			raftAddr = "" // a node on etcd has no Raft transport
		}
		if _, err := c.client(c.leader()).cluster.AddNode(ctx, req(c.token, &adminv1.AddNodeRequest{
			NodeId: f.cfg.NodeID, RaftAddr: raftAddr, ApiAddr: f.cfg.APIAddr,
		})); err != nil {
			t.Fatalf("re-add: %v", err)
		}
		cfg := f.cfg
		cfg.Bootstrap, cfg.Join = false, ""
		f = c.start(cfg)
		c.hasAgents(f, names...)
		c.waitVoters(3)
		if c.store == server.StoreEtcd {
			// The node took a peer's audit store over the peer API as a
			// manifest, not as a whole copy.
			logs := c.logs.String()
			if !regexp.MustCompile(`msg="audit store copied to a peer".* manifest=true`).MatchString(logs) ||
				!strings.Contains(logs, `msg="audit store restored from a snapshot's segment list"`) {
				t.Errorf("no manifest copy of the audit store in the logs:\n%s", logs)
			}
		}
	})
}

// awaitTruncated waits until the etcd log holds none of the entries a
// stopped node would need, then compacts etcd's history, so the node can
// come back only through the snapshot.
func (c *testCluster) awaitTruncated(stopped *testNode) {
	c.t.Helper()
	var running *testNode
	for _, n := range c.nodes {
		if n.srv != nil {
			running = n
		}
	}
	cli := running.srv.EtcdNode().Client()
	last := c.lastApplied(stopped)
	eventually(c.t, 20*time.Second, "the log truncated past "+stopped.cfg.NodeID, func() error {
		resp, err := cli.Get(context.Background(), c.prefix+"/truncated")
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return errors.New("not truncated yet")
		}
		var trunc int64
		if _, err := fmt.Sscan(string(resp.Kvs[0].Value), &trunc); err != nil || trunc <= last {
			return fmt.Errorf("truncated to %s, the stopped node stands at %d", resp.Kvs[0].Value, last)
		}
		return nil
	})
	sharedEtcd.srv.Compact(c.t)
}

// lastApplied is the revision a stopped node on etcd resumes from (its
// checkpoint's position).
func (c *testCluster) lastApplied(n *testNode) int64 {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, "etcd", "position.json"))
	if err == nil {
		var p struct{ Position int64 }
		if json.Unmarshal(b, &p) == nil && p.Position > 0 {
			return p.Position
		}
	}
	f, err := os.Open(filepath.Join(n.cfg.DataDir, "etcd", "state.ckpt"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 12)
	if _, err := io.ReadFull(f, hdr); err != nil {
		c.t.Fatal(err)
	}
	hb := make([]byte, binary.LittleEndian.Uint32(hdr[8:]))
	if _, err := io.ReadFull(f, hb); err != nil {
		c.t.Fatal(err)
	}
	var h struct{ Revision int64 }
	if err := json.Unmarshal(hb, &h); err != nil {
		c.t.Fatal(err)
	}
	return h.Revision
}

// TestRestoreStartsTheSameEpochOnEveryNode: a restore installs the backup
// with the next epoch on every node (Raft's followers install the stream
// the leader sends; on etcd every node applies the restore entry from the
// same state), the epoch survives a whole-cluster restart, and a second
// restore moves every node to the epoch after.
func TestRestoreStartsTheSameEpochOnEveryNode(t *testing.T) {
	onEveryStore(t, func(t *testing.T, c *testCluster) {
		c.bootstrap("n1", "n2", "n3")
		c.createAgent(c.leader(), "in-backup")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := c.leader().srv.Store().State(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		var backup bytes.Buffer
		if _, err := st.WriteTo(&backup); err != nil {
			t.Fatal(err)
		}
		c.createAgent(c.leader(), "after-backup")
		everyNodeAt := func(epoch uint64) {
			t.Helper()
			for id, n := range c.nodes {
				eventually(t, 20*time.Second, fmt.Sprintf("%s in epoch %d", id, epoch), func() error {
					st, err := n.srv.Store().State(ctx, false)
					if err != nil {
						return err
					}
					if _, ok := st.Get(resource.Agent, "after-backup"); ok || st.Epoch() != epoch {
						return fmt.Errorf("epoch %d, after-backup present %t", st.Epoch(), ok)
					}
					return nil
				})
			}
		}
		// A restore is addressed to the leader; an election between finding
		// it and restoring (this machine is often loaded) refuses it with
		// ErrNotLeader before anything is applied, so ask the new leader.
		restore := func() {
			t.Helper()
			eventually(t, 30*time.Second, "a restore the leader accepts", func() error {
				err := c.leader().srv.Restore(ctx, backup.Bytes())
				if err != nil && !errors.Is(err, store.ErrNotLeader) {
					t.Fatal(err)
				}
				return err
			})
		}
		restore()
		everyNodeAt(2)

		for _, n := range c.nodes {
			n.stop()
		}
		for id, n := range c.nodes {
			cfg := n.cfg
			cfg.Bootstrap, cfg.Join = false, ""
			c.nodes[id] = c.start(cfg)
		}
		c.waitVoters(3)
		everyNodeAt(2)

		restore()
		everyNodeAt(3)
	})
}
