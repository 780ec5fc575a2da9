package raftstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/raftstore"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// peers serves sealed segments of stores by API address, recording the
// addresses asked.
type peers struct {
	stores map[string]*auditstore.Store
	asked  []string
}

func (p *peers) FetchAuditSegment(_ context.Context, addr, name string, w io.Writer) error {
	p.asked = append(p.asked, addr)
	s := p.stores[addr]
	if s == nil {
		return errors.New("no such peer")
	}
	rc, _, err := s.OpenSealed(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// TestSnapshotFormatFollowsTheClusterVersion: until every voter supports
// clusterversion.AuditSegments a snapshot carries every audit segment's
// bytes (what older replicas read); from then on only the sealed
// segments' list and the open segment, and a node restoring it fetches the
// sealed segments it lacks from the nodes the snapshot's state records.
func TestSnapshotFormatFollowsTheClusterVersion(t *testing.T) {
	tests := []struct {
		name     string
		version  clusterversion.Version
		manifest bool
	}{
		{name: "a voter before version 8", version: clusterversion.AuditSegments - 1},
		{name: "every voter at version 8", version: clusterversion.AuditSegments, manifest: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := auditstore.Open(auditstore.Options{Dir: t.TempDir(), SegmentSize: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			f := raftstore.NewFSM(src)
			f.Apply(&raft.Log{Index: 1, Data: encode(t, statetest.Bootstrap())})
			node := statetest.NodeAt("n1", tt.version)
			node.ApiAddr = "n1.example:7440"
			if res := f.Apply(&raft.Log{Index: 2, Data: encode(t, statetest.By(statetest.Upsert(node), statetest.BootToken, "r-n1", 1))}).(*fsmv1.Result); res.GetError() != nil {
				t.Fatalf("node record: %v", res.GetError())
			}
			recs := records(t, "dp1", 200)
			for i := 0; i < len(recs); i += 10 {
				f.Apply(&raft.Log{Index: uint64(3 + i), Data: appendAudit(t, "dp1", recs[i:i+10])})
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
			if got := bytes.Contains(s.Bytes(), []byte("PCAUDS02")); got != tt.manifest {
				t.Fatalf("manifest format %t, want %t", got, tt.manifest)
			}
			st, err := src.Verify()
			if err != nil {
				t.Fatal(err)
			}
			held := uint64(0)
			for _, c := range st.Chains {
				held += c.Records
			}
			if tt.manifest && s.Len() > 4096 {
				t.Fatalf("a manifest snapshot of a store of %d records is %d bytes", held, s.Len())
			}

			dst, err := auditstore.Open(auditstore.Options{Dir: t.TempDir(), SegmentSize: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			g := raftstore.NewFSM(dst)
			p := &peers{stores: map[string]*auditstore.Store{"n1.example:7440": src}}
			g.FetchSegmentsWith(p, "n2", func() string { return "leader.example:7440" })
			if err := g.Restore(io.NopCloser(bytes.NewReader(s.Bytes()))); err != nil {
				t.Fatal(err)
			}
			if dst.Next("dp1") != 201 {
				t.Fatalf("restored store expects %d next, want 201", dst.Next("dp1"))
			}
			if rep, err := dst.Verify(); err != nil || rep.Problem != nil {
				t.Fatalf("restored store: %v %v", err, rep.Problem)
			}
			if tt.manifest {
				// The leader first (it is unknown here), then n1.
				if len(p.asked) < 2 || p.asked[0] != "leader.example:7440" || p.asked[1] != "n1.example:7440" {
					t.Fatalf("fetched from %v, want the leader then n1", p.asked)
				}
			} else if len(p.asked) != 0 {
				t.Fatalf("an old-format snapshot fetched from %v", p.asked)
			}
		})
	}
}
