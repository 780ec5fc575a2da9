package raftstore_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

func encode(t *testing.T, c *fsmv1.Command) []byte {
	t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func controlPlaneRecords(t *testing.T, s *auditstore.Store) []*auditv1.Record {
	t.Helper()
	recs, _, err := s.Query(auditstore.Filter{DP: auditstore.ControlPlane}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestAdminWritesAudited: every admin write, applied or refused, leaves
// one record in the control plane's chain, with no resource contents; a
// deduplicated retry and a replayed entry leave none; two replicas (one
// restored from a snapshot midway) hold the same chain, and it verifies.
func TestAdminWritesAudited(t *testing.T) {
	secret := statetest.Secret("db-password")
	cmds := []*fsmv1.Command{
		statetest.By(statetest.Create(secret), "tok-admin", "r1", 100),
		statetest.By(statetest.Create(secret), "tok-admin", "r2", 101), // refused: exists
		statetest.By(statetest.Create(secret), "tok-admin", "r1", 102), // retry: deduplicated
		statetest.By(statetest.SetFreeze(true, "incident"), "tok-op", "r3", 103),
		statetest.By(statetest.Touch(), "tok-op", "r4", 104),
	}
	sa := openStore(t)
	a := raftstore.NewFSM(sa)
	sb := openStore(t)
	b := raftstore.NewFSM(sb)
	var snap sink
	for i, c := range cmds {
		l := &raft.Log{Index: uint64(10 + i), Data: encode(t, c)}
		a.Apply(l)
		if i < 2 {
			b.Apply(l)
		}
		if i == 2 {
			// b falls behind and catches up from a's snapshot.
			fs, err := a.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if err := fs.Persist(&snap); err != nil {
				t.Fatal(err)
			}
			fs.Release()
			if err := b.Restore(io.NopCloser(bytes.NewReader(snap.Bytes()))); err != nil {
				t.Fatal(err)
			}
		}
		if i > 2 {
			b.Apply(l)
		}
	}
	// a replays its log after a restart: nothing new.
	for i, c := range cmds {
		a.Apply(&raft.Log{Index: uint64(10 + i), Data: encode(t, c)})
	}

	got := controlPlaneRecords(t, sa)
	if len(got) != 4 {
		t.Fatalf("%d control-plane records, want 4 (create, refused create, freeze, touch): %v", len(got), got)
	}
	want := []struct{ outcome, tool, agent string }{
		{"ok", "put secret", "tok-admin"},
		{"refused", "put secret", "tok-admin"},
		{"ok", "freeze cluster", "tok-op"},
		{"ok", "touch", "tok-op"},
	}
	for i, r := range got {
		if r.GetSequence() != uint64(i+1) || r.GetProtocol() != "admin" || r.GetOutcome() != want[i].outcome ||
			r.GetTool() != want[i].tool || r.GetAgent() != want[i].agent || r.GetDataplane() != auditstore.ControlPlane {
			t.Errorf("record %d = %v", i, r)
		}
	}
	if got[1].GetReason() != "already_exists" || got[0].GetSnapshotVersion() != 10 || got[3].GetSnapshotVersion() != 14 {
		t.Errorf("reason, versions = %q, %d, %d", got[1].GetReason(), got[0].GetSnapshotVersion(), got[3].GetSnapshotVersion())
	}
	if !strings.Contains(got[0].GetArgumentsJson(), `"name":"db-password"`) {
		t.Errorf("arguments = %s", got[0].GetArgumentsJson())
	}
	for _, r := range got {
		if bytes.Contains([]byte(r.String()), secret.GetCiphertext()) {
			t.Fatalf("record carries the secret's value: %v", r)
		}
	}

	gotB := controlPlaneRecords(t, sb)
	if len(gotB) != len(got) {
		t.Fatalf("replica b holds %d records, a %d", len(gotB), len(got))
	}
	for i := range got {
		if !proto.Equal(got[i], gotB[i]) {
			t.Errorf("record %d differs between replicas:\n a %v\n b %v", i+1, got[i], gotB[i])
		}
	}
	for _, s := range []*auditstore.Store{sa, sb} {
		rep, err := s.Verify()
		if err != nil || rep.Problem != nil {
			t.Fatalf("verify: %v %v", err, rep.Problem)
		}
	}
}

// TestUploadUnderControlPlaneNameRefused: no data plane may write into
// the control plane's chain.
func TestUploadUnderControlPlaneNameRefused(t *testing.T) {
	f := raftstore.NewFSM(openStore(t))
	res := f.Apply(&raft.Log{Index: 3, Data: appendAudit(t, auditstore.ControlPlane, records(t, auditstore.ControlPlane, 1))}).(*fsmv1.Result)
	if res.GetError().GetCode() != fsmv1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION {
		t.Fatalf("upload under the reserved name: %v", res)
	}
}

// TestAdminWritesTypedOnceEveryVoterSupportsIt: while a voter records an
// older cluster version, admin writes are audited in the call fields older
// versions wrote (every replica of a mixed cluster computes the same
// chain); once every voter supports clusterversion.TypedAdminAudit they
// are EVENT_KIND_ADMIN_WRITE records with the write in their detail.
func TestAdminWritesTypedOnceEveryVoterSupportsIt(t *testing.T) {
	s := openStore(t)
	f := raftstore.NewFSM(s)
	old, cur := statetest.Node("n1"), statetest.Node("n2")
	cur.MaxClusterVersion = uint32(clusterversion.TypedAdminAudit)
	apply := func(i uint64, c *fsmv1.Command) {
		t.Helper()
		if res := f.Apply(&raft.Log{Index: i, Data: encode(t, c)}).(*fsmv1.Result); res.GetError() != nil {
			t.Fatalf("apply %d: %v", i, res.GetError())
		}
	}
	apply(10, statetest.By(statetest.Create(old), "tok-admin", "r1", 100))
	apply(11, statetest.By(statetest.Create(cur), "tok-admin", "r2", 101))
	apply(12, statetest.By(statetest.Create(statetest.Secret("a")), "tok-admin", "r3", 102))
	upgraded := statetest.Node("n1")
	upgraded.MaxClusterVersion = uint32(clusterversion.TypedAdminAudit)
	apply(13, statetest.By(statetest.Upsert(upgraded), "node:n1", "r4", 103))
	apply(14, statetest.By(statetest.Create(statetest.Secret("b")), "tok-admin", "r5", 104))

	got := controlPlaneRecords(t, s)
	if len(got) != 5 {
		t.Fatalf("%d records, want 5", len(got))
	}
	if r := got[2]; r.GetKind() != auditv1.EventKind_EVENT_KIND_UNSPECIFIED || r.GetTool() != "put secret" || r.GetAgent() != "tok-admin" {
		t.Errorf("record of a write while n1 records version 1: %v, want the older call-shaped record", r)
	}
	r := got[4]
	w := r.GetAdminWrite()
	if r.GetKind() != auditv1.EventKind_EVENT_KIND_ADMIN_WRITE || w == nil || w.GetOp() != "put" || w.GetResourceKind() != "secret" ||
		w.GetResourceName() != "b" || w.GetTokenId() != "tok-admin" || w.GetRequestId() != "r5" || r.GetAgent() != "" || r.GetTool() != "" {
		t.Errorf("record of a write once every voter supports typed records: %v", r)
	}
	if rep, err := s.Verify(); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %v %v", err, rep.Problem)
	}
}

// TestSignInsAudited: a web sign-in leaves a typed record in the control
// plane's chain naming the token and the address; one of a token that no
// longer exists is recorded as refused; and while a voter records a
// cluster version before clusterversion.WebSignIn, sign-ins are refused.
func TestSignInsAudited(t *testing.T) {
	const op = "0b0b0b0b0b0b0b0b"
	s := openStore(t)
	f := raftstore.NewFSM(s)
	old, cur := statetest.Node("n1"), statetest.Node("n1")
	old.MaxClusterVersion = uint32(clusterversion.WebSignIn - 1)
	cur.MaxClusterVersion = uint32(clusterversion.WebSignIn)
	cmds := []*fsmv1.Command{
		statetest.By(statetest.Create(old), statetest.BootToken, "r0", 99),
		statetest.By(statetest.Create(statetest.AdminToken(op, configv1.Role_ROLE_AUDITOR, nil)), statetest.BootToken, "r1", 100),
		statetest.By(statetest.SignIn("192.0.2.7"), op, "r2", 101),
		statetest.By(statetest.Upsert(cur), "node:n1", "r3", 102),
		statetest.By(statetest.SignIn("192.0.2.7"), op, "r4", 103),
		statetest.By(statetest.Delete(resource.AdminToken, op), statetest.BootToken, "r5", 104),
		statetest.By(statetest.SignIn("192.0.2.7"), op, "r6", 105),
	}
	for i, c := range cmds {
		f.Apply(&raft.Log{Index: uint64(10 + i), Data: encode(t, c)})
	}
	got := controlPlaneRecords(t, s)
	if len(got) != len(cmds) {
		t.Fatalf("%d control-plane records, want %d: %v", len(got), len(cmds), got)
	}
	for _, c := range []struct {
		i             int
		outcome, code string
	}{{2, "refused", "failed_precondition"}, {4, "ok", ""}, {6, "refused", "not_found"}} {
		r := got[c.i]
		w := r.GetAdminWrite()
		if w.GetOp() != "sign-in" || w.GetResourceKind() != "session" || w.GetTokenId() != op || r.GetSourceIp() != "192.0.2.7" ||
			r.GetOutcome() != c.outcome || w.GetErrorCode() != c.code {
			t.Errorf("sign-in record %d = %v, want op sign-in, kind session, token %s, source 192.0.2.7, outcome %s %s", c.i, r, op, c.outcome, c.code)
		}
	}
}
