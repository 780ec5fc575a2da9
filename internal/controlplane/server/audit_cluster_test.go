package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

func (c *testCluster) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
}

func (c *testCluster) audit(n *testNode) auditv1connect.AuditServiceClient {
	return auditv1connect.NewAuditServiceClient(c.httpClient(), "https://"+n.cfg.APIAddr)
}

// auditChain makes records 1..n of dp's hash chain.
func auditChain(t *testing.T, dp string, n int) []*auditv1.Record {
	t.Helper()
	prev := auditchain.Zero
	out := make([]*auditv1.Record, n)
	for i := range out {
		r := &auditv1.Record{Time: timestamppb.Now(), Dataplane: dp, Sequence: uint64(i + 1), Agent: "a", Tool: "t", Outcome: "ok", PrevHash: prev}
		sum, _, err := auditchain.Hash(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Hash = sum[:]
		prev = r.Hash
		out[i] = r
	}
	return out
}

// TestAuditUploadThroughFollowerSurvivesLeaderKill uploads a data plane's
// records through a follower, kills the leader mid-upload, then restarts
// it: every node ends with every record exactly once, its chain intact.
func TestAuditUploadThroughFollowerSurvivesLeaderKill(t *testing.T) {
	onEveryStore(t, testAuditUploadSurvivesLeaderKill)
}

func testAuditUploadSurvivesLeaderKill(t *testing.T, c *testCluster) {
	c.bootstrap("n1", "n2", "n3")
	leader := c.leader()
	dps := adminv1connect.NewDataplaneServiceClient(c.httpClient(), "https://"+leader.cfg.APIAddr)
	res, err := dps.CreateJoinCredential(context.Background(), req(c.token, &adminv1.CreateJoinCredentialRequest{Name: "dp1"}))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := joincred.Parse(res.Msg.GetCredential())
	if err != nil {
		t.Fatal(err)
	}

	const total, batch = 3000, 100
	recs := auditChain(t, "dp1", total)
	f := c.follower()
	up := c.audit(f)
	var acked atomic.Uint64
	done := make(chan error, 1)
	go func() {
		var next uint64 // 0: ask where the cluster stands
		deadline := time.Now().Add(60 * time.Second)
		for next != total+1 {
			if time.Now().After(deadline) {
				done <- fmt.Errorf("upload stuck at %d", next)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if next == 0 {
				st, err := up.UploadState(ctx, req(cred.Token, &auditv1.UploadStateRequest{}))
				cancel()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				next = st.Msg.GetNextSequence()
				continue
			}
			r, err := up.Upload(ctx, req(cred.Token, &auditv1.UploadRequest{Records: recs[next-1 : min(next-1+batch, total)]}))
			cancel()
			if err != nil {
				next = 0
				time.Sleep(20 * time.Millisecond)
				continue
			}
			next = r.Msg.GetNextSequence()
			acked.Store(next - 1)
		}
		done <- nil
	}()

	eventually(t, 30*time.Second, "a third uploaded", func() error {
		if acked.Load() < total/3 {
			return fmt.Errorf("%d acknowledged", acked.Load())
		}
		return nil
	})
	leader.stop()
	t.Logf("killed leader %s with %d records acknowledged", leader.cfg.NodeID, acked.Load())
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	cfg := leader.cfg
	cfg.Bootstrap, cfg.Join = false, ""
	c.start(cfg)
	c.waitVoters(3)
	var adminHead *auditv1.Chain
	for _, n := range c.nodes {
		eventually(t, 30*time.Second, n.cfg.NodeID+" holds every record once, chain intact", func() error {
			v, err := c.audit(n).Verify(context.Background(), req(c.token, &auditv1.VerifyRequest{}))
			if err != nil {
				return err
			}
			if !v.Msg.GetOk() {
				return fmt.Errorf("not intact: %v", v.Msg.GetProblem())
			}
			// Beside dp1's chain, the control plane's own chain of admin
			// writes: the same on every node.
			var dp, admin *auditv1.Chain
			for _, ch := range v.Msg.GetChains() {
				switch ch.GetDataplane() {
				case "dp1":
					dp = ch
				case "control-plane":
					admin = ch
				}
			}
			if len(v.Msg.GetChains()) != 2 || dp == nil || admin == nil || dp.GetRecords() != total || dp.GetFirstSequence() != 1 || dp.GetLastSequence() != total {
				return fmt.Errorf("chains %v", v.Msg.GetChains())
			}
			if adminHead == nil {
				adminHead = admin
			} else if !proto.Equal(admin, adminHead) {
				return fmt.Errorf("the control plane's chain differs between nodes: %v and %v", admin, adminHead)
			}
			return nil
		})
	}
}

// TestLaggingFollowerFetchesSealedAuditSegments: a follower that was
// down while the others wrote enough to compact the log behind a snapshot
// catches up from the snapshot, which names the audit store's sealed
// segments instead of carrying them: it fetches those it lacks from a peer
// over the node-to-node API and ends with the leader's segments, byte for
// byte, and the same intact chain.
func TestLaggingFollowerFetchesSealedAuditSegments(t *testing.T) {
	c := newCluster(t)
	c.auditSegmentSize = 2048
	// Small Raft log segments, so that the log drops what the snapshot
	// covers (it drops whole segments only).
	c.timing = fastTiming
	c.timing.LogSegmentSize = 4096
	c.logs, c.infoLogs = &syncBuffer{}, true
	c.bootstrap("n1", "n2", "n3")
	f := c.follower()
	fDir := filepath.Join(f.cfg.DataDir, "audit")
	// Enough writes first that the follower holds sealed segments of its
	// own, which it keeps.
	var before []string
	for i := range 20 {
		name := fmt.Sprintf("before-%02d", i)
		c.createAgent(c.leader(), name)
		before = append(before, name)
	}
	c.hasAgents(f, before...)
	had := sealedSegments(t, fDir)
	if len(had) < 2 {
		t.Fatalf("the follower holds %d sealed segments, want some to keep", len(had))
	}
	l := c.leader()
	st, err := c.client(l).cluster.GetClusterStatus(context.Background(), c.req(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	stoppedAt := st.Msg.GetAppliedIndex()
	t.Logf("follower %s stops at about index %d", f.cfg.NodeID, stoppedAt)
	f.stop()
	// Write until the leader has snapshotted far enough past where the
	// follower stopped that the log it needs is gone (trailing logs: 8).
	var names []string
	eventually(t, 60*time.Second, "a leader snapshot past the stopped follower's log", func() error {
		for range 10 {
			name := fmt.Sprintf("while-down-%03d", len(names))
			c.createAgent(l, name)
			names = append(names, name)
		}
		if idx := latestSnapshot(t, l.cfg.DataDir); idx < stoppedAt+20 {
			return fmt.Errorf("the leader's latest snapshot is at %d, the follower stopped at %d", idx, stoppedAt)
		}
		return nil
	})
	lDir := filepath.Join(l.cfg.DataDir, "audit")
	want := sealedSegments(t, lDir)
	if len(want) <= len(had)+2 {
		t.Fatalf("the leader sealed %d segments, the follower had %d: too few new ones to show the fetch", len(want), len(had))
	}
	cfg := f.cfg
	cfg.Bootstrap, cfg.Join = false, ""
	f = c.start(cfg)
	c.hasAgents(f, names...)
	for name, body := range want {
		got, err := os.ReadFile(filepath.Join(fDir, name))
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("the follower's sealed segment %s is not the leader's (%v)", name, err)
		}
	}
	logs := c.logs.String()
	if !strings.Contains(logs, "fetched a sealed audit segment from a peer") {
		t.Fatal("the follower fetched no sealed audit segment: it caught up some other way")
	}
	if want := fmt.Sprintf("kept=%d", len(had)); !strings.Contains(logs, want) {
		t.Fatalf("the follower's restore did not keep the %d sealed segments it held (no %q logged)", len(had), want)
	}
	var heads []*auditv1.Chain
	for _, n := range []*testNode{l, f} {
		v, err := c.audit(n).Verify(context.Background(), req(c.token, &auditv1.VerifyRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if !v.Msg.GetOk() || len(v.Msg.GetChains()) != 1 {
			t.Fatalf("%s: not intact: %v %v", n.cfg.NodeID, v.Msg.GetProblem(), v.Msg.GetChains())
		}
		heads = append(heads, v.Msg.GetChains()[0])
	}
	// The follower may still be applying the log's tail: compare the
	// sealed part, which both hold, through the first record.
	if heads[0].GetFirstSequence() != heads[1].GetFirstSequence() {
		t.Fatalf("chains differ: leader %v, follower %v", heads[0], heads[1])
	}
}

// latestSnapshot is the index of the newest Raft snapshot in a node's
// data directory (term-index-time).
func latestSnapshot(t *testing.T, dataDir string) uint64 {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "raft", "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var newest uint64
	for _, e := range entries {
		var term, index, ts uint64
		if _, err := fmt.Sscanf(e.Name(), "%d-%d-%d", &term, &index, &ts); err == nil && !strings.HasSuffix(e.Name(), ".tmp") {
			newest = max(newest, index)
		}
	}
	return newest
}

// sealedSegments reads the sealed segments (those with an index) in dir.
func sealedSegments(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	idx, err := filepath.Glob(filepath.Join(dir, "*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range idx {
		name := strings.TrimSuffix(filepath.Base(p), ".idx") + ".seg"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}
