package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/config/configtest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/highwater"
	"github.com/portcullis-gw/portcullis/internal/dataplane/lkg"
	"github.com/portcullis-gw/portcullis/internal/dataplane/syncclient"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/joincred"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// syncBuffer is a log sink safe for the data plane's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var testCredential = joincred.Credential{Name: "dp1", Token: "pct_test"}

// offline starts a data plane in dir whose control plane never answers,
// logging to a buffer it returns.
func offline(t *testing.T, dir string) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	dp, err := Start(context.Background(), Config{
		DataDir: dir, ControlPlanes: []string{"http://127.0.0.1:1"}, Dev: true,
		Credential: testCredential, Listen: "127.0.0.1:0", DegradedAfter: time.Hour,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return dp, logs
}

func stop(t *testing.T, dp *Server) {
	t.Helper()
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
}

func snapshotAt(t *testing.T, cluster string, epoch, version uint64) []byte {
	t.Helper()
	s := configtest.Snapshot()
	s.ClusterId, s.Epoch, s.Version = cluster, epoch, version
	s.VersionTime = timestamppb.Now() // not stale
	return configtest.Marshal(t, s)
}

func wantServing(t *testing.T, dp *Server, epoch, version uint64, mode configsyncv1.Mode) {
	t.Helper()
	v, m := dp.Serving()
	if v != (syncclient.Version{Epoch: epoch, Number: version}) || m != mode {
		t.Fatalf("serving %+v in %v, want version %d of epoch %d in %v", v, m, version, epoch, mode)
	}
}

// TestLastKnownGoodNeverGoesBack is finding 4 of issue 11 in process: a
// last-known-good file copied back from before a change is refused at
// start (logged, nothing served, starting), because the audit log records
// the newest version applied. The stream is held to the same rule: an
// older version is nacked, a new epoch (a restore on the control plane) is
// taken; a new epoch is never taken from the file, nor a file of another
// cluster.
func TestLastKnownGoodNeverGoesBack(t *testing.T) {
	dir := t.TempDir()
	lkgFile := filepath.Join(dir, lkg.FileName)
	dp, _ := offline(t, dir)
	if _, err := dp.Apply(context.Background(), snapshotAt(t, "c1", 1, 40)); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(lkgFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.Apply(context.Background(), snapshotAt(t, "c1", 1, 41)); err != nil {
		t.Fatal(err)
	}
	stop(t, dp)

	// The file from version 40 is copied back.
	if err := os.WriteFile(lkgFile, old, 0o600); err != nil {
		t.Fatal(err)
	}
	dp, logs := offline(t, dir)
	wantServing(t, dp, 0, 0, configsyncv1.Mode_MODE_STARTING)
	if l := logs.String(); !strings.Contains(l, "last-known-good snapshot refused: older than, or unrelated to, the version this data plane applied") ||
		!strings.Contains(l, "applied_version=41") {
		t.Fatalf("the log does not say why the file was refused:\n%s", l)
	} else {
		t.Logf("the data plane logged:\n%s", l)
	}
	// From the stream: the older version is refused, the current one and
	// a newer epoch (with a lower number) are taken.
	if _, err := dp.Apply(context.Background(), snapshotAt(t, "c1", 1, 40)); !errors.Is(err, highwater.ErrOlder) {
		t.Fatalf("version 40 from the stream: %v, want ErrOlder", err)
	}
	wantServing(t, dp, 0, 0, configsyncv1.Mode_MODE_STARTING)
	if _, err := dp.Apply(context.Background(), snapshotAt(t, "c1", 1, 41)); err != nil {
		t.Fatalf("version 41 again from the stream: %v", err)
	}
	if v, err := dp.Apply(context.Background(), snapshotAt(t, "c1", 2, 5)); err != nil || v != (syncclient.Version{Epoch: 2, Number: 5}) {
		t.Fatalf("epoch 2 from the stream: %+v, %v", v, err)
	}
	epoch2, err := os.ReadFile(lkgFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		snap []byte
		want error
	}{
		{name: "the previous epoch", snap: snapshotAt(t, "c1", 1, 41), want: highwater.ErrOlder},
		{name: "another cluster", snap: snapshotAt(t, "c2", 3, 1), want: highwater.ErrOtherCluster},
	} {
		if _, err := dp.Apply(context.Background(), tt.snap); !errors.Is(err, tt.want) {
			t.Fatalf("%s from the stream: %v, want %v", tt.name, err, tt.want)
		}
	}
	stop(t, dp)

	// The epoch-2 file serves; files of the older epoch, of an epoch never
	// received, or of another cluster do not.
	dp, _ = offline(t, dir)
	wantServing(t, dp, 2, 5, configsyncv1.Mode_MODE_DEGRADED)
	stop(t, dp)
	store, err := lkg.Open(dir, testCredential.StorageKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		file func() error
		log  string
	}{
		{name: "the previous epoch's file", file: func() error { return os.WriteFile(lkgFile, old, 0o600) }, log: "older than the version this data plane already applied"},
		{name: "a new epoch from a file", file: func() error { return store.Save(6, snapshotAt(t, "c1", 3, 6)) }, log: "accepted only from the control plane's stream"},
		{name: "another cluster's file", file: func() error { return store.Save(6, snapshotAt(t, "c2", 2, 6)) }, log: "from another cluster"},
	} {
		if err := tt.file(); err != nil {
			t.Fatal(err)
		}
		dp, logs := offline(t, dir)
		wantServing(t, dp, 0, 0, configsyncv1.Mode_MODE_STARTING)
		if !strings.Contains(logs.String(), tt.log) {
			t.Errorf("%s: the log does not say %q:\n%s", tt.name, tt.log, logs.String())
		}
		stop(t, dp)
	}
	if err := os.WriteFile(lkgFile, epoch2, 0o600); err != nil {
		t.Fatal(err)
	}
	dp, _ = offline(t, dir)
	wantServing(t, dp, 2, 5, configsyncv1.Mode_MODE_DEGRADED)
	stop(t, dp)

	// The audit log holds one configuration record per version taken, in
	// order, and verifies.
	var got []highwater.Version
	for r, err := range audit.ReadDir(filepath.Join(dir, "audit"), 1) {
		if err != nil {
			t.Fatal(err)
		}
		if r.GetApplied() != nil && r.GetMethod() == audit.MethodApply {
			got = append(got, highwater.FromRecord(r.GetApplied()))
		}
	}
	want := []highwater.Version{{Cluster: "c1", Epoch: 1, Number: 40}, {Cluster: "c1", Epoch: 1, Number: 41}, {Cluster: "c1", Epoch: 2, Number: 5}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("configuration records %v, want %v", got, want)
	}
	if _, err := audit.Verify(filepath.Join(dir, "audit")); err != nil {
		t.Fatal(err)
	}
}

// TestLastKnownGoodFromBeforeMarks: a data dir written before the audit
// log kept the applied version (a file, no record) serves its file, and
// the version is recorded from then on.
func TestLastKnownGoodFromBeforeMarks(t *testing.T) {
	dir := t.TempDir()
	store, err := lkg.Open(dir, testCredential.StorageKey())
	if err != nil {
		t.Fatal(err)
	}
	s := configtest.Snapshot() // no epoch: an older control plane
	s.VersionTime = timestamppb.Now()
	if err := store.Save(s.GetVersion(), configtest.Marshal(t, s)); err != nil {
		t.Fatal(err)
	}
	dp, _ := offline(t, dir)
	wantServing(t, dp, 1, s.GetVersion(), configsyncv1.Mode_MODE_DEGRADED)
	stop(t, dp)
	older := configtest.Snapshot()
	older.Version--
	older.VersionTime = timestamppb.Now()
	if err := store.Save(older.GetVersion(), configtest.Marshal(t, older)); err != nil {
		t.Fatal(err)
	}
	dp, logs := offline(t, dir)
	wantServing(t, dp, 0, 0, configsyncv1.Mode_MODE_STARTING)
	if !strings.Contains(logs.String(), "last-known-good snapshot refused") {
		t.Fatalf("an older file after the first start was not refused:\n%s", logs.String())
	}
	stop(t, dp)
}
