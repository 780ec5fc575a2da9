package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdCluster is an etcd cluster run by a test: real etcd member
// processes (the etcdmember program, etcd's own main built from the
// pinned module), on loopback, without TLS. Control planes reach it with
// EtcdArgs.
type EtcdCluster struct {
	Members []*EtcdMember
	t       testing.TB
}

// EtcdMember is one etcd member process. Kill, Stop and Restart act on it
// like on a control-plane node; its data dir survives them.
type EtcdMember struct {
	Name      string
	DataDir   string
	ClientURL string
	Log       *LogBuffer

	t    testing.TB
	args []string
	mu   sync.Mutex
	d    *Daemon
}

// StartEtcd starts an etcd cluster of n members and waits until every
// member reports itself healthy (the cluster has a leader).
func StartEtcd(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	start := time.Now()
	dir := t.TempDir()
	c := &EtcdCluster{t: t}
	peers := make([]string, n)
	clients := make([]string, n)
	var initial []string
	for i := range n {
		peers[i], clients[i] = "http://"+FreeAddr(t), "http://"+FreeAddr(t)
		initial = append(initial, fmt.Sprintf("m%d=%s", i+1, peers[i]))
	}
	token := fmt.Sprintf("portcullis-test-%d", time.Now().UnixNano())
	for i := range n {
		m := &EtcdMember{
			Name: fmt.Sprintf("m%d", i+1), DataDir: filepath.Join(dir, fmt.Sprintf("m%d", i+1)), ClientURL: clients[i],
			Log: NewLogBuffer(), t: t,
		}
		m.args = []string{
			"--name", m.Name, "--data-dir", m.DataDir,
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new", "--initial-cluster-token", token,
			// Short Raft timing for failover well under a second; no
			// fsync (a killed process loses nothing the OS holds).
			"--heartbeat-interval", "50", "--election-timeout", "500", "--unsafe-no-fsync",
			"--log-level", "warn",
		}
		t.Cleanup(func() {
			if t.Failed() || os.Getenv("PORTCULLIS_E2E_LOGS") == "1" {
				t.Logf("=== log of etcd member %s (%s) ===\n%s=== end of log of %s ===", m.Name, m.ClientURL, m.Log.String(), m.Name)
			}
		})
		m.start()
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.AwaitHealthy(t, StartTimeout)
	}
	t.Logf("etcd cluster of %d up in %s: %s", n, time.Since(start).Round(time.Millisecond), strings.Join(c.Endpoints(), ","))
	return c
}

func (m *EtcdMember) start() {
	m.t.Helper()
	d := StartDaemon(m.t, "etcd "+m.Name, Bin(m.t, "etcdmember"), m.args, nil, m.Log)
	m.mu.Lock()
	m.d = d
	m.mu.Unlock()
}

func (m *EtcdMember) daemon() *Daemon {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.d
}

// Running reports whether the member's process runs.
func (m *EtcdMember) Running() bool { return !m.daemon().Exited() }

// Kill kills the member with SIGKILL and waits until it is gone.
func (m *EtcdMember) Kill() {
	m.t.Logf("kill -9 etcd member %s (pid %d)", m.Name, m.daemon().Pid())
	m.daemon().Kill()
}

// Restart starts the member again from its data dir (stopping it first
// if it runs).
func (m *EtcdMember) Restart() {
	m.t.Helper()
	if m.Running() {
		if err := m.daemon().Stop(15 * time.Second); err != nil {
			m.t.Logf("restart etcd member %s: stop: %v", m.Name, err)
		}
	}
	m.start()
}

// AwaitHealthy waits until the member answers /health with a leader.
func (m *EtcdMember) AwaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	err := Poll(timeout, func() error {
		select {
		case <-m.daemon().Done():
			return fmt.Errorf("the process exited")
		default:
		}
		resp, err := hc.Get(m.ClientURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"health":"true"`) {
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("etcd member %s not healthy: %v", m.Name, err)
	}
}

// Endpoints are the members' client URLs.
func (c *EtcdCluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// client connects to the running members.
func (c *EtcdCluster) client() (*clientv3.Client, error) {
	var eps []string
	for _, m := range c.Members {
		if m.Running() {
			eps = append(eps, m.ClientURL)
		}
	}
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// Compact compacts the cluster's history up to its current revision, as
// etcd's auto-compaction would, and returns that revision: a watch from
// any earlier revision fails with "compacted" from then on.
func (c *EtcdCluster) Compact(t testing.TB) int64 {
	t.Helper()
	cli, err := c.client()
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatalf("read etcd's revision: %v", err)
	}
	rev := resp.Header.Revision
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact etcd at revision %d: %v", rev, err)
	}
	t.Logf("etcd compacted at revision %d", rev)
	return rev
}

// Get reads one key (for tests that look at what the control plane keeps
// in etcd).
func (c *EtcdCluster) Get(t testing.TB, key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	t.Helper()
	cli, err := c.client()
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key, opts...)
	if err != nil {
		t.Fatalf("etcd get %s: %v", key, err)
	}
	return resp
}

// EtcdTimingArgs are the control plane's etcd timings in the tests: the
// elected node hands over within a second or two, and snapshots and
// truncates the log every half second.
var EtcdTimingArgs = []string{"--etcd-session-ttl", "1s", "--etcd-snapshot-interval", "500ms"}

// EtcdArgs are the flags that put a control-plane node on c, under
// prefix.
func EtcdArgs(c *EtcdCluster, prefix string) []string {
	return append([]string{"--store", "etcd", "--etcd-endpoints", strings.Join(c.Endpoints(), ","), "--etcd-prefix", prefix}, EtcdTimingArgs...)
}
