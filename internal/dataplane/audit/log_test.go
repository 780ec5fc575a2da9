package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func open(t *testing.T, opts audit.Options) *audit.Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	l, err := audit.Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func record(i int) *auditv1.Record {
	return &auditv1.Record{
		Time:      timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, i, time.UTC)),
		Dataplane: "dp-1",
		Agent:     fmt.Sprintf("agent-%03d", i%1000),
		Protocol:  "mcp",
		Method:    "tools/call",
		Upstream:  "payments",
		Tool:      "send_payment",
		Decision:  "allow",
		Policies:  []string{"p1", "p2"},
		Outcome:   "ok",
	}
}

func write(t *testing.T, l *audit.Log, n int) []*auditv1.Record {
	t.Helper()
	var out []*auditv1.Record
	for i := range n {
		r := record(i)
		if err := l.Write(context.Background(), r); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		out = append(out, r)
	}
	return out
}

func readAll(t *testing.T, dir string, from uint64) []*auditv1.Record {
	t.Helper()
	var out []*auditv1.Record
	for r, err := range audit.ReadDir(dir, from) {
		if err != nil {
			t.Fatalf("ReadDir: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// wantHash is the chain rule as written on auditv1.Record's hash field,
// implemented here independently of the package.
func wantHash(t *testing.T, r *auditv1.Record) []byte {
	t.Helper()
	c := proto.Clone(r).(*auditv1.Record)
	c.Hash = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write([]byte("portcullis.audit.v1.Record\n"))
	h.Write(r.PrevHash)
	h.Write(b)
	return h.Sum(nil)
}

// checkChain checks recs are sequences from..from+len-1 linked per the
// documented rule.
func checkChain(t *testing.T, recs []*auditv1.Record, from uint64) {
	t.Helper()
	prev := make([]byte, 32)
	for i, r := range recs {
		if want := from + uint64(i); r.Sequence != want {
			t.Fatalf("record %d: sequence %d, want %d", i, r.Sequence, want)
		}
		if (i > 0 || from == 1) && !bytes.Equal(r.PrevHash, prev) {
			t.Fatalf("record %d: prev_hash %x, want %x", r.Sequence, r.PrevHash, prev)
		}
		if h := wantHash(t, r); !bytes.Equal(r.Hash, h) {
			t.Fatalf("record %d: hash %x, want %x", r.Sequence, r.Hash, h)
		}
		prev = r.Hash
	}
}

func mustVerify(t *testing.T, dir string, last uint64) audit.Summary {
	t.Helper()
	sum, err := audit.Verify(dir)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if sum.Last != last {
		t.Fatalf("Verify: last sequence %d, want %d", sum.Last, last)
	}
	return sum
}

func TestConcurrentWritersGapFreeChain(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, audit.Options{Dir: dir, Async: async, SyncInterval: 5 * time.Millisecond, SegmentSize: 16 << 10})
			const writers, each = 16, 60
			var (
				mu   sync.Mutex
				seqs []uint64
				wg   sync.WaitGroup
			)
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						r := record(w*each + i)
						if err := l.Write(context.Background(), r); err != nil {
							t.Errorf("Write: %v", err)
							return
						}
						mu.Lock()
						seqs = append(seqs, r.Sequence)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			slices.Sort(seqs)
			for i, s := range seqs {
				if s != uint64(i+1) {
					t.Fatalf("returned sequences are not 1..%d: %d at %d", writers*each, s, i)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			sum := mustVerify(t, dir, writers*each)
			if sum.First != 1 || sum.Segments < 2 {
				t.Errorf("summary %+v: want first 1 and several segments", sum)
			}
			recs := readAll(t, dir, 1)
			if len(recs) != writers*each {
				t.Fatalf("read %d records, want %d", len(recs), writers*each)
			}
			checkChain(t, recs, 1)
			if !bytes.Equal(sum.Head, recs[len(recs)-1].Hash) {
				t.Errorf("summary head %x, want the last record's hash", sum.Head)
			}
		})
	}
}

func TestWriteSetsChainFieldsOnTheCallersRecord(t *testing.T) {
	l := open(t, audit.Options{Dir: t.TempDir()})
	r := record(1)
	r.Sequence, r.Hash = 99, []byte("forged")
	if err := l.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Sequence != 1 || !bytes.Equal(r.PrevHash, make([]byte, 32)) || !bytes.Equal(r.Hash, wantHash(t, r)) {
		t.Errorf("record after Write: sequence %d prev %x hash %x", r.Sequence, r.PrevHash, r.Hash)
	}
	if got := l.Durable(); got != 1 {
		t.Errorf("Durable() = %d, want 1", got)
	}
}

func TestReopenContinuesSequenceAndChain(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, SegmentSize: 2 << 10})
	first := write(t, l, 30)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, audit.Options{Dir: dir, SegmentSize: 2 << 10})
	second := write(t, l, 10)
	if second[0].Sequence != 31 || !bytes.Equal(second[0].PrevHash, first[29].Hash) {
		t.Fatalf("after reopen: sequence %d prev %x, want 31 and %x", second[0].Sequence, second[0].PrevHash, first[29].Hash)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir, 40)
	checkChain(t, readAll(t, dir, 1), 1)
}

// segments lists dir's segment files in order.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// frames returns the offsets of the frames in a segment, parsed per the
// documented format.
func frames(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := 0; off+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if off+8+n > len(b) {
			break
		}
		if crc32.Checksum(b[off+8:off+8+n], crc32.MakeTable(crc32.Castagnoli)) != binary.LittleEndian.Uint32(b[off+4:]) {
			t.Fatalf("%s: frame at %d: bad CRC", path, off)
		}
		offs = append(offs, int64(off))
		off += 8 + n
	}
	return offs
}

func TestRecoveryCutsADamagedTail(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, offs []int64) // on a segment of 10 records
		kept   uint64
	}{
		{"frame cut mid-record", func(t *testing.T, path string, offs []int64) {
			truncate(t, path, offs[9]+20)
		}, 9},
		{"frame cut mid-header", func(t *testing.T, path string, offs []int64) {
			truncate(t, path, offs[9]+3)
		}, 9},
		{"garbage appended", func(t *testing.T, path string, _ []int64) {
			appendBytes(t, path, []byte("this is not a frame at all, just noise"))
		}, 10},
		{"zeroed blocks appended", func(t *testing.T, path string, _ []int64) {
			appendBytes(t, path, make([]byte, 4096))
		}, 10},
		{"last record's CRC wrong", func(t *testing.T, path string, offs []int64) {
			flip(t, path, offs[9]+30)
		}, 9},
		{"length too large", func(t *testing.T, path string, _ []int64) {
			appendBytes(t, path, []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1, 2, 3})
		}, 10},
		{"everything cut", func(t *testing.T, path string, _ []int64) {
			truncate(t, path, 5)
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, audit.Options{Dir: dir})
			written := write(t, l, 10)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			seg := segments(t, dir)[0]
			tt.damage(t, seg, frames(t, seg))

			l = open(t, audit.Options{Dir: dir})
			r := record(100)
			if err := l.Write(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if r.Sequence != tt.kept+1 {
				t.Errorf("first record after recovery has sequence %d, want %d", r.Sequence, tt.kept+1)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, dir, tt.kept+1)
			recs := readAll(t, dir, 1)
			checkChain(t, recs, 1)
			for i := range tt.kept {
				if !proto.Equal(recs[i], written[i]) {
					t.Errorf("record %d changed in recovery", i+1)
				}
			}
			if cut, _ := filepath.Glob(seg + ".cut-*"); len(cut) != 1 {
				t.Errorf("the cut tail was not set aside: %v", cut)
			}
		})
	}
}

func TestRecoveryAfterACrashRightAfterRotation(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, SegmentSize: 1 << 10})
	write(t, l, 20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir)
	last := segs[len(segs)-1]
	truncate(t, last, 0) // the new segment was created, its first frame lost
	l = open(t, audit.Options{Dir: dir, SegmentSize: 1 << 10})
	r := record(0)
	if err := l.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	sum := mustVerify(t, dir, r.Sequence)
	if sum.Last >= 21 {
		t.Errorf("last sequence %d: the lost records should have been reused", sum.Last)
	}
}

func TestVerifyNamesTheFirstBadRecord(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, offs []int64)
		seq    uint64
		frame  int // index of the frame named
		reason string
	}{
		{"byte flipped mid-record", func(t *testing.T, path string, offs []int64) {
			flip(t, path, offs[11]+40)
		}, 12, 11, "CRC"},
		{"record edited and CRC fixed", func(t *testing.T, path string, offs []int64) {
			rewrite(t, path, offs, 11, func(r *auditv1.Record) { r.Agent = "agent-999" })
		}, 12, 11, "hash does not match"},
		{"record edited, hash and CRC fixed", func(t *testing.T, path string, offs []int64) {
			rewrite(t, path, offs, 11, func(r *auditv1.Record) {
				r.Outcome = "no" // the same length: later offsets stay
				r.Hash = wantHash(t, r)
			})
		}, 13, 12, "prev_hash"},
		{"record removed", func(t *testing.T, path string, offs []int64) {
			b, _ := os.ReadFile(path)
			b = append(b[:offs[11]:offs[11]], b[offs[12]:]...)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 12, 11, "sequence is 13"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, audit.Options{Dir: dir})
			write(t, l, 20)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			seg := segments(t, dir)[0]
			offs := frames(t, seg)
			tt.damage(t, seg, offs)
			_, err := audit.Verify(dir)
			var ce *audit.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify: %v, want a *CorruptError", err)
			}
			if ce.Sequence != tt.seq || ce.Offset != offs[tt.frame] || ce.Segment != seg || !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("Verify: %v; want record %d at offset %d, reason with %q", err, tt.seq, offs[tt.frame], tt.reason)
			}
		})
	}
}

func TestVerifyChecksAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, SegmentSize: 1 << 10})
	write(t, l, 40)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	if err := os.Remove(segs[1]); err != nil {
		t.Fatal(err)
	}
	_, err := audit.Verify(dir)
	var ce *audit.CorruptError
	if !errors.As(err, &ce) || ce.Segment != segs[2] || ce.Offset != 0 {
		t.Fatalf("Verify with a segment removed: %v", err)
	}
}

// failingFile fails writes or fsyncs once told to.
type failingFile struct {
	audit.File
	failWrite, failSync *atomic.Bool
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.failWrite.Load() {
		return 0, errors.New("injected write failure")
	}
	return f.File.Write(p)
}

func (f failingFile) Sync() error {
	if f.failSync.Load() {
		return errors.New("injected fsync failure")
	}
	return f.File.Sync()
}

func TestFailsClosed(t *testing.T) {
	for _, what := range []string{"write", "fsync"} {
		t.Run(what, func(t *testing.T) {
			dir := t.TempDir()
			var failWrite, failSync atomic.Bool
			opts := audit.Options{Dir: dir}
			audit.WrapFiles(&opts, func(f audit.File) audit.File {
				return failingFile{File: f, failWrite: &failWrite, failSync: &failSync}
			})
			l := open(t, opts)
			write(t, l, 5)
			if what == "write" {
				failWrite.Store(true)
			} else {
				failSync.Store(true)
			}
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if err := l.Write(context.Background(), record(0)); !errors.Is(err, audit.ErrFailed) {
						t.Errorf("Write after an injected %s failure: %v, want ErrFailed", what, err)
					}
				})
			}
			wg.Wait()
			// The failure is for good, even once the disk works again.
			failWrite.Store(false)
			failSync.Store(false)
			err := l.Write(context.Background(), record(0))
			if !errors.Is(err, audit.ErrFailed) || !strings.Contains(err.Error(), "injected "+what) {
				t.Errorf("later Write: %v, want ErrFailed naming the cause", err)
			}
			if got := l.Durable(); got != 5 {
				t.Errorf("Durable() = %d, want 5", got)
			}
			_ = l.Close()
			l = open(t, audit.Options{Dir: dir})
			r := record(0)
			if err := l.Write(context.Background(), r); err != nil {
				t.Fatalf("Write after reopening: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, dir, r.Sequence)
		})
	}
}

func TestFailsClosedWhenRotationCannotCreateASegment(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, SegmentSize: 1 << 10})
	write(t, l, 3)
	// A directory where the next segment would go makes its creation fail,
	// even as root.
	for i := 4; ; i++ {
		if err := os.Mkdir(fmt.Sprintf("%s/%020d.seg", dir, i), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := l.Write(context.Background(), record(i)); err != nil {
			if !errors.Is(err, audit.ErrFailed) {
				t.Fatalf("Write: %v, want ErrFailed", err)
			}
			break
		}
		if i > 100 {
			t.Fatal("no rotation after 100 records of a 1 KiB segment")
		}
	}
	if err := l.Write(context.Background(), record(0)); !errors.Is(err, audit.ErrFailed) {
		t.Errorf("later Write: %v, want ErrFailed", err)
	}
}

func TestRefusesAnOversizedRecord(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir})
	big := record(0)
	big.ArgumentsJson = strings.Repeat("x", audit.MaxRecordSize)
	err := l.Write(context.Background(), big)
	if !errors.Is(err, audit.ErrRecordTooLarge) {
		t.Fatalf("Write of a %d-byte record: %v, want ErrRecordTooLarge", proto.Size(big), err)
	}
	if big.Sequence != 0 || big.Hash != nil {
		t.Errorf("refused record got sequence %d", big.Sequence)
	}
	r := record(1)
	if err := l.Write(context.Background(), r); err != nil || r.Sequence != 1 {
		t.Fatalf("Write after a refusal: sequence %d, %v; want 1 and no error", r.Sequence, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir, 1)
}

func TestAsyncReadFromSeesOnlyFsyncedRecords(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, Async: true, SyncInterval: 10 * time.Millisecond, SegmentSize: 4 << 10})
	write(t, l, 100)
	deadline := time.Now().Add(5 * time.Second)
	for l.Durable() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("Durable() = %d after 5s, want 100", l.Durable())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var recs []*auditv1.Record
	for r, err := range l.ReadFrom(37) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 64 || recs[0].Sequence != 37 {
		t.Fatalf("ReadFrom(37): %d records from %d, want 64 from 37", len(recs), recs[0].GetSequence())
	}
	checkChain(t, recs, 37)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir, 100)
}

func TestReadFromWhileWriting(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, SegmentSize: 2 << 10})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := l.Write(ctx, record(i)); err != nil {
				if ctx.Err() == nil {
					t.Errorf("Write: %v", err)
				}
				return
			}
		}
	})
	var next uint64 = 1
	for next < 300 {
		durable := l.Durable()
		for r, err := range l.ReadFrom(next) {
			if err != nil {
				t.Fatal(err)
			}
			if r.Sequence != next {
				t.Fatalf("ReadFrom: sequence %d, want %d", r.Sequence, next)
			}
			next++
		}
		if next <= durable {
			t.Fatalf("ReadFrom stopped at %d, before the durable %d", next, durable)
		}
	}
	cancel()
	wg.Wait()
}

func TestReadFromPartialAndStop(t *testing.T) {
	dir := t.TempDir()
	l := open(t, audit.Options{Dir: dir, SegmentSize: 1 << 10})
	write(t, l, 50)
	n := 0
	for r, err := range l.ReadFrom(0) {
		if err != nil || r.Sequence != uint64(n+1) {
			t.Fatalf("record %d: %v %v", n, r.GetSequence(), err)
		}
		n++
		if n == 20 {
			break
		}
	}
	if got := len(readAll(t, dir, 51)); got != 0 {
		t.Errorf("ReadDir past the end: %d records", got)
	}
	if got := readAll(t, dir, 50); len(got) != 1 || got[0].Sequence != 50 {
		t.Errorf("ReadDir(50): %d records", len(got))
	}
}

func TestWriteAfterClose(t *testing.T) {
	l := open(t, audit.Options{Dir: t.TempDir()})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(context.Background(), record(0)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rewrite replaces frame i of a segment with an edited record in a valid
// frame, as someone who knows the format would.
func rewrite(t *testing.T, path string, offs []int64, i int, edit func(*auditv1.Record)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := int64(len(b))
	if i+1 < len(offs) {
		end = offs[i+1]
	}
	var r auditv1.Record
	if err := proto.Unmarshal(b[offs[i]+8:end], &r); err != nil {
		t.Fatal(err)
	}
	edit(&r)
	rec, err := proto.MarshalOptions{Deterministic: true}.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	frame := binary.LittleEndian.AppendUint32(nil, uint32(len(rec)))
	frame = binary.LittleEndian.AppendUint32(frame, crc32.Checksum(rec, crc32.MakeTable(crc32.Castagnoli)))
	frame = append(frame, rec...)
	out := append(append(slices.Clone(b[:offs[i]]), frame...), b[end:]...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
