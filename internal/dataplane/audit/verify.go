package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Summary describes an intact log.
type Summary struct {
	// Segments is the number of segment files.
	Segments int
	// First and Last are the sequences of the first and last record (0
	// and 0 for an empty log). First is 1 unless older segments were
	// removed; the chain can then only be checked from First on.
	First, Last uint64
	// Head is the hash of the last record.
	Head []byte
}

// CorruptError names the first record at which a log is not intact.
type CorruptError struct {
	// Segment is the segment file and Offset the byte offset of the bad
	// frame in it.
	Segment string
	Offset  int64
	// Sequence is the bad record's sequence: the one it should have had
	// when its frame or sequence is damaged.
	Sequence uint64
	// Reason says what is wrong.
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("audit log not intact: record %d (%s offset %d): %s", e.Sequence, e.Segment, e.Offset, e.Reason)
}

// Verify checks the log in dir from its first record to its last: every
// frame is whole with a matching CRC, the sequence starts at the first
// segment's name and runs on without gaps across segments (each segment
// named after its first record), every prev_hash is the hash of the record
// before (32 zero bytes before sequence 1), and every hash is what the rule
// on auditv1.Record's hash field gives. The first violation is returned as
// a *CorruptError. Run it on a log no Log is appending to: a write in
// flight can look like a torn tail.
func Verify(dir string) (Summary, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Segments: len(segs)}
	var (
		prev    []byte
		want    uint64
		scratch []byte
	)
	for i, seg := range segs {
		if i == 0 {
			want = seg.first
			sum.First = seg.first
			if seg.first == 1 {
				prev = make([]byte, hashSize)
			}
		}
		bad := func(off int64, seq uint64, format string, args ...any) error {
			return &CorruptError{Segment: seg.path, Offset: off, Sequence: seq, Reason: fmt.Sprintf(format, args...)}
		}
		if seg.first != want {
			return sum, bad(0, want, "segment is named for sequence %d", seg.first)
		}
		f, err := os.Open(seg.path)
		if err != nil {
			return sum, fmt.Errorf("open audit segment: %w", err)
		}
		fr := newFrameReader(f)
		records := 0
		for {
			b, off, err := fr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				if isFrameError(err) {
					return sum, bad(off, want, "%v", err)
				}
				return sum, fmt.Errorf("read audit segment %s: %w", seg.path, err)
			}
			r := new(auditv1.Record)
			if err := proto.Unmarshal(b, r); err != nil {
				f.Close()
				return sum, bad(off, want, "record does not decode: %v", err)
			}
			if r.Sequence != want {
				f.Close()
				return sum, bad(off, want, "sequence is %d", r.Sequence)
			}
			if prev != nil && !bytes.Equal(r.PrevHash, prev) {
				f.Close()
				return sum, bad(off, want, "prev_hash does not match the hash of record %d", want-1)
			}
			if len(r.PrevHash) != hashSize {
				f.Close()
				return sum, bad(off, want, "prev_hash is %d bytes", len(r.PrevHash))
			}
			var h [hashSize]byte
			h, scratch, err = chainHash(r, scratch)
			if err != nil {
				f.Close()
				return sum, bad(off, want, "%v", err)
			}
			if !bytes.Equal(r.Hash, h[:]) {
				f.Close()
				return sum, bad(off, want, "hash does not match the record's contents")
			}
			prev = r.Hash
			sum.Last, sum.Head = want, r.Hash
			want++
			records++
		}
		f.Close()
		if records == 0 && i < len(segs)-1 {
			return sum, bad(0, want, "segment is empty but not the last")
		}
	}
	return sum, nil
}
