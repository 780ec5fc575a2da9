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
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is an embedded etcd cluster: one member, or a few (Options).
type Server struct {
	// Endpoints are the members' client URLs.
	Endpoints []string
	cfgs      []*embed.Config
	etcds     []*embed.Etcd
}

// Options shape a Server. The zero value is one member without fsync.
type Options struct {
	// Members is the number of members (default 1).
	Members int
	// Fsync makes the members fsync as a production etcd does (for
	// benchmarks; tests need not survive a power cut).
	Fsync bool
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
func New(dir string) (*Server, error) { return NewWith(dir, Options{}) }

// NewWith starts an etcd cluster shaped by o with its data under dir.
func NewWith(dir string, o Options) (*Server, error) {
	n := max(o.Members, 1)
	s := &Server{}
	var initial []string
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i+1)
		cfg.Dir = fmt.Sprintf("%s/%s", dir, cfg.Name)
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
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfg.UnsafeNoFsync = !o.Fsync
		cfg.TickMs, cfg.ElectionMs = 10, 100
		cfg.InitialClusterToken = "etcdtest"
		initial = append(initial, cfg.Name+"="+peer.String())
		s.cfgs = append(s.cfgs, cfg)
		s.Endpoints = append(s.Endpoints, client.String())
	}
	for _, cfg := range s.cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
	}
	if err := s.start(); err != nil {
		s.Stop()
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

// start starts every member (they wait for each other's votes, so they
// start together) and waits until all are ready.
func (s *Server) start() error {
	s.etcds = nil
	for _, cfg := range s.cfgs {
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			return fmt.Errorf("start etcd: %w", err)
		}
		s.etcds = append(s.etcds, e)
	}
	for _, e := range s.etcds {
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(30 * time.Second):
			return fmt.Errorf("etcd did not become ready within 30s")
		}
	}
	// The next start is a restart of the same members.
	for _, cfg := range s.cfgs {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	return nil
}

// Stop stops every member (their data stays). Stopping a stopped cluster
// does nothing.
func (s *Server) Stop() {
	for _, e := range s.etcds {
		e.Close()
	}
	s.etcds = nil
}

// Restart starts the stopped members again from their data.
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

// String names the cluster.
func (s *Server) String() string { return fmt.Sprintf("etcd at %v", s.Endpoints) }
