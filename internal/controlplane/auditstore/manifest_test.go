package auditstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
)

// sourceOf serves s's sealed segments as a peer does, counting the calls.
func sourceOf(s *auditstore.Store, calls *int) auditstore.Source {
	return func(_ context.Context, name string, w io.Writer) error {
		*calls++
		rc, _, err := s.OpenSealed(name)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(w, rc)
		return err
	}
}

// liar sends bytes that are not the segment's.
func liar(calls *int, body []byte) auditstore.Source {
	return func(_ context.Context, _ string, w io.Writer) error {
		*calls++
		_, err := w.Write(body)
		return err
	}
}

func files(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func manifest(t *testing.T, s *auditstore.Store) []byte {
	t.Helper()
	m, err := s.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSealedSegmentsHaveIndexesThatStartReads: every segment but the one
// appended to is sealed with an index file; a start takes the chains from
// the indexes (a sealed segment's damaged record does not change them,
// Verify still finds it) and rebuilds an index that is missing or damaged.
func TestSealedSegmentsHaveIndexesThatStartReads(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, auditstore.Options{SegmentSize: 1024})
	appendInBatches(t, s, chain(t, "dp1", 1, 40, auditchain.Zero, t0))
	appendInBatches(t, s, chain(t, "dp2", 1, 12, auditchain.Zero, t0))
	s.Close()
	segs, idxs := files(t, dir, "*.seg"), files(t, dir, "*.idx")
	if len(segs) < 4 || len(idxs) != len(segs)-1 {
		t.Fatalf("%d segments and %d indexes: every segment but the last must be sealed with an index", len(segs), len(idxs))
	}
	first := filepath.Join(dir, idxs[0])
	good, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		damage func(t *testing.T)
	}{
		{name: "indexes as written"},
		{name: "index missing", damage: func(t *testing.T) {
			if err := os.Remove(first); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "index damaged", damage: func(t *testing.T) {
			b := bytes.Clone(good)
			b[len(b)-3] ^= 0xff
			if err := os.WriteFile(first, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "index of another size", damage: func(t *testing.T) {
			if err := os.WriteFile(first, good[:len(good)/2], 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.damage != nil {
				tt.damage(t)
			}
			s := open(t, dir, auditstore.Options{SegmentSize: 1024})
			if s.Next("dp1") != 41 || s.Next("dp2") != 13 {
				t.Fatalf("next dp1 %d, dp2 %d; want 41 and 13", s.Next("dp1"), s.Next("dp2"))
			}
			mustVerify(t, s, map[string]uint64{"dp1": 40, "dp2": 12})
			s.Close()
			if b, err := os.ReadFile(first); err != nil || !bytes.Equal(b, good) {
				t.Fatalf("index after the start: %v; want it as written when sealed", err)
			}
		})
	}

	// A record damaged inside a sealed segment: the start does not read it
	// (the index says where the chains stand), Verify does.
	seg := filepath.Join(dir, segs[0])
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, auditstore.Options{SegmentSize: 1024})
	if s.Next("dp1") != 41 {
		t.Fatalf("next dp1 %d, want 41 from the index", s.Next("dp1"))
	}
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil {
		t.Fatal("Verify found no problem in a damaged sealed segment")
	}
}

// TestManifestRestore: a node restoring a manifest keeps the sealed
// segments it holds with the right hash, fetches the others (from the
// first peer that sends the right bytes), writes the open segment from the
// snapshot and removes every other segment; a failed fetch fails the
// restore and leaves the store as it was.
func TestManifestRestore(t *testing.T) {
	srcDir := t.TempDir()
	src := open(t, srcDir, auditstore.Options{SegmentSize: 1024})
	a := chain(t, "dp1", 1, 60, auditchain.Zero, t0)
	b := chain(t, "dp2", 1, 12, auditchain.Zero, t0)
	appendInBatches(t, src, a[:30])
	appendInBatches(t, src, b)
	early := manifest(t, src) // for a node that holds less
	appendInBatches(t, src, a[30:])
	snap := manifest(t, src)
	sealed := len(files(t, srcDir, "*.idx"))
	if len(snap) > 2048 {
		t.Fatalf("the manifest of %d sealed segments is %d bytes: it must carry their list and the open segment only", sealed, len(snap))
	}
	// Written after the snapshot: not in it.
	if _, err := src.Append("dp2", chain(t, "dp2", 13, 13, b[11].Hash, t0)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// prepare fills the restoring node's store.
		prepare func(t *testing.T, dst *auditstore.Store)
		sources func(calls *int) []auditstore.Source
		// wantCalls is how many fetches the restore makes.
		wantCalls int
		wantErr   string
	}{
		{
			name:      "empty node fetches every sealed segment",
			sources:   func(c *int) []auditstore.Source { return []auditstore.Source{sourceOf(src, c)} },
			wantCalls: sealed,
		},
		{
			name: "node holding part fetches only what it lacks",
			prepare: func(t *testing.T, dst *auditstore.Store) {
				if err := dst.Restore(bytes.NewReader(early), sourceOf(src, new(int))); err != nil {
					t.Fatal(err)
				}
			},
			sources:   func(c *int) []auditstore.Source { return []auditstore.Source{sourceOf(src, c)} },
			wantCalls: sealed - countSealed(t, early),
		},
		{
			name: "node holding all of it, in the same order, fetches nothing",
			prepare: func(t *testing.T, dst *auditstore.Store) {
				appendInBatches(t, dst, a[:30])
				appendInBatches(t, dst, b)
				appendInBatches(t, dst, a[30:])
			},
			wantCalls: 0,
		},
		{
			name: "first peer lies, the second has it",
			sources: func(c *int) []auditstore.Source {
				return []auditstore.Source{liar(c, []byte("not the segment")), sourceOf(src, c)}
			},
			wantCalls: 2 * sealed,
		},
		{
			name: "every peer sends the wrong bytes",
			prepare: func(t *testing.T, dst *auditstore.Store) {
				appendInBatches(t, dst, a[:5])
			},
			sources:   func(c *int) []auditstore.Source { return []auditstore.Source{liar(c, []byte("x"))} },
			wantCalls: 1,
			wantErr:   "with the snapshot's hash",
		},
		{
			name:      "a peer sends more than the segment",
			sources:   func(c *int) []auditstore.Source { return []auditstore.Source{liar(c, make([]byte, 1<<20))} },
			wantCalls: 1,
			wantErr:   "more bytes than the segment has",
		},
		{
			name:    "no peer to fetch from",
			wantErr: "no peer to fetch it from",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := open(t, dir, auditstore.Options{SegmentSize: 1024})
			if tt.prepare != nil {
				tt.prepare(t, dst)
			}
			before := [2]uint64{dst.Next("dp1"), dst.Next("dp2")}
			calls := 0
			var sources []auditstore.Source
			if tt.sources != nil {
				sources = tt.sources(&calls)
			}
			err := dst.Restore(bytes.NewReader(snap), sources...)
			if calls != tt.wantCalls {
				t.Errorf("%d fetches, want %d", calls, tt.wantCalls)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Restore = %v, want an error saying %q", err, tt.wantErr)
				}
				if got := [2]uint64{dst.Next("dp1"), dst.Next("dp2")}; got != before {
					t.Fatalf("after a failed restore the store expects %v, want %v as before", got, before)
				}
				if stray := files(t, dir, "*.fetch"); len(stray) > 0 {
					t.Fatalf("a failed restore left %v", stray)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mustVerify(t, dst, map[string]uint64{"dp1": 60, "dp2": 12})
			if dst.Next("dp1") != 61 || dst.Next("dp2") != 13 {
				t.Fatalf("next dp1 %d, dp2 %d", dst.Next("dp1"), dst.Next("dp2"))
			}
			// The node goes on from there, and its segments are the
			// source's.
			if _, err := dst.Append("dp2", chain(t, "dp2", 13, 13, b[11].Hash, t0)); err != nil {
				t.Fatal(err)
			}
			for _, name := range files(t, srcDir, "*.seg") {
				want, _ := os.ReadFile(filepath.Join(srcDir, name))
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("segment %s differs from the source's (%v)", name, err)
				}
			}
			dst.Close()
			again := open(t, dir, auditstore.Options{SegmentSize: 1024})
			mustVerify(t, again, map[string]uint64{"dp1": 60, "dp2": 13})
		})
	}
}

// countSealed counts the sealed segments a manifest names.
func countSealed(t *testing.T, snap []byte) int {
	t.Helper()
	return strings.Count(string(snap), `"sha256"`) - 1
}

// TestManifestRestoreDropsWhatRetentionDropped: a node holding more old
// segments than the snapshot names (its writer's retention dropped them)
// removes them and continues the chains from the snapshot's base.
func TestManifestRestoreDropsWhatRetentionDropped(t *testing.T) {
	now := t0.Add(time.Hour)
	leader := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024, Retention: 30 * time.Minute})
	follower := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024, Retention: 30 * time.Minute})
	old := chain(t, "dp1", 1, 40, auditchain.Zero, t0)
	recent := chain(t, "dp1", 41, 80, old[39].Hash, now)
	for _, s := range []*auditstore.Store{leader, follower} {
		appendInBatches(t, s, old)
		appendInBatches(t, s, recent)
	}
	if n, err := leader.Prune(now); err != nil || n == 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	calls := 0
	if err := follower.Restore(bytes.NewReader(manifest(t, leader)), sourceOf(leader, &calls)); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatalf("%d fetches for segments the follower holds", calls)
	}
	lv, err := leader.Verify()
	if err != nil {
		t.Fatal(err)
	}
	fv, err := follower.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if fv.Problem != nil || len(fv.Chains) != 1 || fv.Chains[0].First != lv.Chains[0].First || fv.Chains[0].Records != lv.Chains[0].Records {
		t.Fatalf("follower after restore: %+v (%v); leader %+v", fv.Chains, fv.Problem, lv.Chains)
	}
	if fv.Chains[0].First == 1 {
		t.Fatal("the follower kept the segments the leader's retention dropped")
	}
}

// TestManifestRestoreRefusesBadHeaders: a header that does not decode or
// names impossible segments is refused before anything is fetched.
func TestManifestRestoreRefusesBadHeaders(t *testing.T) {
	sum := strings.Repeat("A", 43) + "="
	tests := []struct{ name, hdr string }{
		{"not JSON", "{"},
		{"no open segment", `{"sealed":[]}`},
		{"sealed after the open one", `{"sealed":[{"id":5,"size":1,"sha256":"` + sum + `"}],"open":{"id":2,"size":0,"sha256":"` + sum + `"}}`},
		{"out of order", `{"sealed":[{"id":3,"size":1,"sha256":"` + sum + `"},{"id":2,"size":1,"sha256":"` + sum + `"}],"open":{"id":9,"size":0,"sha256":"` + sum + `"}}`},
		{"short hash", `{"open":{"id":1,"size":0,"sha256":"AAAA"}}`},
		{"negative size", `{"open":{"id":1,"size":-1,"sha256":"` + sum + `"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, t.TempDir(), auditstore.Options{})
			calls := 0
			err := s.Restore(bytes.NewReader(manifestBytes(tt.hdr, nil)), liar(&calls, nil))
			if err == nil || calls != 0 {
				t.Fatalf("Restore = %v after %d fetches, want a refusal before any", err, calls)
			}
		})
	}
}

// manifestBytes frames hdr (and the open segment's bytes) as a manifest.
func manifestBytes(hdr string, open []byte) []byte {
	b := []byte("PCAUDS02")
	n := len(hdr)
	b = append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	return append(append(b, hdr...), open...)
}

// FuzzRestoreManifest: whatever a manifest holds, Restore returns without
// panicking, and the store is still usable.
func FuzzRestoreManifest(f *testing.F) {
	sum := strings.Repeat("A", 43) + "="
	f.Add(`{"open":{"id":1,"size":0,"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}`, []byte{})
	f.Add(`{"sealed":[{"id":1,"size":3,"sha256":"`+sum+`"}],"open":{"id":2,"size":2,"sha256":"`+sum+`"}}`, []byte("ab"))
	f.Add(`{"base":{"dp1":{"next":5,"head":"AAAA"}},"open":{"id":1,"size":0,"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}`, []byte{})
	f.Fuzz(func(t *testing.T, hdr string, open []byte) {
		s, err := auditstore.Open(auditstore.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_ = s.Restore(bytes.NewReader(manifestBytes(hdr, open)), liar(new(int), open))
		if _, err := s.Append("dp9", chain(t, "dp9", s.Next("dp9"), s.Next("dp9"), auditchain.Zero, t0)); err != nil && !errors.Is(err, auditstore.ErrChain) {
			t.Fatalf("the store is not usable after a restore: %v", err)
		}
	})
}

// TestSealedLastSegmentIsNotAppendedTo: a crash between sealing a segment
// and starting the next leaves a sealed last segment; the next start
// appends to a new one and the sealed one stays as its index says.
func TestSealedLastSegmentIsNotAppendedTo(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, auditstore.Options{SegmentSize: 1024})
	recs := chain(t, "dp1", 1, 40, auditchain.Zero, t0)
	appendInBatches(t, s, recs[:30])
	s.Close()
	segs := files(t, dir, "*.seg")
	last := filepath.Join(dir, segs[len(segs)-1])
	if st, err := os.Stat(last); err != nil || st.Size() != 0 {
		t.Fatalf("the newest segment: %v, %d bytes; want the empty one after a seal", err, st.Size())
	}
	if err := os.Remove(last); err != nil { // the crash: no next segment yet
		t.Fatal(err)
	}
	sealed := filepath.Join(dir, segs[len(segs)-2])
	before, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, auditstore.Options{SegmentSize: 1024})
	appendInBatches(t, s, recs[30:])
	after, err := os.ReadFile(sealed)
	if err != nil || !bytes.Equal(after, before) {
		t.Fatalf("the sealed segment changed (%v)", err)
	}
	mustVerify(t, s, map[string]uint64{"dp1": 40})
}

// TestManifestRestoreAfterLocalRetention: a node whose retention dropped
// segments after its snapshot was taken (a restart restores that
// snapshot) or before it fell behind does not fetch them again: it keeps
// its cut, and the restore succeeds without any peer.
func TestManifestRestoreAfterLocalRetention(t *testing.T) {
	now := t0.Add(time.Hour)
	old := chain(t, "dp1", 1, 40, auditchain.Zero, t0)
	recent := chain(t, "dp1", 41, 80, old[39].Hash, now)
	tests := []struct {
		name string
		// more appends records to the node after its snapshot.
		more bool
	}{
		{name: "own snapshot at restart"},
		{name: "own snapshot, records since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024, Retention: 30 * time.Minute})
			appendInBatches(t, s, old)
			appendInBatches(t, s, recent[:20])
			snap := manifest(t, s)
			if tt.more {
				appendInBatches(t, s, recent[20:])
			}
			if n, err := s.Prune(now); err != nil || n == 0 {
				t.Fatalf("prune: %d, %v", n, err)
			}
			before, err := s.Verify()
			if err != nil || before.Problem != nil {
				t.Fatalf("before: %v %v", err, before.Problem)
			}
			calls := 0
			if err := s.Restore(bytes.NewReader(snap), liar(&calls, nil)); err != nil {
				t.Fatal(err)
			}
			if calls != 0 {
				t.Fatalf("%d fetches of segments this node's retention dropped", calls)
			}
			after, err := s.Verify()
			if err != nil || after.Problem != nil || len(after.Chains) != 1 || after.Chains[0].First != before.Chains[0].First ||
				after.Chains[0].Last != before.Chains[0].Last || after.Chains[0].Records != before.Chains[0].Records {
				t.Fatalf("after the restore: %+v (%v); before %+v", after.Chains, after.Problem, before.Chains)
			}
		})
	}

	// A follower whose retention ran, then fell behind: it fetches only
	// what it lacks and is newer than its cut.
	leader := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024, Retention: 30 * time.Minute})
	follower := open(t, t.TempDir(), auditstore.Options{SegmentSize: 1024, Retention: 30 * time.Minute})
	appendInBatches(t, leader, old)
	appendInBatches(t, leader, recent)
	appendInBatches(t, follower, old)
	appendInBatches(t, follower, recent[:5])
	if n, err := follower.Prune(now); err != nil || n == 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	calls := 0
	if err := follower.Restore(bytes.NewReader(manifest(t, leader)), sourceOf(leader, &calls)); err != nil {
		t.Fatal(err)
	}
	if follower.Next("dp1") != 81 {
		t.Fatalf("the follower expects %d next, want 81", follower.Next("dp1"))
	}
	rep, err := follower.Verify()
	if err != nil || rep.Problem != nil {
		t.Fatalf("follower: %v %v", err, rep.Problem)
	}
	if calls == 0 || rep.Chains[0].First == 1 {
		t.Fatalf("%d fetches, chain %+v: want the newer segments fetched and the dropped ones not", calls, rep.Chains[0])
	}
}
