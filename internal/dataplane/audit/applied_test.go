package audit_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

func applied(cluster string, epoch, version uint64) *auditv1.AppliedVersion {
	return &auditv1.AppliedVersion{ClusterId: cluster, Epoch: epoch, Version: version}
}

func writeApplied(t *testing.T, l *audit.Log, v *auditv1.AppliedVersion) {
	t.Helper()
	if err := l.Write(context.Background(), audit.AppliedRecord("dp-1", "normal", v, time.Now())); err != nil {
		t.Fatalf("write the configuration record: %v", err)
	}
}

func wantApplied(t *testing.T, l *audit.Log, want *auditv1.AppliedVersion, when string) {
	t.Helper()
	if got := l.Applied(); !proto.Equal(got, want) {
		t.Fatalf("%s: Applied() = %v, want %v", when, got, want)
	}
}

// segmentRecords decodes every record of one segment file.
func segmentRecords(t *testing.T, path string) []*auditv1.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*auditv1.Record
	for _, off := range frames(t, path) {
		n := int(b[off]) | int(b[off+1])<<8 | int(b[off+2])<<16 | int(b[off+3])<<24
		r := &auditv1.Record{}
		if err := proto.Unmarshal(b[off+8:off+8+int64(n)], r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestAppliedVersionIsKeptInTheChain: the newest configuration record is
// the log's applied version, also after reopening; every segment started
// after one was written begins with a carried copy (so reopening reads only
// the last segment), which the chain covers like any record and the export
// hook sees in sequence order; and a crash that loses the copy right after
// a rotation still finds the version in the segment before.
func TestAppliedVersionIsKeptInTheChain(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var seen []uint64
	opts := audit.Options{Dir: dir, SegmentSize: 1 << 10, OnCommit: func(r *auditv1.Record) {
		mu.Lock()
		seen = append(seen, r.GetSequence())
		mu.Unlock()
	}}
	l := open(t, opts)
	write(t, l, 3)
	wantApplied(t, l, nil, "a log without configuration records")
	v1, v2 := applied("c1", 1, 10), applied("c1", 2, 4)
	writeApplied(t, l, v1)
	wantApplied(t, l, v1, "after the first configuration record")
	write(t, l, 30)
	writeApplied(t, l, v2)
	wantApplied(t, l, v2, "after a newer one")
	write(t, l, 30)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	recs := readAll(t, dir, 1)
	checkChain(t, recs, 1)
	mustVerify(t, dir, uint64(len(recs)))
	mu.Lock()
	for i, s := range seen {
		if s != uint64(i)+1 {
			t.Fatalf("the export hook saw sequence %d at position %d (all: %v)", s, i, seen)
		}
	}
	if len(seen) != len(recs) {
		t.Fatalf("the export hook saw %d records, the log holds %d", len(seen), len(recs))
	}
	mu.Unlock()

	segs := segments(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments; the test needs rotations", len(segs))
	}
	var carried int
	newest := (*auditv1.AppliedVersion)(nil)
	for i, seg := range segs {
		in := segmentRecords(t, seg)
		if newest != nil {
			// A segment started after a configuration record holds it,
			// right after its first record.
			if len(in) < 2 || in[1].GetMethod() != audit.MethodCarry || !proto.Equal(in[1].GetApplied(), newest) {
				t.Fatalf("segment %d does not start with a copy of %v: %v", i, newest, in[:min(2, len(in))])
			}
			carried++
		}
		for _, r := range in {
			if r.GetMethod() == audit.MethodApply {
				newest = r.GetApplied()
			}
		}
	}
	t.Logf("%d records in %d segments, %d of them starting with a carried copy", len(recs), len(segs), carried)

	l = open(t, opts)
	wantApplied(t, l, v2, "after reopening")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash right after a rotation: the new segment kept its first
	// record but lost the copy after it.
	last := segs[len(segs)-1]
	truncate(t, last, frames(t, last)[1])
	l = open(t, opts)
	wantApplied(t, l, v2, "after losing the last segment's copy")
	write(t, l, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkChain(t, readAll(t, dir, 1), 1)
}

// TestAppliedIsNoneInAnOldLog: a log written before configuration records
// existed has no applied version, however many segments it has.
func TestAppliedIsNoneInAnOldLog(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, SegmentSize: 1 << 10})
	write(t, l, 40)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, audit.Options{Dir: dir, SegmentSize: 1 << 10})
	wantApplied(t, l, nil, "an old log")
	for _, seg := range segments(t, dir) {
		for _, r := range segmentRecords(t, seg) {
			if r.GetApplied() != nil {
				t.Fatalf("a log that never got a configuration record holds one: %v", r)
			}
		}
	}
}
