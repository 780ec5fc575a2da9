//go:build upgradetest

package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/adminapi"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/server"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// putProbe writes an upgrade probe through node n's admin API.
func (c *testCluster) putProbe(n *testNode, name string) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}
	defer tr.CloseIdleConnections()
	cl := connect.NewClient[fsmv1.UpgradeProbe, fsmv1.UpgradeProbe](&http.Client{Transport: tr}, "https://"+n.cfg.APIAddr+adminapi.ProbePutProcedure)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := cl.CallUnary(ctx, req(c.token, &fsmv1.UpgradeProbe{Meta: &configv1.ResourceMeta{Name: name}}))
	return err
}

// status asks node n for the cluster status.
func (c *testCluster) status(n *testNode) (*adminv1.GetClusterStatusResponse, error) {
	res, err := c.client(n).cluster.GetClusterStatus(context.Background(), c.req(&adminv1.GetClusterStatusRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// TestVersionGateFollowsTheVotersRecords (test build, where the probe kind
// needs a version above the release): every node records the version its
// binary supports and the probe can be written; when a voter's record
// loses its version (it is re-added, as an older node re-joining would
// be), writes of the probe are refused, naming that voter, until it runs
// again and records its version.
//
// On etcd the voters are the nodes recorded in the state: every one
// applies the log.
func TestVersionGateFollowsTheVotersRecords(t *testing.T) {
	onEveryStore(t, testVersionGate)
}

func testVersionGate(t *testing.T, c *testCluster) {
	c.bootstrap("n1", "n2", "n3")
	want := uint32(clusterversion.Current())
	awaitVersion := func(v uint32) {
		t.Helper()
		eventually(t, 20*time.Second, fmt.Sprintf("every node reports cluster version %d", v), func() error {
			for _, n := range c.nodes {
				if n.srv == nil {
					continue
				}
				st, err := c.status(n)
				if err != nil {
					return err
				}
				if st.GetClusterVersion() != v {
					return fmt.Errorf("%s reports cluster version %d, members %v", n.cfg.NodeID, st.GetClusterVersion(), st.GetMembers())
				}
			}
			return nil
		})
	}
	awaitVersion(want)
	if err := c.putProbe(c.follower(), "first"); err != nil {
		t.Fatalf("probe write with every voter at version %d: %v", want, err)
	}

	behind := c.follower()
	behind.stop()
	l := c.leader()
	raftAddr := behind.cfg.RaftAddr
	if c.store == server.StoreEtcd {
		raftAddr = ""
	}
	if _, err := c.client(l).cluster.AddNode(context.Background(), req(c.token, &adminv1.AddNodeRequest{
		NodeId: behind.cfg.NodeID, RaftAddr: raftAddr, ApiAddr: behind.cfg.APIAddr,
	})); err != nil {
		t.Fatalf("re-add %s: %v", behind.cfg.NodeID, err)
	}
	awaitVersion(uint32(clusterversion.Baseline))
	err := c.putProbe(l, "second")
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("probe write with %s behind: %v, want FailedPrecondition", behind.cfg.NodeID, err)
	}
	for _, s := range []string{"kind upgrade_probe needs cluster version", behind.cfg.NodeID + " (supports 1)", "upgrade those nodes"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("refusal %q does not say %q", err, s)
		}
	}

	cfg := behind.cfg
	cfg.Bootstrap, cfg.Join = false, ""
	c.start(cfg)
	awaitVersion(want)
	if err := c.putProbe(l, "second"); err != nil {
		t.Fatalf("probe write after %s recorded its version again: %v", behind.cfg.NodeID, err)
	}
}
