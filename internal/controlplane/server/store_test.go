package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	"github.com/portcullis-gw/portcullis/internal/controlplane/singleton"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// runs records which nodes run a singleton job.
type runs struct {
	mu      sync.Mutex
	running map[string]bool
	most    int // the most nodes running it at once
	starts  []string
}

func (r *runs) job(node string) singleton.Job {
	return singleton.Job{Name: "probe", Run: func(ctx context.Context) {
		r.mu.Lock()
		r.running[node] = true
		r.most = max(r.most, len(r.running))
		r.starts = append(r.starts, node)
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		delete(r.running, node)
		r.mu.Unlock()
	}}
}

func (r *runs) only() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.running) != 1 {
		return "", fmt.Errorf("running on %d nodes", len(r.running))
	}
	for n := range r.running {
		return n, nil
	}
	return "", nil
}

// TestSingletonWorkRunsOnOneNodeAndHandsOver: singleton work registered
// with the server runs on exactly one node, the one the store elected, and
// when that node stops another takes it over; it never runs on two nodes
// at once.
func TestSingletonWorkRunsOnOneNodeAndHandsOver(t *testing.T) {
	onEveryStore(t, func(t *testing.T, c *testCluster) {
		r := &runs{running: map[string]bool{}}
		c.jobs = r.job
		c.bootstrap("n1", "n2", "n3")
		var first string
		eventually(t, 20*time.Second, "the job runs on the elected node", func() error {
			n, err := r.only()
			if err != nil {
				return err
			}
			if !c.nodes[n].srv.IsLeader() {
				return fmt.Errorf("it runs on %s, which is not the leader", n)
			}
			first = n
			return nil
		})
		c.nodes[first].stop()
		eventually(t, 20*time.Second, "another node takes the job over", func() error {
			n, err := r.only()
			if err != nil {
				return err
			}
			if n == first {
				return errors.New("still on the stopped node")
			}
			return nil
		})
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.most != 1 {
			t.Fatalf("the job ran on %d nodes at once (starts %v)", r.most, r.starts)
		}
	})
}

// TestBackupMovesBetweenStores: a backup of a cluster on Raft starts a
// cluster on etcd (--bootstrap --restore-from) with the same identity,
// tokens and resources in the next epoch; more nodes join it from etcd
// alone; a backup of that starts a Raft cluster again, and also restores
// into the original Raft cluster, which is the same cluster.
func TestBackupMovesBetweenStores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raft := newClusterOn(t, server.StoreRaft)
	raft.bootstrap("n1")
	raft.createAgent(raft.leader(), "from-raft")
	backup := func(c *testCluster) string {
		t.Helper()
		st, err := c.leader().srv.Store().State(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := st.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "backup.pcs")
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// adopt starts node n1 of c from the backup at path; c takes the
	// token and the CA of the cluster the backup came from.
	adopt := func(c *testCluster, path string) {
		t.Helper()
		c.kek, c.token = raft.kek, raft.token
		cfg := c.config("n1")
		cfg.Bootstrap, cfg.RestoreFrom = true, path
		n := c.start(cfg)
		var err error
		if c.ca, err = os.ReadFile(filepath.Join(n.cfg.DataDir, "tls", server.CACertFile)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.ca, raft.ca) {
			t.Fatal("the cluster started from the backup has another CA")
		}
		c.waitVoters(1)
	}
	epoch := func(c *testCluster, n *testNode) uint64 {
		t.Helper()
		st, err := n.srv.Store().State(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		return st.Epoch()
	}

	etcd := newClusterOn(t, server.StoreEtcd)
	adopt(etcd, backup(raft))
	e1 := etcd.nodes["n1"]
	etcd.hasAgents(e1, "from-raft")
	if got := epoch(etcd, e1); got != 2 {
		t.Fatalf("the etcd cluster started from the backup is in epoch %d, want 2", got)
	}
	etcd.createAgent(e1, "on-etcd")
	e2 := etcd.start(etcd.config("n2"))
	etcd.hasAgents(e2, "from-raft", "on-etcd")
	etcd.waitVoters(2)

	back := newClusterOn(t, server.StoreRaft)
	fromEtcd := backup(etcd)
	adopt(back, fromEtcd)
	b1 := back.nodes["n1"]
	back.hasAgents(b1, "from-raft", "on-etcd")
	if got := epoch(back, b1); got != 3 {
		t.Fatalf("the Raft cluster started from the etcd backup is in epoch %d, want 3", got)
	}
	back.createAgent(b1, "back-on-raft")

	// The original Raft cluster is the same cluster: the etcd backup
	// restores into it like any backup of its own.
	data, err := os.ReadFile(fromEtcd)
	if err != nil {
		t.Fatal(err)
	}
	if err := raft.leader().srv.Restore(ctx, data); err != nil {
		t.Fatalf("restore the etcd backup into the original Raft cluster: %v", err)
	}
	raft.hasAgents(raft.leader(), "on-etcd")
}

// TestNewNodeOnEtcdCopiesTheAuditStore: audit upload batches leave etcd
// once every node has them, so a node that joins after they left merges a
// peer's audit store before it starts from the state snapshot: every node
// ends with every record and the same chain of admin writes.
func TestNewNodeOnEtcdCopiesTheAuditStore(t *testing.T) {
	c := newClusterOn(t, server.StoreEtcd)
	c.bootstrap("n1", "n2")
	n1 := c.nodes["n1"]
	dps := adminv1connect.NewDataplaneServiceClient(c.httpClient(), "https://"+n1.cfg.APIAddr)
	res, err := dps.CreateJoinCredential(context.Background(), req(c.token, &adminv1.CreateJoinCredentialRequest{Name: "dp1"}))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := joincred.Parse(res.Msg.GetCredential())
	if err != nil {
		t.Fatal(err)
	}
	recs := auditChain(t, "dp1", 500)
	for i := 0; i < len(recs); i += 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		up, err := c.audit(n1).Upload(ctx, req(cred.Token, &auditv1.UploadRequest{Records: recs[i : i+100]}))
		cancel()
		if err != nil || up.Msg.GetNextSequence() != uint64(i+101) {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	for i := range 3 {
		c.createAgent(n1, fmt.Sprintf("agent-%d", i))
	}
	// Wait until etcd holds no log entry any more: the upload batches are
	// only in n1's and n2's audit stores now.
	cli := n1.srv.EtcdNode().Client()
	eventually(t, 20*time.Second, "the log truncated", func() error {
		resp, err := cli.Get(context.Background(), c.prefix+"/log/", clientPrefixCount()...)
		if err != nil {
			return err
		}
		if resp.Count != 0 {
			return fmt.Errorf("%d log entries left", resp.Count)
		}
		return nil
	})
	n3 := c.start(c.config("n3"))
	c.waitVoters(3)
	c.hasAgents(n3, "agent-0", "agent-2")
	eventually(t, 20*time.Second, "every node holds every record and the same chains", func() error {
		var first *auditv1.VerifyResponse
		for _, n := range []*testNode{n1, c.nodes["n2"], n3} {
			if _, err := c.client(n).agents.GetAgent(context.Background(), req(c.token, &adminv1.GetAgentRequest{Name: "agent-0"}, "Portcullis-Consistency", "linearizable")); err != nil {
				return err
			}
			v, err := c.audit(n).Verify(context.Background(), req(c.token, &auditv1.VerifyRequest{}))
			if err != nil {
				return err
			}
			if !v.Msg.GetOk() {
				return fmt.Errorf("%s: not intact: %v", n.cfg.NodeID, v.Msg.GetProblem())
			}
			var chains []string
			for _, ch := range v.Msg.GetChains() {
				chains = append(chains, fmt.Sprintf("%s:%d-%d", ch.GetDataplane(), ch.GetFirstSequence(), ch.GetLastSequence()))
			}
			if len(v.Msg.GetChains()) != 2 {
				return fmt.Errorf("%s holds chains %s", n.cfg.NodeID, strings.Join(chains, " "))
			}
			if first == nil {
				first = v.Msg
			} else if !proto.Equal(v.Msg.GetChains()[0], first.GetChains()[0]) || !proto.Equal(v.Msg.GetChains()[1], first.GetChains()[1]) {
				return fmt.Errorf("%s holds chains %s, n1 %v", n.cfg.NodeID, strings.Join(chains, " "), first.GetChains())
			}
		}
		return nil
	})
	st, err := n3.srv.Store().State(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get(resource.Node, "n3"); !ok {
		t.Fatal("n3 did not record itself")
	}
}

func clientPrefixCount() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}
