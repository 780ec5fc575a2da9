package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// segmentExt ends every segment file name.
const segmentExt = ".seg"

// segment is one segment file.
type segment struct {
	first uint64 // sequence of its first record, from the name
	path  string
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentExt) }

// listSegments returns dir's segments in sequence order. Other files
// (such as the .cut-… files recovery leaves) are ignored.
func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	var segs []segment
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || len(name) != 20+len(segmentExt) || !strings.HasSuffix(name, segmentExt) {
			continue
		}
		first, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || first == 0 {
			continue
		}
		segs = append(segs, segment{first: first, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b segment) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	return segs, nil
}

// syncDir makes a created or removed name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// isFrameError reports whether err is damage in the bytes rather than a
// failure to read them.
func isFrameError(err error) bool {
	return errors.Is(err, errTorn) || errors.Is(err, errBadLength) || errors.Is(err, errBadCRC)
}

// recover finds where the log in l.opts.Dir ends, cuts a damaged tail off
// its last segment and opens that segment for appending (creating the
// first segment of a new log). It runs before the writer goroutine starts.
func (l *Log) recover() error {
	segs, err := listSegments(l.opts.Dir)
	if err != nil {
		return err
	}
	for len(segs) > 0 {
		seg := segs[len(segs)-1]
		last, applied, size, err := l.recoverSegment(seg)
		if err != nil {
			return err
		}
		if last != nil {
			l.next = last.Sequence + 1
			copy(l.head[:], last.Hash)
			if applied == nil && len(segs) > 1 {
				// The copy that starts every segment was lost in a
				// crash right after a rotation: the segment before
				// holds the newest one.
				applied = l.newestApplied(segs[len(segs)-2])
			}
			if applied != nil {
				l.noteApplied(applied)
			}
			l.log.Info("audit log opened", "segment", seg.path, "next_sequence", l.next)
			return l.openSegment(seg.path, size)
		}
		if len(segs) == 1 {
			if seg.first != 1 {
				return fmt.Errorf("audit log %s: its only segment is empty and starts at sequence %d, so the chain head is lost", l.opts.Dir, seg.first)
			}
			l.next = 1
			return l.openSegment(seg.path, 0)
		}
		// A crash right after a rotation (or a tail cut to nothing):
		// continue the previous segment instead.
		if err := os.Remove(seg.path); err != nil {
			return fmt.Errorf("remove empty audit segment: %w", err)
		}
		if err := syncDir(l.opts.Dir); err != nil {
			return fmt.Errorf("sync audit log directory: %w", err)
		}
		l.log.Info("audit log: removed an empty last segment", "segment", seg.path)
		segs = segs[:len(segs)-1]
	}
	l.next = 1
	return l.createSegment(1)
}

// recoverSegment scans seg and keeps the longest prefix of intact frames
// whose records decode, run on from the segment's first sequence and link
// by prev_hash. Anything after it is copied to a .cut-<unix nanos> file
// beside the segment (evidence is never destroyed, only set aside) and
// truncated. It returns the last kept record (nil for none), the newest
// kept record with Applied set (nil for none) and the segment's new size.
func (l *Log) recoverSegment(seg segment) (*auditv1.Record, *auditv1.Record, int64, error) {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("stat audit segment: %w", err)
	}
	size := st.Size()
	var (
		last    *auditv1.Record
		applied *auditv1.Record
		good    int64
		reason  error
		want    = seg.first
		fr      = newFrameReader(f)
	)
	for {
		b, off, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !isFrameError(err) {
				return nil, nil, 0, fmt.Errorf("read audit segment %s: %w", seg.path, err)
			}
			reason = err
			break
		}
		r := new(auditv1.Record)
		if err := proto.Unmarshal(b, r); err != nil {
			reason = fmt.Errorf("record at offset %d does not decode: %w", off, err)
			break
		}
		if r.Sequence != want {
			reason = fmt.Errorf("record at offset %d has sequence %d, want %d", off, r.Sequence, want)
			break
		}
		if len(r.Hash) != hashSize || (last != nil && !bytes.Equal(r.PrevHash, last.Hash)) {
			reason = fmt.Errorf("record %d at offset %d does not link to the one before", r.Sequence, off)
			break
		}
		last, good, want = r, fr.Off, want+1
		if r.GetApplied() != nil {
			applied = r
		}
	}
	if good == size {
		return last, applied, size, nil
	}
	if reason == nil {
		reason = errTorn
	}
	cut, err := l.setAside(f, seg.path, good, size)
	if err != nil {
		return nil, nil, 0, err
	}
	if err := f.Truncate(good); err != nil {
		return nil, nil, 0, fmt.Errorf("truncate audit segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, nil, 0, fmt.Errorf("sync audit segment: %w", err)
	}
	l.log.Warn("audit log: cut a damaged tail off the last segment (expected after a crash mid-write)",
		"segment", seg.path, "offset", good, "bytes_truncated", size-good, "reason", reason.Error(),
		"records_kept", want-seg.first, "cut_bytes_kept_in", cut)
	return last, applied, good, nil
}

// setAside copies f's bytes [from, to) to a new file beside path.
func (l *Log) setAside(f *os.File, path string, from, to int64) (string, error) {
	cut := fmt.Sprintf("%s.cut-%d", path, time.Now().UnixNano())
	out, err := os.OpenFile(cut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("set aside damaged audit tail: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(f, from, to-from))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return "", fmt.Errorf("set aside damaged audit tail: %w", err)
	}
	return cut, nil
}

// openSegment opens an existing segment of size bytes for appending.
func (l *Log) openSegment(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open audit segment: %w", err)
	}
	l.f, l.segSize = l.wrap(f), size
	return nil
}

// createSegment starts a new segment whose first record is first.
func (l *Log) createSegment(first uint64) error {
	path := filepath.Join(l.opts.Dir, segmentName(first))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create audit segment: %w", err)
	}
	if err := syncDir(l.opts.Dir); err != nil {
		f.Close()
		return fmt.Errorf("sync audit log directory: %w", err)
	}
	l.f, l.segSize = l.wrap(f), 0
	return nil
}
