package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// hashicorp/raft's network transport leaves a short-lived goroutine
		// per pooled connection that exits once the peer closes it.
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*NetworkTransport).listen"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// testNode is one in-process control-plane node.
type testNode struct {
	cfg server.Config
	srv *server.Server
}

type testCluster struct {
	t *testing.T
	// logs, when set, receives every node's log as well.
	logs  *syncBuffer
	kek   string
	nodes map[string]*testNode
	token string
	ca    []byte
	fp    string
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

func newCluster(t *testing.T) *testCluster {
	t.Helper()
	kek := filepath.Join(t.TempDir(), "kek")
	if err := seal.GenerateKeyFile(kek); err != nil {
		t.Fatal(err)
	}
	return &testCluster{t: t, kek: kek, nodes: map[string]*testNode{}}
}

func (c *testCluster) config(id string) server.Config {
	return server.Config{
		NodeID: id, DataDir: filepath.Join(c.t.TempDir(), id),
		RaftAddr: cptest.FreeAddr(c.t), APIAddr: cptest.FreeAddr(c.t),
		KEKFile: c.kek, Timing: fastTiming, Logger: c.logger(),
	}
}

func (c *testCluster) logger() *slog.Logger {
	if c.logs == nil {
		return testLogger(c.t)
	}
	return slog.New(slog.NewTextHandler(io.MultiWriter(tWriter{c.t}, c.logs), &slog.HandlerOptions{Level: slog.LevelWarn}))
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

// bootstrap starts n1 and then joins the others through it.
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
		cfg.Join = "https://" + n1.cfg.APIAddr
		cfg.JoinToken = c.token
		cfg.JoinCAFingerprint = c.fp
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
			if n.srv != nil && n.srv.Node().IsLeader() {
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

func TestFollowerForwardsWrites(t *testing.T) {
	c := newCluster(t)
	c.bootstrap("n1", "n2", "n3")
	f := c.follower()
	a := c.createAgent(f, "via-follower")
	if a.GetMeta().GetRevision() == 0 {
		t.Fatal("forwarded write has no revision")
	}
	for _, n := range c.nodes {
		c.hasAgents(n, "via-follower")
	}
	// A linearizable read on a follower sees a write made through another
	// node as soon as it was acknowledged.
	other := c.leader()
	c.createAgent(other, "read-your-write")
	if _, err := c.client(f).agents.GetAgent(context.Background(), req(c.token, &adminv1.GetAgentRequest{Name: "read-your-write"}, "Portcullis-Consistency", "linearizable")); err != nil {
		t.Fatalf("linearizable read on follower missed an acknowledged write: %v", err)
	}
}

func TestLeaderKillElectsNewLeaderAndWritesContinue(t *testing.T) {
	c := newCluster(t)
	c.bootstrap("n1", "n2", "n3")
	old := c.leader()
	c.createAgent(old, "before-kill")
	killed := time.Now()
	old.stop()
	var nl *testNode
	eventually(t, 5*time.Second, "new leader", func() error {
		for _, n := range c.nodes {
			if n.srv != nil && n.srv.Node().IsLeader() {
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
}

func TestRestartFromDataDirKeepsState(t *testing.T) {
	c := newCluster(t)
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
}

func TestRemovedNodeRejoinsFromSnapshot(t *testing.T) {
	c := newCluster(t)
	c.bootstrap("n1", "n2", "n3")
	f := c.follower()
	ctx := context.Background()
	l := c.leader()
	if _, err := c.client(l).cluster.RemoveNode(ctx, req(c.token, &adminv1.RemoveNodeRequest{NodeId: f.cfg.NodeID})); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// Enough writes that the leader snapshots and compacts its log past
	// what the removed node has (threshold 32, trailing 8).
	var names []string
	for i := range 60 {
		name := fmt.Sprintf("while-removed-%02d", i)
		c.createAgent(c.leader(), name)
		names = append(names, name)
	}
	if _, err := c.client(c.leader()).cluster.AddNode(ctx, req(c.token, &adminv1.AddNodeRequest{
		NodeId: f.cfg.NodeID, RaftAddr: f.cfg.RaftAddr, ApiAddr: f.cfg.APIAddr,
	})); err != nil {
		t.Fatalf("re-add: %v", err)
	}
	c.hasAgents(f, names...)
	c.waitVoters(3)
}

// TestRestoreStartsTheSameEpochOnEveryNode: a restore installs the backup
// with the next epoch on the leader and every follower (they install the
// same stream), the epoch survives a whole-cluster restart, and a second
// restore moves every node to the epoch after.
func TestRestoreStartsTheSameEpochOnEveryNode(t *testing.T) {
	c := newCluster(t)
	c.bootstrap("n1", "n2", "n3")
	c.createAgent(c.leader(), "in-backup")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.leader().srv.Node().State(ctx, true)
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
				st, err := n.srv.Node().State(ctx, false)
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
	if err := c.leader().srv.Node().RestoreLocal(ctx, backup.Bytes()); err != nil {
		t.Fatal(err)
	}
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

	if err := c.leader().srv.Node().RestoreLocal(ctx, backup.Bytes()); err != nil {
		t.Fatal(err)
	}
	everyNodeAt(3)
}
