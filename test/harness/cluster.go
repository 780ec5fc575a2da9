package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Int64 decodes a protojson 64-bit integer, which is a JSON string ("42"),
// and also accepts a plain number.
type Int64 int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*n = Int64(v)
	return nil
}

// ClusterStatus is the output of "gwctl cluster status -o json".
type ClusterStatus struct {
	ClusterID     string          `json:"clusterId"`
	NodeID        string          `json:"nodeId"` // the node that answered
	LeaderID      string          `json:"leaderId"`
	Members       []ClusterMember `json:"members"`
	ConfigVersion Int64           `json:"configVersion"`
	CAFingerprint string          `json:"caFingerprint"`
	AppliedIndex  Int64           `json:"appliedIndex"`
	// ClusterVersion is the cluster version every voter supports (0 from
	// a server that predates cluster versions).
	ClusterVersion int `json:"clusterVersion"`
}

// ClusterMember is one entry of ClusterStatus.Members.
type ClusterMember struct {
	NodeID   string `json:"nodeId"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	// MaxClusterVersion is the highest cluster version the member's binary
	// supports, as recorded (0 from a server that predates versions).
	MaxClusterVersion int `json:"maxClusterVersion"`
}

// Voters lists the ids of the voting members, sorted.
func (s ClusterStatus) Voters() []string {
	var out []string
	for _, m := range s.Members {
		if m.Suffrage == "voter" {
			out = append(out, m.NodeID)
		}
	}
	slices.Sort(out)
	return out
}

// Cluster is a control plane of one or more nodes run by a test. All nodes
// share Dir/kek; the bootstrap admin token and the cluster CA come from the
// first node.
type Cluster struct {
	Dir           string
	KEKFile       string
	Token         string // the bootstrap admin token
	CAFile        string // the cluster CA (n1's copy)
	CAFingerprint string // from n1's "cluster bootstrapped" log line
	Nodes         []*ControlPlane
	// Etcd is the etcd cluster the nodes keep their state in (nil: Raft),
	// under EtcdPrefix.
	Etcd       *EtcdCluster
	EtcdPrefix string
}

// Cluster3 starts a three-node cluster: n1 bootstraps, n2 and n3 join it,
// and it returns once every node reports the three voters and one leader.
func Cluster3(t testing.TB) *Cluster {
	t.Helper()
	return StartCluster(t, 3)
}

// StartCluster starts an n-node cluster (n1 bootstraps, n2..nN join it
// concurrently, each with --join pointing at n1) and returns once every node
// reports all n as voters and agrees on one leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Nodes: n})
}

// ClusterOptions configure StartClusterWith.
type ClusterOptions struct {
	// Nodes is the number of nodes (n1 … nN).
	Nodes int
	// BinDir holds the controlplane binary every node runs (default: the
	// one Main built), e.g. a build of another commit (BuildCommit).
	BinDir string
	// Etcd puts the nodes on this etcd cluster (--store etcd, under a
	// prefix of their own) instead of Raft: n1 bootstraps, the others
	// find the cluster there (no join).
	Etcd *EtcdCluster
	// Args are extra flags of every node (for example --web-writes).
	Args []string
}

// StartClusterWith is StartCluster with options.
func StartClusterWith(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	n := opts.Nodes
	start := time.Now()
	dir := t.TempDir()
	c := &Cluster{Dir: dir, KEKFile: filepath.Join(dir, "kek"), Etcd: opts.Etcd}
	var storeArgs []string
	if opts.Etcd != nil {
		c.EtcdPrefix = fmt.Sprintf("/portcullis-%d", time.Now().UnixNano())
		storeArgs = EtcdArgs(opts.Etcd, c.EtcdPrefix)
	}
	genKEK(t, programIn(t, opts.BinDir, "controlplane"), c.KEKFile)
	n1 := StartControlPlane(t, ControlPlaneOptions{
		NodeID: "n1", DataDir: filepath.Join(dir, "n1"), KEKFile: c.KEKFile, Bootstrap: true, BinDir: opts.BinDir, StoreArgs: storeArgs, Args: opts.Args,
	})
	c.Nodes = append(c.Nodes, n1)
	c.CAFingerprint = n1.AwaitCAFingerprint(t, StartTimeout)
	n1.AwaitReady(t, StartTimeout)
	c.CAFile = n1.CAFile()
	tok, err := os.ReadFile(n1.AdminTokenFile())
	if err != nil {
		t.Fatalf("read the bootstrap admin token: %v", err)
	}
	c.Token = strings.TrimSpace(string(tok))
	for i := 2; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		o := ControlPlaneOptions{NodeID: id, DataDir: filepath.Join(dir, id), KEKFile: c.KEKFile, BinDir: opts.BinDir, StoreArgs: storeArgs, Args: opts.Args}
		if opts.Etcd == nil {
			o.Join, o.JoinToken, o.JoinCAFingerprint = n1.URL, c.Token, c.CAFingerprint
		}
		c.Nodes = append(c.Nodes, StartControlPlane(t, o))
	}
	for _, cp := range c.Nodes[1:] {
		cp.AwaitReady(t, StartTimeout)
	}
	leader := c.AwaitMembers(t, c.NodeIDs(), StartTimeout)
	t.Logf("cluster of %d up in %s: leader %s, CA %s", n, time.Since(start).Round(time.Millisecond), leader.NodeID, c.CAFingerprint)
	return c
}

// NodeIDs lists the ids of all nodes the test started, running or not.
func (c *Cluster) NodeIDs() []string {
	ids := make([]string, len(c.Nodes))
	for i, cp := range c.Nodes {
		ids[i] = cp.NodeID
	}
	return ids
}

// Node returns the node with id, failing the test if there is none.
func (c *Cluster) Node(t testing.TB, id string) *ControlPlane {
	t.Helper()
	for _, cp := range c.Nodes {
		if cp.NodeID == id {
			return cp
		}
	}
	t.Fatalf("no node %q in the cluster", id)
	return nil
}

// URLs are the API URLs of all nodes, in node order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, cp := range c.Nodes {
		urls[i] = cp.URL
	}
	return urls
}

// BaseEnv is the gwctl environment with the admin token and the cluster CA
// but no server: pass --server.
func (c *Cluster) BaseEnv() []string {
	return []string{"GWCTL_TOKEN=" + c.Token, "GWCTL_CA_FILE=" + c.CAFile}
}

// Env is BaseEnv plus GWCTL_SERVER set to urls (every node's URL when none
// are given).
func (c *Cluster) Env(urls ...string) []string {
	if len(urls) == 0 {
		urls = c.URLs()
	}
	return append(c.BaseEnv(), "GWCTL_SERVER="+strings.Join(urls, ","))
}

// Status asks cp alone for "cluster status -o json".
func (c *Cluster) Status(t testing.TB, cp *ControlPlane) (ClusterStatus, error) {
	t.Helper()
	r := Gwctl(t, c.Env(cp.URL), "cluster", "status", "-o", "json", "--timeout", "5s")
	var st ClusterStatus
	if err := r.Err(); err != nil {
		return st, err
	}
	err := r.JSON(&st)
	return st, err
}

// AwaitMembers waits until every running node among voters reports exactly
// voters as the voting members, one leader among them that all agree on,
// and the cluster's CA fingerprint. It returns the leader.
func (c *Cluster) AwaitMembers(t testing.TB, voters []string, timeout time.Duration) *ControlPlane {
	t.Helper()
	want := slices.Sorted(slices.Values(voters))
	var leader string
	Await(t, timeout, fmt.Sprintf("every running node reports voters %v and one leader", want), func() error {
		leader = ""
		for _, cp := range c.Nodes {
			if !slices.Contains(want, cp.NodeID) || !cp.Running() {
				continue
			}
			st, err := c.Status(t, cp)
			if err != nil {
				return err
			}
			if got := st.Voters(); !slices.Equal(got, want) || len(st.Members) != len(want) {
				return fmt.Errorf("%s reports members %+v, want voters %v", cp.NodeID, st.Members, want)
			}
			var flagged []string
			for _, m := range st.Members {
				if m.Leader {
					flagged = append(flagged, m.NodeID)
				}
			}
			if len(flagged) != 1 || st.LeaderID != flagged[0] {
				return fmt.Errorf("%s reports leader %q and leader flags on %v", cp.NodeID, st.LeaderID, flagged)
			}
			if leader != "" && st.LeaderID != leader {
				return fmt.Errorf("%s reports leader %s, another node %s", cp.NodeID, st.LeaderID, leader)
			}
			leader = st.LeaderID
			if st.CAFingerprint != c.CAFingerprint {
				return fmt.Errorf("%s reports CA fingerprint %q, the bootstrap log said %q", cp.NodeID, st.CAFingerprint, c.CAFingerprint)
			}
		}
		if leader == "" {
			return fmt.Errorf("no running node among %v", want)
		}
		return nil
	})
	return c.Node(t, leader)
}

// Leader waits until every running node names the same leader, itself a
// running node, and returns it.
func (c *Cluster) Leader(t testing.TB, timeout time.Duration) *ControlPlane {
	t.Helper()
	var leader *ControlPlane
	Await(t, timeout, "the running nodes agree on a running leader", func() error {
		leader = nil
		var id string
		for _, cp := range c.Nodes {
			if !cp.Running() {
				continue
			}
			st, err := c.Status(t, cp)
			if err != nil {
				return err
			}
			if st.LeaderID == "" || (id != "" && st.LeaderID != id) {
				return fmt.Errorf("%s names leader %q, others %q", cp.NodeID, st.LeaderID, id)
			}
			id = st.LeaderID
		}
		for _, cp := range c.Nodes {
			if cp.NodeID == id && cp.Running() {
				leader = cp
				return nil
			}
		}
		return fmt.Errorf("the nodes name %q, which is not a running node", id)
	})
	return leader
}

// Followers are the running nodes other than leader.
func (c *Cluster) Followers(leader *ControlPlane) []*ControlPlane {
	var out []*ControlPlane
	for _, cp := range c.Nodes {
		if cp != leader && cp.Running() {
			out = append(out, cp)
		}
	}
	return out
}

// MustCleanShutdown stops every running node with SIGTERM, all at once, and
// fails the test unless each exits with status 0.
func (c *Cluster) MustCleanShutdown(t testing.TB) {
	t.Helper()
	var wg sync.WaitGroup
	for _, cp := range c.Nodes {
		if !cp.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cp.MustCleanShutdown(t)
		}()
	}
	wg.Wait()
}

// AwaitOnEveryNode waits until check passes against each running node
// queried alone (env points gwctl at that node only); all nodes share one
// deadline. It fails the test with the last error at the deadline.
func (c *Cluster) AwaitOnEveryNode(t testing.TB, timeout time.Duration, what string, check func(cp *ControlPlane, env []string) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, cp := range c.Nodes {
		if !cp.Running() {
			continue
		}
		Await(t, time.Until(deadline), fmt.Sprintf("%s on %s", what, cp.NodeID), func() error {
			return check(cp, c.Env(cp.URL))
		})
	}
}
