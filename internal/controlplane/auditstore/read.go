package auditstore

import (
	"errors"
	"fmt"
	"github.com/portcullis-gw/portcullis/internal/auditframe"
	"io"
	"os"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// position is where a frame sits: its segment and offset, and the offset
// just past it.
type position struct {
	seg      uint64
	off, end int64
	path     string
}

// visit is called for every frame. r is nil when the frame does not
// decode; ferr is errBadCRC for a frame whose checksum fails (r may still
// be set), or the damage that ends the segment (r nil). Returning false
// stops the walk.
type visit func(pos position, r *auditv1.Record, ferr error) (bool, error)

// walk reads the frames of view in order, starting at offset fromOff of
// segment fromSeg (0, 0 for everything), each segment up to its size in
// the view. A segment that retention removed meanwhile is skipped.
func walk(view []segment, fromSeg uint64, fromOff int64, fn visit) error {
	for _, seg := range view {
		if seg.id < fromSeg {
			continue
		}
		start := int64(0)
		if seg.id == fromSeg {
			start = fromOff
		}
		more, err := walkSegment(seg, start, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func walkSegment(seg segment, start int64, fn visit) (bool, error) {
	if start >= seg.size {
		return true, nil
	}
	f, err := os.Open(seg.path)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return false, fmt.Errorf("seek audit segment: %w", err)
	}
	fr := auditframe.NewReader(f)
	fr.Off, fr.Limit = start, seg.size
	for {
		b, off, ferr := fr.Next()
		pos := position{seg: seg.id, off: off, end: fr.Off, path: seg.path}
		switch {
		case errors.Is(ferr, io.EOF):
			return true, nil
		case ferr != nil && !errors.Is(ferr, errBadCRC):
			_, err := fn(pos, nil, ferr)
			return err == nil, err
		}
		r := new(auditv1.Record)
		if err := proto.Unmarshal(b, r); err != nil {
			r = nil
			if ferr == nil {
				ferr = fmt.Errorf("record does not decode: %w", err)
			}
		}
		more, err := fn(pos, r, ferr)
		if err != nil || !more {
			return false, err
		}
	}
}
