package audit

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// ReadFrom returns the log's records from sequence seq (1 for all) on, in
// order, up to the last record that was fsynced when ReadFrom was called:
// an uploader never sees a record that a machine crash could still take
// back. It is safe to use while Writes go on. Iteration stops at the first
// error, which is yielded with a nil record.
func (l *Log) ReadFrom(seq uint64) iter.Seq2[*auditv1.Record, error] {
	return readDir(l.opts.Dir, seq, l.durable.Load())
}

// ReadDir returns the records of the log in dir from sequence seq (1 for
// all) on, in order, as ReadFrom does, for a log no Log in this process
// has open. A frame cut short at the very end of the last segment (what a
// crash, or a writer in another process, leaves) ends the iteration
// without an error; any other damage is an error.
func ReadDir(dir string, seq uint64) iter.Seq2[*auditv1.Record, error] {
	return readDir(dir, seq, math.MaxUint64)
}

func readDir(dir string, from, limit uint64) iter.Seq2[*auditv1.Record, error] {
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
			more, err := readSegment(seg, &next, limit, last, yield)
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
// *next. It returns false when the consumer stopped.
func readSegment(seg segment, next *uint64, limit uint64, last bool, yield func(*auditv1.Record, error) bool) (bool, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return false, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	fr := newFrameReader(f)
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
		if !yield(r, nil) {
			return false, nil
		}
		*next++
	}
	return true, nil
}
