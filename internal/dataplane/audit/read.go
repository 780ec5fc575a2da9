package audit

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"sync"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// readPos is the last record a read of the log yielded: its sequence, the
// byte offsets of its frame and of the frame after it, in the segment that
// starts at segFirst. Segments only grow while a Log has them open, so a
// position taken from a frame read stays valid.
type readPos struct {
	segFirst  uint64
	seq       uint64
	off, next int64
}

// readCursor remembers the last record a ReadFrom yielded, so the next
// ReadFrom from the record after it (or from it) (what the uploader does, batch
// after batch) seeks to it instead of decoding the segment from its start:
// without it, reading the log batch by batch costs time in proportion to
// the square of a segment's records. It is a hint: a ReadFrom from any
// other sequence reads as before.
type readCursor struct {
	mu  sync.Mutex
	pos readPos
}

func (c *readCursor) get(segFirst, next uint64) int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.pos.segFirst != segFirst || c.pos.seq == 0:
		return 0
	case next == c.pos.seq+1: // the usual case: go on after it
		return c.pos.next
	case next == c.pos.seq: // a consumer that stopped before using it
		return c.pos.off
	}
	return 0
}

func (c *readCursor) set(p readPos) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.pos = p
	c.mu.Unlock()
}

// ReadFrom returns the log's records from sequence seq (1 for all) on, in
// order, up to the last record that was fsynced when ReadFrom was called:
// an uploader never sees a record that a machine crash could still take
// back. It is safe to use while Writes go on. Iteration stops at the first
// error, which is yielded with a nil record. A ReadFrom that continues
// where the previous one stopped starts at that record's offset, so
// reading the log in batches costs each batch's records, not the
// segment's.
func (l *Log) ReadFrom(seq uint64) iter.Seq2[*auditv1.Record, error] {
	return readDir(l.opts.Dir, seq, l.durable.Load(), &l.cursor)
}

// ReadDir returns the records of the log in dir from sequence seq (1 for
// all) on, in order, as ReadFrom does, for a log no Log in this process
// has open. A frame cut short at the very end of the last segment (what a
// crash, or a writer in another process, leaves) ends the iteration
// without an error; any other damage is an error.
func ReadDir(dir string, seq uint64) iter.Seq2[*auditv1.Record, error] {
	return readDir(dir, seq, math.MaxUint64, nil)
}

func readDir(dir string, from, limit uint64, cur *readCursor) iter.Seq2[*auditv1.Record, error] {
	return func(yield func(*auditv1.Record, error) bool) {
		next := max(from, 1)
		fail := func(err error) { yield(nil, err) }
		segs, err := listSegments(dir)
		if err != nil {
			fail(err)
			return
		}
		i := -1
		for j, s := range segs {
			if s.first <= next {
				i = j
			}
		}
		if i < 0 {
			if len(segs) > 0 && next < segs[0].first {
				fail(fmt.Errorf("audit log %s: sequence %d is no longer on disk (the log starts at %d)", dir, next, segs[0].first))
			}
			return
		}
		for next <= limit {
			seg := segs[i]
			last := i == len(segs)-1
			more, err := readSegment(seg, &next, limit, last, cur, yield)
			if err != nil {
				fail(err)
				return
			}
			if !more || next > limit {
				return
			}
			if last {
				// The writer may have started a segment since we listed.
				if segs, err = listSegments(dir); err != nil {
					fail(err)
					return
				}
				if i+1 >= len(segs) {
					return
				}
			}
			i++
			if segs[i].first != next {
				fail(fmt.Errorf("audit log %s: segment %s starts at sequence %d, want %d", dir, segs[i].path, segs[i].first, next))
				return
			}
		}
	}
}

// readSegment yields seg's records from *next up to limit, advancing
// *next, starting at the offset cur remembers for *next in seg (the
// segment's start otherwise). It returns false when the consumer stopped.
func readSegment(seg segment, next *uint64, limit uint64, last bool, cur *readCursor, yield func(*auditv1.Record, error) bool) (bool, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return false, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	start := cur.get(seg.first, *next)
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return false, fmt.Errorf("audit segment %s: seek to offset %d: %w", seg.path, start, err)
		}
	}
	fr := newFrameReader(f)
	fr.Off = start
	for *next <= limit {
		b, off, err := fr.Next()
		switch {
		case errors.Is(err, io.EOF):
			return true, nil
		case errors.Is(err, errTorn) && last:
			return true, nil
		case err != nil:
			return false, fmt.Errorf("audit segment %s offset %d: %w", seg.path, off, err)
		}
		r := new(auditv1.Record)
		if err := proto.Unmarshal(b, r); err != nil {
			return false, fmt.Errorf("audit segment %s offset %d: decode record: %w", seg.path, off, err)
		}
		switch {
		case r.Sequence < *next:
			continue
		case r.Sequence > *next:
			return false, fmt.Errorf("audit segment %s offset %d: sequence %d, want %d", seg.path, off, r.Sequence, *next)
		}
		cur.set(readPos{segFirst: seg.first, seq: r.Sequence, off: off, next: fr.Off})
		if !yield(r, nil) {
			return false, nil
		}
		*next++
	}
	return true, nil
}
