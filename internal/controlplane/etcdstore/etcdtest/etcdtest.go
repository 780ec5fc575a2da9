// Package etcdtest runs a real etcd member in-process for tests: the
// embed package of the pinned go.etcd.io/etcd/server/v3, one member on
// loopback ports, its data in the test's temporary directory. The member
// can be stopped and started again (a member down), and compacted (a
// watch position lost).
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one embedded etcd member.
type Server struct {
	// Endpoints are its client URLs.
	Endpoints []string
	cfg       *embed.Config
	etcd      *embed.Etcd
}

// Start starts a one-member etcd cluster for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// New starts a one-member etcd cluster with its data in dir, for a whole
// test binary (TestMain); Stop stops it.
func New(dir string) (*Server, error) {
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = dir
	client, err := freeURL()
	if err != nil {
		return nil, err
	}
	peer, err := freeURL()
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true // a test's etcd need not survive a power cut
	cfg.TickMs, cfg.ElectionMs = 10, 100
	s := &Server{Endpoints: []string{client.String()}, cfg: cfg}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func freeURL() (url.URL, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer ln.Close()
	return url.URL{Scheme: "http", Host: ln.Addr().String()}, nil
}

func (s *Server) start() error {
	e, err := embed.StartEtcd(s.cfg)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcd did not become ready within 30s")
	}
	s.etcd = e
	// The next start is a restart of the same member.
	s.cfg.ClusterState = embed.ClusterStateFlagExisting
	return nil
}

// Stop stops the member (its data stays). Stopping a stopped member does
// nothing.
func (s *Server) Stop() {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
}

// Restart starts the stopped member again from its data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Client returns a client of the member, closed when t ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Compact compacts the member's history up to its current revision, as
// etcd's auto-compaction would, and returns that revision: a watch from
// any earlier revision fails with "compacted" from now on.
func (s *Server) Compact(t testing.TB) int64 {
	t.Helper()
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatalf("read the revision: %v", err)
	}
	rev := resp.Header.Revision
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact etcd at %d: %v", rev, err)
	}
	return rev
}

// String names the member.
func (s *Server) String() string { return fmt.Sprintf("etcd at %v", s.Endpoints) }
