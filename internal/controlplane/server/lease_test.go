package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"testing"
	"time"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1/configsyncv1connect"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// TestLeasesThroughAnyNode asks a follower for a data plane's rate-limit
// lease: it forwards to the leader, which grants nothing during its
// quiet period and then the whole limit to the only data plane asking;
// on Raft and on etcd.
func TestLeasesThroughAnyNode(t *testing.T) {
	onEveryStore(t, func(t *testing.T, c *testCluster) {
		c.bootstrap("n1", "n2")
		leader := c.leader()
		var follower *testNode
		for _, n := range c.nodes {
			if n != leader {
				follower = n
			}
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c.ca)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
		url := "https://" + follower.cfg.APIAddr
		ctx := context.Background()
		jc, err := adminv1connect.NewDataplaneServiceClient(hc, url).CreateJoinCredential(ctx, req(c.token, &adminv1.CreateJoinCredentialRequest{Name: "dp1"}))
		if err != nil {
			t.Fatal(err)
		}
		cred, err := joincred.Parse(jc.Msg.GetCredential())
		if err != nil {
			t.Fatal(err)
		}
		// Refused until every voter has recorded that it supports
		// cluster version 6.
		eventually(t, 30*time.Second, "the rate limit stored", func() error {
			_, err := adminv1connect.NewRateLimitServiceClient(hc, url).SetRateLimit(ctx, req(c.token, &adminv1.SetRateLimitRequest{RateLimit: &configv1.RateLimit{
				Meta: &configv1.ResourceMeta{Name: "per-agent"}, Key: []configv1.RateLimitKey{configv1.RateLimitKey_RATE_LIMIT_KEY_AGENT},
				Rate: 60, Period: configv1.RateLimitPeriod_RATE_LIMIT_PERIOD_MINUTE, MaxInFlight: 4,
			}}))
			return err
		})
		sync := configsyncv1connect.NewConfigSyncServiceClient(hc, url)
		ask := &configsyncv1.LeaseRequest{Name: "dp1", Demands: []*configsyncv1.Demand{{Limit: "per-agent", Key: "agent=a1", Rate: 0.5, InFlight: 1}}}
		if _, err := sync.Lease(ctx, req(c.token, ask)); err == nil {
			t.Fatal("an admin token got a lease")
		}
		var got *configsyncv1.LeaseResponse
		eventually(t, 30*time.Second, "a lease through the follower", func() error {
			resp, err := sync.Lease(ctx, req(cred.Token, ask))
			if err != nil {
				return err
			}
			if resp.Msg.GetQuiet() || len(resp.Msg.GetLeases()) == 0 {
				return errors.New("quiet period")
			}
			got = resp.Msg
			return nil
		})
		l := got.GetLeases()[0]
		if l.GetRate() != 1 || l.GetInFlight() != 4 || got.GetDataplanes() != 1 || got.GetValidFor().AsDuration() != time.Second {
			t.Fatalf("lease %v (%d data planes, valid %s), want the whole limit: 1/s, 4 in flight", l, got.GetDataplanes(), got.GetValidFor().AsDuration())
		}
		other := &configsyncv1.LeaseRequest{Name: "dp2", Demands: ask.GetDemands()}
		if _, err := sync.Lease(ctx, req(cred.Token, other)); err == nil {
			t.Fatal("dp1's credential got dp2's leases")
		}
	})
}
