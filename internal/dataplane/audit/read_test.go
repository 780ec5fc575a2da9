package audit_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// readBatch reads up to n records from seq on. With peek, it stops on the
// record after the n-th, as an uploader does when that record would
// overflow its batch, so the next read starts at a record already yielded.
func readBatch(t *testing.T, l *audit.Log, seq uint64, n int, peek bool) []*auditv1.Record {
	t.Helper()
	var out []*auditv1.Record
	for r, err := range l.ReadFrom(seq) {
		if err != nil {
			t.Fatalf("ReadFrom(%d): %v", seq, err)
		}
		if peek && len(out) == n {
			break
		}
		out = append(out, r)
		if !peek && len(out) == n {
			break
		}
	}
	return out
}

func TestReadFromInBatches(t *testing.T) {
	tests := []struct {
		name string
		// starts gives each batch's first sequence from the previous
		// batch's last (0 before the first batch).
		starts func(last uint64) uint64
		size   int
		peek   bool
	}{
		{name: "each batch after the last", starts: func(last uint64) uint64 { return last + 1 }, size: 7},
		{name: "stopped on the record after the batch", starts: func(last uint64) uint64 { return last + 1 }, size: 5, peek: true},
		{name: "batches overlap by one", starts: func(last uint64) uint64 { return max(last, 1) }, size: 9},
		{name: "batches skip one", starts: func(last uint64) uint64 { return min(last+2, 120) }, size: 4},
		{name: "one record at a time", starts: func(last uint64) uint64 { return last + 1 }, size: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, audit.Options{Dir: dir, SegmentSize: 2 << 10})
			write(t, l, 120)
			var last uint64
			for last < 120 {
				from := tt.starts(last)
				if from > 120 {
					break
				}
				got := readBatch(t, l, from, tt.size, tt.peek)
				if len(got) == 0 {
					t.Fatalf("ReadFrom(%d): no records, want some", from)
				}
				checkChain(t, got, from)
				last = got[len(got)-1].Sequence
			}
			if last != 120 {
				t.Fatalf("the batches ended at %d, want 120", last)
			}
			// A read from anywhere else still starts where it is asked.
			for _, from := range []uint64{1, 60, 119, 3} {
				got := readBatch(t, l, from, 3, false)
				checkChain(t, got, from)
			}
		})
	}
}

// TestReadFromContinuesWithoutRereading damages the first record of the
// segment after reading past it: a ReadFrom that continues where the last
// one stopped must not read it again, while a read from the segment's
// start must find the damage.
func TestReadFromContinuesWithoutRereading(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir})
	write(t, l, 50)
	if got := readBatch(t, l, 1, 30, false); len(got) != 30 {
		t.Fatalf("first batch: %d records, want 30", len(got))
	}
	seg := filepath.Join(dir, "00000000000000000001.seg")
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff}, 10); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := readBatch(t, l, 31, 100, false)
	checkChain(t, got, 31)
	if len(got) != 20 {
		t.Fatalf("continued read: %d records, want 20", len(got))
	}
	var readErr error
	for _, err := range l.ReadFrom(2) {
		if err != nil {
			readErr = err
		}
	}
	if readErr == nil {
		t.Fatal("ReadFrom(2) over a damaged first frame: no error, want one")
	}
}

// BenchmarkReadFromBatches reads a 20,000-record log in batches of 20, as
// the uploader does behind a durable log (each group commit makes a few
// more records readable): the cost per record must not grow with the
// records before the batch in its segment.
func BenchmarkReadFromBatches(b *testing.B) {
	const records, batch = 20_000, 20
	l, err := audit.Open(audit.Options{Dir: b.TempDir(), Async: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	for i := range records {
		if err := l.Write(b.Context(), record(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	l, err = audit.Open(audit.Options{Dir: l.Dir()})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		for next := uint64(1); next <= records; {
			n := 0
			for r, err := range l.ReadFrom(next) {
				if err != nil {
					b.Fatal(err)
				}
				next = r.Sequence + 1
				if n++; n == batch {
					break
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
}
