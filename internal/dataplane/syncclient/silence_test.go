package syncclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1/configsyncv1connect"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"google.golang.org/protobuf/proto"
)

// fakeSync is a minimal ConfigSyncService: each stream gets snapshot
// version 1 unless the caller has it, then heartbeats every heartbeat (or
// nothing at all when heartbeat is zero).
type fakeSync struct {
	configsyncv1connect.UnimplementedConfigSyncServiceHandler
	snapshot  []byte
	heartbeat time.Duration

	mu      sync.Mutex
	streams []*fakeStream
	reports []*configsyncv1.ReportRequest
}

// fakeStream is what the server saw of one Watch call.
type fakeStream struct {
	version uint64    // the version the client said it had
	epoch   uint64    // and its epoch
	opened  time.Time // when the call arrived
	closed  time.Time // when the client went away (zero while open)
}

func newFakeSync(t *testing.T, heartbeat time.Duration) *fakeSync {
	t.Helper()
	b, err := proto.Marshal(&snapshotv1.Snapshot{Version: 1, ClusterId: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeSync{snapshot: b, heartbeat: heartbeat}
}

func (f *fakeSync) Watch(ctx context.Context, req *connect.Request[configsyncv1.WatchRequest], stream *connect.ServerStream[configsyncv1.WatchResponse]) error {
	s := &fakeStream{version: req.Msg.GetVersion(), epoch: req.Msg.GetEpoch(), opened: time.Now()}
	f.mu.Lock()
	f.streams = append(f.streams, s)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		s.closed = time.Now()
		f.mu.Unlock()
	}()
	if req.Msg.GetVersion() != 1 {
		if err := stream.Send(&configsyncv1.WatchResponse{Kind: &configsyncv1.WatchResponse_Snapshot{Snapshot: f.snapshot}}); err != nil {
			return err
		}
	}
	var tick <-chan time.Time
	if f.heartbeat > 0 {
		tk := time.NewTicker(f.heartbeat)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if err := stream.Send(&configsyncv1.WatchResponse{Kind: &configsyncv1.WatchResponse_Heartbeat{Heartbeat: &configsyncv1.Heartbeat{Version: 1}}}); err != nil {
				return err
			}
		}
	}
}

func (f *fakeSync) Report(_ context.Context, req *connect.Request[configsyncv1.ReportRequest]) (*connect.Response[configsyncv1.ReportResponse], error) {
	f.mu.Lock()
	f.reports = append(f.reports, req.Msg)
	f.mu.Unlock()
	return connect.NewResponse(&configsyncv1.ReportResponse{}), nil
}

// Reports returns the reports received so far.
func (f *fakeSync) Reports() []*configsyncv1.ReportRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*configsyncv1.ReportRequest(nil), f.reports...)
}

// Streams returns copies of what the server saw so far.
func (f *fakeSync) Streams() []fakeStream {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]fakeStream, len(f.streams))
	for i, s := range f.streams {
		out[i] = *s
	}
	return out
}

// serve starts f on an h2c loopback server and returns its URL.
func (f *fakeSync) serve(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(configsyncv1connect.NewConfigSyncServiceHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func fakeConfig(url string, a *applier, heartbeatTimeout time.Duration) syncclient.Config {
	return syncclient.Config{
		URLs: []string{url}, Dev: true, Applier: a,
		Credential:       joincred.Credential{Name: "dp1", Token: "pct_test"},
		MinBackoff:       10 * time.Millisecond,
		MaxBackoff:       50 * time.Millisecond,
		HeartbeatTimeout: heartbeatTimeout,
	}
}

func TestSilentStreamIsDropped(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	f := newFakeSync(t, 0) // one snapshot, then silence
	a := &applier{}
	r := startClient(t, fakeConfig(f.serve(t), a, timeout), -1)

	waitFor(t, 10*time.Second, "a second stream after the first went silent", func() bool { return len(f.Streams()) >= 2 })
	waitFor(t, 10*time.Second, "the client to hang up the first stream", func() bool { return !f.Streams()[0].closed.IsZero() })
	s := f.Streams()
	if held := s[0].closed.Sub(s[0].opened); held < timeout {
		t.Errorf("first stream dropped after %s, before the %s timeout", held, timeout)
	}
	if s[0].version != 0 || s[1].version != 1 {
		t.Errorf("streams asked for versions %d, %d; want 0 then the applied 1", s[0].version, s[1].version)
	}
	if got := a.Calls(); len(got) != 1 || got[0] != 1 {
		t.Errorf("Apply calls = %v, want [1]", got)
	}
	for _, at := range r.attempts.all() {
		if !errors.Is(at.err, syncclient.ErrSilent) {
			t.Errorf("attempt ended with %v, want the heartbeat timeout", at.err)
		}
	}
}

// The timeouts below are generous because a loaded CI machine can stall
// the whole test process for a second; what the tests show is that a
// stream outlives several timeouts while heartbeats flow.

func TestHeartbeatsKeepStream(t *testing.T) {
	t.Parallel()
	const timeout = 1500 * time.Millisecond
	f := newFakeSync(t, 25*time.Millisecond)
	a := &applier{}
	r := startClient(t, fakeConfig(f.serve(t), a, timeout), -1)

	// 200 heartbeats span more than three timeouts.
	waitFor(t, 60*time.Second, "200 contacts", func() bool { return r.contacts.get() >= 200 })
	if n := len(f.Streams()); n != 1 {
		t.Fatalf("%d streams, want the first one kept", n)
	}
	if !r.c.Connected() {
		t.Fatal("Connected() = false on a live stream")
	}
	if got := r.attempts.all(); len(got) != 0 {
		t.Fatalf("attempts ended: %v", got)
	}
}

func TestSlowApplyIsNotSilence(t *testing.T) {
	t.Parallel()
	const timeout = 1500 * time.Millisecond
	f := newFakeSync(t, 20*time.Millisecond)
	release := make(chan struct{})
	a := &applier{block: release}
	r := startClient(t, fakeConfig(f.serve(t), a, timeout), -1)

	waitFor(t, 10*time.Second, "the stream to open", func() bool { return len(f.Streams()) == 1 })
	// Apply is stuck for over two timeouts while heartbeats queue up.
	<-time.After(5 * time.Second)
	close(release)
	waitFor(t, 10*time.Second, "the snapshot applied", func() bool { return a.servingVersion() == 1 })
	start := r.contacts.get()
	waitFor(t, 10*time.Second, "more heartbeats", func() bool { return r.contacts.get() >= start+20 })
	if n := len(f.Streams()); n != 1 {
		t.Fatalf("%d streams, want the first one kept through the slow apply", n)
	}
}

func TestDisconnectClearsConnected(t *testing.T) {
	t.Parallel()
	f := newFakeSync(t, 20*time.Millisecond)
	a := &applier{}
	mux := http.NewServeMux()
	mux.Handle(configsyncv1connect.NewConfigSyncServiceHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	r := startClient(t, fakeConfig(srv.URL, a, time.Second), -1)

	waitFor(t, 10*time.Second, "connected", r.c.Connected)
	srv.CloseClientConnections()
	srv.Close()
	waitFor(t, 10*time.Second, "disconnected", func() bool { return !r.c.Connected() })
}
