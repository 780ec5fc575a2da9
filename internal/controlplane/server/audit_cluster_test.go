package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
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
