package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// sampleLog is the first segment of a log of n records.
func sampleLog(tb testing.TB, n int) []byte {
	tb.Helper()
	dir := tb.TempDir()
	l, err := Open(Options{Dir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if err := l.Write(context.Background(), &auditv1.Record{Agent: "a", Tool: "t", ResponseBytes: int64(i)}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, segmentName(1)))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzDecodeFrames feeds arbitrary bytes to the frame decoder: it must not
// panic, must report frames that are exactly what appendFrame would write
// for their record, and must stop with io.EOF only at the end of the input.
func FuzzDecodeFrames(f *testing.F) {
	good := sampleLog(f, 3)
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(append(bytes.Clone(good), 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bytes.NewReader(data))
		var prevEnd int64
		for {
			rec, off, err := fr.Next()
			if off != prevEnd {
				t.Fatalf("frame at %d, want %d", off, prevEnd)
			}
			if errors.Is(err, io.EOF) {
				if off != int64(len(data)) {
					t.Fatalf("EOF at %d of %d bytes", off, len(data))
				}
				return
			}
			if err != nil {
				if !isFrameError(err) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var hdr [frameHeaderSize]byte
			putFrameHeader(hdr[:], rec)
			end := off + frameHeaderSize + int64(len(rec))
			if !bytes.Equal(data[off:end], append(hdr[:], rec...)) {
				t.Fatalf("frame at %d does not re-encode to its bytes", off)
			}
			// A decodable record must survive a round trip through the
			// deterministic encoding it is hashed in.
			var r auditv1.Record
			if proto.Unmarshal(rec, &r) == nil {
				if _, err := deterministic.Marshal(&r); err != nil {
					t.Fatalf("re-encode: %v", err)
				}
			}
			prevEnd = end
		}
	})
}

// FuzzRecover opens a log whose only segment holds arbitrary bytes: Open
// must not panic, and whatever it keeps must be a log Verify accepts and a
// new record can be chained to.
func FuzzRecover(f *testing.F) {
	good := sampleLog(f, 3)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 1, 2, 3))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(Options{Dir: dir})
		if err != nil {
			return // refusing is fine; panicking is not
		}
		r := &auditv1.Record{Agent: "after"}
		werr := l.Write(context.Background(), r)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if werr != nil {
			t.Fatalf("Write after recovery: %v", werr)
		}
		if _, err := Verify(dir); err != nil {
			// Recovery keeps whole frames that run on and link; it does
			// not recompute hashes, so Verify may still name a kept
			// record, but never a damaged frame or the new record.
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Sequence >= r.Sequence || isFrameReason(ce.Reason) {
				t.Fatalf("Verify after recovery: %v", err)
			}
		}
	})
}

func isFrameReason(reason string) bool {
	for _, e := range []error{errTorn, errBadLength, errBadCRC} {
		if reason == e.Error() {
			return true
		}
	}
	return false
}
