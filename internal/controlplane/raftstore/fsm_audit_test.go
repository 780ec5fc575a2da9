package raftstore_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

type sink struct{ bytes.Buffer }

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { return nil }
func (s *sink) Close() error  { return nil }

func appendAudit(t *testing.T, dp string, recs []*auditv1.Record) []byte {
	t.Helper()
	b, err := proto.Marshal(&fsmv1.Command{Op: &fsmv1.Command_AppendAudit{AppendAudit: &fsmv1.AppendAudit{Dataplane: dp, Records: recs}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func records(t *testing.T, dp string, n int) []*auditv1.Record {
	t.Helper()
	prev := auditchain.Zero
	var out []*auditv1.Record
	for i := 1; i <= n; i++ {
		r := &auditv1.Record{Time: timestamppb.Now(), Dataplane: dp, Sequence: uint64(i), PrevHash: prev}
		sum, _, err := auditchain.Hash(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Hash, prev = sum[:], sum[:]
		out = append(out, r)
	}
	return out
}

func openStore(t *testing.T) *auditstore.Store {
	t.Helper()
	s, err := auditstore.Open(auditstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestAppendAuditSnapshotRoundTrip applies AppendAudit, which leaves the
// state (and its config version) alone, and carries the audit store
// through Snapshot → Persist → Restore; a bare state snapshot (a backup)
// still restores.
func TestAppendAuditSnapshotRoundTrip(t *testing.T) {
	f := raftstore.NewFSM(openStore(t))
	before := f.State()
	recs := records(t, "dp1", 20)
	res := f.Apply(&raft.Log{Index: 7, Data: appendAudit(t, "dp1", recs[:15])}).(*fsmv1.Result)
	if res.GetError() != nil || res.GetAuditNextSequence() != 16 {
		t.Fatalf("apply: %v", res)
	}
	// Replayed after a restart: skipped.
	res = f.Apply(&raft.Log{Index: 8, Data: appendAudit(t, "dp1", recs[:15])}).(*fsmv1.Result)
	if res.GetError() != nil || res.GetAuditNextSequence() != 16 {
		t.Fatalf("replay: %v", res)
	}
	// A gap is refused with where to resume.
	res = f.Apply(&raft.Log{Index: 9, Data: appendAudit(t, "dp1", recs[17:])}).(*fsmv1.Result)
	if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_ABORTED || res.GetAuditNextSequence() != 16 {
		t.Fatalf("gap: %v", res)
	}
	if f.State() != before {
		t.Fatal("AppendAudit changed the state")
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	if err := snap.Persist(&s); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	store := openStore(t)
	g := raftstore.NewFSM(store)
	if err := g.Restore(io.NopCloser(bytes.NewReader(s.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if store.Next("dp1") != 16 {
		t.Fatalf("restored store expects %d", store.Next("dp1"))
	}
	rep, err := store.Verify()
	if err != nil || rep.Problem != nil || rep.Chains[0].Records != 15 {
		t.Fatalf("restored store: %v %+v", err, rep)
	}

	var bare bytes.Buffer
	if _, err := state.New().WriteTo(&bare); err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(io.NopCloser(&bare)); err != nil {
		t.Fatalf("bare state snapshot: %v", err)
	}
	if store.Next("dp1") != 16 {
		t.Fatal("a bare state snapshot changed the audit store")
	}
}
