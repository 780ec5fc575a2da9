package crossplane_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

// controlPlane is a one-node in-process control plane and an admin client
// for it.
type controlPlane struct {
	url        string
	admin      string
	caPEM      []byte // nil in dev mode
	dataplanes adminv1connect.DataplaneServiceClient
	agents     adminv1connect.AgentServiceClient
	agentSeq   atomic.Int64
}

// cpOptions shapes a control plane.
type cpOptions struct {
	tls       bool          // serve TLS (not --dev)
	heartbeat time.Duration // config-sync heartbeat; default 100ms
}

// startControlPlane bootstraps a node for t and stops it when t ends
// (after any client started later, as cleanups run last-in first-out).
func startControlPlane(t *testing.T, o cpOptions) *controlPlane {
	t.Helper()
	if o.heartbeat == 0 {
		o.heartbeat = 100 * time.Millisecond
	}
	n := cptest.Start(t, cptest.Options{TLS: o.tls, SyncHeartbeat: o.heartbeat, Logger: testLogger(t, slog.LevelWarn)})
	return &controlPlane{
		url: n.URL, admin: n.AdminToken, caPEM: n.CAPEM,
		dataplanes: adminv1connect.NewDataplaneServiceClient(n.HTTPClient, n.URL),
		agents:     adminv1connect.NewAgentServiceClient(n.HTTPClient, n.URL),
	}
}

func adminReq[T any](cp *controlPlane, m *T) *connect.Request[T] {
	r := connect.NewRequest(m)
	r.Header().Set("Authorization", "Bearer "+cp.admin)
	return r
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// credential issues a join credential for a data plane called name.
func (cp *controlPlane) credential(t *testing.T, name string) joincred.Credential {
	t.Helper()
	res, err := cp.dataplanes.CreateJoinCredential(callCtx(t), adminReq(cp, &adminv1.CreateJoinCredentialRequest{Name: name}))
	if err != nil {
		t.Fatalf("create join credential: %v", err)
	}
	cred, err := joincred.Parse(res.Msg.GetCredential())
	if err != nil {
		t.Fatalf("parse join credential: %v", err)
	}
	return cred
}

// write makes a data-plane-relevant change and returns the new cluster
// version.
func (cp *controlPlane) write(t *testing.T) uint64 {
	t.Helper()
	before := cp.version(t)
	name := fmt.Sprintf("bot-%d", cp.agentSeq.Add(1))
	_, err := cp.agents.CreateAgent(callCtx(t), adminReq(cp, &adminv1.CreateAgentRequest{
		Agent: &configv1.Agent{Meta: &configv1.ResourceMeta{Name: name}}, NoApiKey: true,
	}))
	if err != nil {
		t.Fatalf("create agent: %v", err)
	}
	v := cp.version(t)
	if v <= before {
		t.Fatalf("cluster version %d after a write, was %d", v, before)
	}
	return v
}

// version is the cluster's config version.
func (cp *controlPlane) version(t *testing.T) uint64 {
	t.Helper()
	res, err := cp.dataplanes.ListDataplanes(callCtx(t), adminReq(cp, &adminv1.ListDataplanesRequest{}))
	if err != nil {
		t.Fatalf("list data planes: %v", err)
	}
	return res.Msg.GetClusterVersion()
}

// status is what the control plane knows of data plane name (nil if
// nothing).
func (cp *controlPlane) status(t *testing.T, name string) *adminv1.DataplaneStatus {
	t.Helper()
	res, err := cp.dataplanes.ListDataplanes(callCtx(t), adminReq(cp, &adminv1.ListDataplanesRequest{}))
	if err != nil {
		t.Fatalf("list data planes: %v", err)
	}
	for _, s := range res.Msg.GetDataplanes() {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

func devConfig(cp *controlPlane, cred joincred.Credential, a *applier) syncclient.Config {
	return syncclient.Config{URLs: []string{cp.url}, Dev: true, Credential: cred, Applier: a}
}

func TestReceivesSnapshots(t *testing.T) {
	// With heartbeats a minute apart, nothing but the push on an open
	// stream can deliver a new version within the test's deadline.
	cp := startControlPlane(t, cpOptions{heartbeat: time.Minute})
	cred := cp.credential(t, "dp-a")
	want := cp.version(t)
	a := &applier{}
	cfg := devConfig(cp, cred, a)
	cfg.HeartbeatTimeout = 2 * time.Minute
	start := time.Now()
	r := startClient(t, cfg)

	waitFor(t, 10*time.Second, "the current snapshot", func() bool { return a.servingVersion() == want })
	t.Logf("current snapshot (version %d) applied %s after start", want, time.Since(start))
	if !r.c.Connected() {
		t.Error("Connected() = false after a snapshot arrived")
	}

	for range 3 {
		start = time.Now()
		v := cp.write(t)
		waitFor(t, 10*time.Second, fmt.Sprintf("version %d", v), func() bool { return a.servingVersion() == v })
		t.Logf("version %d applied %s after the write returned", v, time.Since(start))
	}
	if got := r.attempts.all(); len(got) != 0 {
		t.Fatalf("the stream ended %d times (%v); want one stream throughout", len(got), got[0].err)
	}
	waitFor(t, 10*time.Second, "an ack in ListDataplanes", func() bool {
		s := cp.status(t, "dp-a")
		return s != nil && s.GetApplied() && s.GetReportedVersion() == a.servingVersion() &&
			s.GetServingVersion() == a.servingVersion() && s.GetMode() == configsyncv1.Mode_MODE_NORMAL && s.GetConnected()
	})
}

func TestRejectedVersionIsNotResent(t *testing.T) {
	cp := startControlPlane(t, cpOptions{})
	cred := cp.credential(t, "dp-c")
	a := &applier{}
	r := startClient(t, devConfig(cp, cred, a))
	v1 := cp.version(t)
	waitFor(t, 10*time.Second, "the first snapshot", func() bool { return a.servingVersion() == v1 })

	a.setReject(func(v uint64) error {
		if v > v1 {
			return errors.New(`policy set "prod" does not compile`)
		}
		return nil
	})
	v2 := cp.write(t)
	waitFor(t, 10*time.Second, "the nack in ListDataplanes", func() bool {
		s := cp.status(t, "dp-c")
		return s != nil && s.GetReportedVersion() == v2 && !s.GetApplied()
	})
	s := cp.status(t, "dp-c")
	if !strings.Contains(s.GetReason(), `policy set "prod" does not compile`) || s.GetServingVersion() != v1 {
		t.Fatalf("status = %v, want the reason and serving version %d", s, v1)
	}

	// A fresh stream from the same data plane, still serving v1, must not
	// get v2 again: wait through many heartbeats on it.
	r.stop(t)
	r2 := startClient(t, devConfig(cp, cred, a))
	waitFor(t, 10*time.Second, "the new stream", r2.c.Connected)
	waitFor(t, 10*time.Second, "ten heartbeats", func() bool { return r2.contacts.get() >= 10 })
	if got, want := a.Calls(), []uint64{v1, v2}; !equal(got, want) {
		t.Fatalf("Apply calls = %v, want %v (the rejected version sent once)", got, want)
	}
	if s := cp.status(t, "dp-c"); s.GetReportedVersion() != v2 || s.GetApplied() {
		t.Errorf("after reconnecting, status = %v; want the nack of %d kept", s, v2)
	}

	// The next write is sent, and this time accepted.
	a.setReject(nil)
	v3 := cp.write(t)
	waitFor(t, 10*time.Second, "the next version", func() bool { return a.servingVersion() == v3 })
	if got, want := a.Calls(), []uint64{v1, v2, v3}; !equal(got, want) {
		t.Fatalf("Apply calls = %v, want %v", got, want)
	}
	waitFor(t, 10*time.Second, "the ack in ListDataplanes", func() bool {
		s := cp.status(t, "dp-c")
		return s.GetReportedVersion() == v3 && s.GetApplied() && s.GetReason() == ""
	})
}

func TestReportsStatusWhenUpToDate(t *testing.T) {
	cp := startControlPlane(t, cpOptions{})
	cred := cp.credential(t, "dp-s")
	v := cp.version(t)
	// A data plane that cold-started from its last-known-good copy of the
	// current version: the node has nothing to send it, only heartbeats.
	a := &applier{serving: syncclient.Version{Epoch: 1, Number: v}, mode: configsyncv1.Mode_MODE_DEGRADED}
	r := startClient(t, devConfig(cp, cred, a))
	waitFor(t, 10*time.Second, "connected", r.c.Connected)
	waitFor(t, 10*time.Second, "the status in ListDataplanes", func() bool {
		s := cp.status(t, "dp-s")
		return s.GetMode() == configsyncv1.Mode_MODE_DEGRADED && s.GetReportedVersion() == v && s.GetApplied() && s.GetServingVersion() == v
	})
	if got := a.Calls(); len(got) != 0 {
		t.Fatalf("Apply calls = %v, want none (the version was current)", got)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRevokedCredentialIsRetriedWithBackoff(t *testing.T) {
	cp := startControlPlane(t, cpOptions{})
	cred := cp.credential(t, "dp-e")
	a := &applier{}
	r := startClient(t, devConfig(cp, cred, a))
	waitFor(t, 10*time.Second, "connected", r.c.Connected)

	if _, err := cp.dataplanes.RevokeJoinCredential(callCtx(t), adminReq(cp, &adminv1.RevokeJoinCredentialRequest{Name: "dp-e"})); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	waitFor(t, 10*time.Second, "the stream cut", func() bool { return !r.c.Connected() })
	cut := time.Now()

	// Watch the retries for a while: they go on, slowly.
	const window = 3 * time.Second
	<-time.After(window)
	var n int
	for _, at := range r.attempts.all() {
		code := connect.CodeOf(at.err)
		if code != connect.CodePermissionDenied && code != connect.CodeUnauthenticated {
			t.Errorf("attempt ended with %v, want permission denied or unauthenticated", at.err)
		}
		if at.at.After(cut) {
			n++
		}
	}
	// Backoff starts at 200ms and doubles its ceiling: at least two
	// attempts fit in the window, and the 200ms floor allows at most 15.
	if n < 2 || n > 15 {
		t.Fatalf("%d attempts in %s after the cut; want between 2 and 15", n, window)
	}
	t.Logf("%d attempts in %s after the cut", n, window)
	if r.c.Connected() {
		t.Fatal("Connected() = true with a revoked credential")
	}
}

func TestPinnedTLSAgainstControlPlane(t *testing.T) {
	cp := startControlPlane(t, cpOptions{tls: true})
	cred := cp.credential(t, "dp-tls")
	block, _ := pem.Decode(cp.caPEM)
	sum := sha256.Sum256(block.Bytes)
	if want := "sha256:" + hex.EncodeToString(sum[:]); cred.CAFingerprint != want {
		t.Fatalf("credential pins %q, the cluster CA is %q", cred.CAFingerprint, want)
	}
	want := cp.version(t)

	t.Run("pinned CA", func(t *testing.T) {
		a := &applier{}
		startClient(t, syncclient.Config{URLs: []string{cp.url}, Credential: cred, Applier: a})
		waitFor(t, 15*time.Second, "the snapshot over TLS", func() bool { return a.servingVersion() == want })
	})
	t.Run("another CA pinned", func(t *testing.T) {
		wrong := cred
		impostor := sha256.Sum256([]byte("impostor CA"))
		wrong.CAFingerprint = "sha256:" + hex.EncodeToString(impostor[:])
		a := &applier{}
		r := startClient(t, syncclient.Config{URLs: []string{cp.url}, Credential: wrong, Applier: a})
		waitFor(t, 15*time.Second, "two attempts", func() bool { return len(r.attempts.all()) >= 2 })
		for _, at := range r.attempts.all() {
			if !errors.Is(at.err, syncclient.ErrUntrusted) {
				t.Errorf("attempt ended with %v, want ErrUntrusted", at.err)
			}
		}
		if len(a.Calls()) != 0 || r.c.Connected() {
			t.Fatal("connected to a control plane whose CA is not the pinned one")
		}
	})
}
