package auditstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// chain makes records first..last of dp's chain, prev being the hash of
// record first-1, each at base plus its sequence in seconds.
func chain(t *testing.T, dp string, first, last uint64, prev []byte, base time.Time) []*auditv1.Record {
	t.Helper()
	var out []*auditv1.Record
	for seq := first; seq <= last; seq++ {
		r := &auditv1.Record{
			Time: timestamppb.New(base.Add(time.Duration(seq) * time.Second)), Dataplane: dp, Sequence: seq,
			Agent: "agent", Tool: "tool", Outcome: "ok", PrevHash: prev,
		}
		sum, _, err := auditchain.Hash(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Hash = sum[:]
		prev = r.Hash
		out = append(out, r)
	}
	return out
}

func open(t *testing.T, dir string, o auditstore.Options) *auditstore.Store {
	t.Helper()
	o.Dir = dir
	s, err := auditstore.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustVerify(t *testing.T, s *auditstore.Store, want map[string]uint64) {
	t.Helper()
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil {
		t.Fatalf("verify: %v", rep.Problem)
	}
	got := map[string]uint64{}
	for _, c := range rep.Chains {
		got[c.Dataplane] = c.Records
	}
	for dp, n := range want {
		if got[dp] != n {
			t.Fatalf("verify: data plane %s has %d records, want %d (%v)", dp, got[dp], n, rep.Chains)
		}
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestAppendDedupesAndRefusesGaps(t *testing.T) {
	s := open(t, t.TempDir(), auditstore.Options{})
	recs := chain(t, "dp1", 1, 10, auditchain.Zero, t0)
	tests := []struct {
		name    string
		batch   []*auditv1.Record
		next    uint64
		wantErr error
	}{
		{name: "first batch", batch: recs[0:5], next: 6},
		{name: "exact resend is skipped", batch: recs[0:5], next: 6},
		{name: "overlap stores only the new ones", batch: recs[3:8], next: 9},
		{name: "gap is refused", batch: recs[9:10], next: 9, wantErr: auditstore.ErrGap},
		{name: "foreign record is refused", batch: chain(t, "dp2", 1, 1, auditchain.Zero, t0), next: 9, wantErr: auditstore.ErrDataplane},
		{name: "the rest", batch: recs[8:10], next: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, err := s.Append("dp1", tt.batch)
			if !errors.Is(err, tt.wantErr) || next != tt.next {
				t.Fatalf("Append: next %d, err %v; want %d, %v", next, err, tt.next, tt.wantErr)
			}
		})
	}
	// A record whose prev_hash does not continue the chain.
	other := chain(t, "dp1", 11, 11, make([]byte, 32), t0)
	if _, err := s.Append("dp1", other); !errors.Is(err, auditstore.ErrChain) {
		t.Fatalf("broken chain: %v", err)
	}
	mustVerify(t, s, map[string]uint64{"dp1": 10})
}

func TestRestartRebuildsMarksAndCutsTornTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, auditstore.Options{SegmentSize: 2048})
	recs := chain(t, "dp1", 1, 40, auditchain.Zero, t0)
	if _, err := s.Append("dp1", recs[:30]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append("dp2", chain(t, "dp2", 1, 5, auditchain.Zero, t0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash mid-write leaves half a frame at the end.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{200, 0, 0, 0, 1, 2, 3})
	f.Close()

	s = open(t, dir, auditstore.Options{SegmentSize: 2048})
	if s.Next("dp1") != 31 || s.Next("dp2") != 6 || s.Next("dp3") != 1 {
		t.Fatalf("after restart: next dp1 %d, dp2 %d, dp3 %d", s.Next("dp1"), s.Next("dp2"), s.Next("dp3"))
	}
	if next, err := s.Append("dp1", recs); err != nil || next != 41 {
		t.Fatalf("resend after restart: %d, %v", next, err)
	}
	mustVerify(t, s, map[string]uint64{"dp1": 40, "dp2": 5})
}

func TestSnapshotRestore(t *testing.T) {
	src := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024})
	a := chain(t, "dp1", 1, 30, auditchain.Zero, t0)
	b := chain(t, "dp2", 1, 12, auditchain.Zero, t0)
	appendInBatches(t, src, a)
	appendInBatches(t, src, b)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Appends after the snapshot are not in it.
	if _, err := src.Append("dp1", chain(t, "dp1", 31, 31, a[29].Hash, t0)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	tests := []struct {
		name string
		have []*auditv1.Record // already in the restoring store
	}{
		{name: "empty store"},
		{name: "store holding part of it", have: a[:10]},
		{name: "store holding all of it", have: a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := open(t, t.TempDir(), auditstore.Options{})
			if tt.have != nil {
				if _, err := dst.Append("dp1", tt.have); err != nil {
					t.Fatal(err)
				}
			}
			if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, dst, map[string]uint64{"dp1": 30, "dp2": 12})
			if dst.Next("dp1") != 31 {
				t.Fatalf("next dp1 %d", dst.Next("dp1"))
			}
		})
	}
}

// appendInBatches appends recs five at a time (a segment ends only
// between batches).
func appendInBatches(t *testing.T, s *auditstore.Store, recs []*auditv1.Record) {
	t.Helper()
	for i := 0; i < len(recs); i += 5 {
		if _, err := s.Append(recs[i].GetDataplane(), recs[i:min(i+5, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRetentionDropsOldSegmentsAndKeepsDedupe(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, auditstore.Options{SegmentSize: 1024, Retention: time.Hour})
	recs := chain(t, "dp1", 1, 60, auditchain.Zero, t0)
	appendInBatches(t, s, recs)
	dropped, err := s.Prune(t0.Add(time.Hour + 50*time.Second))
	if err != nil || dropped == 0 {
		t.Fatalf("Prune: %d, %v", dropped, err)
	}
	rep, err := s.Verify()
	if err != nil || rep.Problem != nil {
		t.Fatalf("verify after prune: %v %v", err, rep.Problem)
	}
	first := rep.Chains[0].First
	if first <= 1 || rep.Chains[0].Last != 60 {
		t.Fatalf("after prune: records %d-%d", first, rep.Chains[0].Last)
	}
	// Old records resent after the cut are still skipped, also after a
	// restart, and the chain continues.
	s.Close()
	s = open(t, dir, auditstore.Options{SegmentSize: 1024, Retention: time.Hour})
	more := chain(t, "dp1", 61, 62, recs[59].Hash, t0)
	if next, err := s.Append("dp1", append(recs, more...)); err != nil || next != 63 {
		t.Fatalf("append after prune: %d, %v", next, err)
	}
	mustVerify(t, s, map[string]uint64{"dp1": 62 - first + 1})

	bySize := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024, Retention: -1, MaxBytes: 2048})
	appendInBatches(t, bySize, recs)
	if n, err := bySize.Prune(time.Now()); err != nil || n == 0 {
		t.Fatalf("size prune: %d, %v", n, err)
	}
	mustVerify(t, bySize, nil)
}

// TestVerifyNamesTamperedRecord edits one stored record, with and without
// fixing its frame checksum, and expects Verify (and Ranges) to name it.
func TestVerifyNamesTamperedRecord(t *testing.T) {
	for _, fixCRC := range []bool{false, true} {
		name := "checksum left broken"
		if fixCRC {
			name = "checksum fixed"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, auditstore.Options{})
			if _, err := s.Append("dp1", chain(t, "dp1", 1, 20, auditchain.Zero, t0)); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			b, err := os.ReadFile(segs[0])
			if err != nil {
				t.Fatal(err)
			}
			off := 0
			for range 6 { // skip records 1-6
				off += 8 + int(binary.LittleEndian.Uint32(b[off:]))
			}
			n := int(binary.LittleEndian.Uint32(b[off:]))
			r := &auditv1.Record{}
			if err := proto.Unmarshal(b[off+8:off+8+n], r); err != nil {
				t.Fatal(err)
			}
			r.Agent = "AGENT"
			nb, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			copy(b[off+8:], nb)
			if fixCRC {
				binary.LittleEndian.PutUint32(b[off+4:], crc32.Checksum(nb, crc32.MakeTable(crc32.Castagnoli)))
			}
			if err := os.WriteFile(segs[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := s.Verify()
			if err != nil {
				t.Fatal(err)
			}
			if p := rep.Problem; p == nil || p.Dataplane != "dp1" || p.Sequence != 7 {
				t.Fatalf("verify after editing record 7: %+v", p)
			}
			if rep, _ := s.Ranges(t0, t0.Add(time.Hour)); rep.Problem == nil {
				t.Fatal("Ranges over a tampered store reported no problem")
			}
		})
	}
}

func TestQueryFiltersAndPages(t *testing.T) {
	s := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024})
	recs := chain(t, "dp1", 1, 50, auditchain.Zero, t0)
	for i, r := range recs {
		if i%2 == 0 {
			r.User = "alice"
		} else {
			r.User = "mallory"
		}
		sum, _, _ := auditchain.Hash(r, nil)
		r.Hash = sum[:]
		if i+1 < len(recs) {
			recs[i+1].PrevHash = r.Hash
		}
	}
	appendInBatches(t, s, recs)
	var got []*auditv1.Record
	tok := ""
	for pages := 0; ; pages++ {
		page, next, err := s.Query(auditstore.Filter{UserNotIn: map[string]bool{"alice": true}, From: t0.Add(11 * time.Second)}, tok, 7)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if next == "" {
			break
		}
		if pages > 20 {
			t.Fatal("pagination does not end")
		}
		tok = next
	}
	// Sequences 11..50 with user mallory: the even ones.
	if len(got) != 20 || got[0].GetSequence() != 12 || got[19].GetSequence() != 50 {
		t.Fatalf("query: %d records, first %d", len(got), got[0].GetSequence())
	}
	if _, _, err := s.Query(auditstore.Filter{}, "garbage!", 10); !errors.Is(err, auditstore.ErrBadPageToken) {
		t.Fatalf("bad token: %v", err)
	}
}

// TestRestoreRefusesANewerFormat: a snapshot whose magic names another
// version of the store's format is refused with an error that says a newer
// version wrote it; other bytes are simply not an audit snapshot.
func TestRestoreRefusesANewerFormat(t *testing.T) {
	tests := []struct {
		name, in, says string
	}{
		{"a newer format", "PCAUDS03\x00\x00\x00\x00", "written by a newer Portcullis version"},
		{"not a snapshot", "something else", "not an audit store snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, t.TempDir(), auditstore.Options{})
			err := s.Restore(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Restore = %v, want an error saying %q", err, tt.says)
			}
		})
	}
}

// TestQueryByTool: a tool is found under either of its names, in records
// that name it as agents do (tool) with the upstream's name beside it
// (target_own), and in records written before target_own existed (tool is
// the upstream's own name).
func TestQueryByTool(t *testing.T) {
	s := open(t, t.TempDir(), auditstore.Options{})
	shapes := []struct{ upstream, tool, own string }{
		{"bank", "bank__get_balance", "get_balance"}, // 1: current shape
		{"bank", "get_balance", ""},                  // 2: before target_own
		{"shop", "shop__get_balance", "get_balance"}, // 3: same own name, another upstream
		{"shop", "get_balance", ""},                  // 4: the same, older
		{"", "bank__nope", ""},                       // 5: unresolved (unknown tool)
		{"", "get_balance", ""},                      // 6: unresolved, bare name
		{"bank", "bank__transfer", "transfer"},       // 7: another tool
	}
	recs := chain(t, "dp1", 1, uint64(len(shapes)), auditchain.Zero, t0)
	for i, sh := range shapes {
		recs[i].Upstream, recs[i].Tool, recs[i].TargetOwn = sh.upstream, sh.tool, sh.own
		if i > 0 {
			recs[i].PrevHash = recs[i-1].Hash
		}
		sum, _, _ := auditchain.Hash(recs[i], nil)
		recs[i].Hash = sum[:]
	}
	appendInBatches(t, s, recs)
	tests := []struct {
		name     string
		filter   auditstore.Filter
		wantSeqs string
	}{
		{name: "agents' name, resolved", filter: auditstore.Filter{Tool: &auditstore.ToolFilter{Name: "bank__get_balance", Upstream: "bank", Own: "get_balance"}}, wantSeqs: "[1 2]"},
		{name: "upstream's name", filter: auditstore.Filter{Upstream: "bank", Tool: &auditstore.ToolFilter{Name: "bank__get_balance", Upstream: "bank", Own: "get_balance"}}, wantSeqs: "[1 2]"},
		{name: "agents' name only (not pinned now)", filter: auditstore.Filter{Tool: &auditstore.ToolFilter{Name: "bank__nope"}}, wantSeqs: "[5]"},
		{name: "own name of an unregistered upstream", filter: auditstore.Filter{Tool: &auditstore.ToolFilter{Upstream: "shop", Own: "get_balance"}}, wantSeqs: "[3 4]"},
		{name: "a bare name matches no older record of another upstream", filter: auditstore.Filter{Tool: &auditstore.ToolFilter{Name: "get_balance"}}, wantSeqs: "[6]"},
		{name: "upstream alone", filter: auditstore.Filter{Upstream: "bank"}, wantSeqs: "[1 2 7]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := s.Query(tt.filter, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, r := range got {
				seqs = append(seqs, r.GetSequence())
			}
			if fmt.Sprint(seqs) != tt.wantSeqs {
				t.Errorf("records %v, want %s", seqs, tt.wantSeqs)
			}
		})
	}
}
