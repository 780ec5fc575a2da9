// Package auditstore is a control-plane node's store of the audit records
// data planes upload. It lives on disk beside the Raft data, never in the
// replicated resource state or in the data planes' snapshot: the records
// reach every node as AppendAudit commands through the Raft log, and each
// node's state machine appends them here (Append), deduplicated by (data
// plane, sequence). A Raft snapshot carries the store (Snapshot, Restore),
// so a node that catches up from a snapshot holds every record too.
//
// On disk the store is a directory of segment files named after a running
// number in 20 decimal digits (00000000000000000001.seg), each a run of
// frames exactly as in the data plane's local log:
//
//	length  uint32, little-endian: bytes in record
//	crc     uint32, little-endian: CRC-32C (Castagnoli) of record
//	record  an auditv1.Record, deterministic proto binary, as uploaded
//
// Records of all data planes are interleaved in the order the cluster
// committed them. A segment that reaches Options.SegmentSize is sealed: it
// is synced and never written again, and an index file beside it (see
// index.go) records its SHA-256 and where each data plane's chain stands
// after it, which is what a node's start reads instead of its records.
// Every node seals at the same records (they append the same records in
// the same order), so the same segment has the same name and hash on
// every node. Retention drops whole segments, oldest first; base.json
// then remembers, per data plane, the sequence and hash of the last dropped
// record, so dedupe and chain checks continue across the cut.
package auditstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/portcullis-gw/portcullis/internal/auditframe"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Defaults for Options.
const (
	DefaultSegmentSize = 64 << 20
	DefaultRetention   = 90 * 24 * time.Hour
)

const (
	frameHeaderSize = auditframe.HeaderSize
	segmentSuffix   = ".seg"
	baseFile        = "base.json"
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// Errors of Append. They are domain errors: the records were not stored,
// and the uploader continues from the sequence Append returns.
var (
	// ErrGap: the first new record does not follow the last stored one.
	ErrGap = errors.New("audit records do not continue the stored sequence")
	// ErrChain: a record's prev_hash is not the hash of the stored record
	// before it.
	ErrChain = errors.New("audit record does not continue the stored hash chain")
	// ErrDataplane: a record names another data plane.
	ErrDataplane = errors.New("audit record belongs to another data plane")
)

// Options configures a Store.
type Options struct {
	// Dir holds the segments; created (0700) when missing.
	Dir string
	// SegmentSize is the size past which a new segment starts (default 64
	// MiB).
	SegmentSize int64
	// Retention drops segments whose newest record is older than this
	// (0: DefaultRetention; negative: keep forever).
	Retention time.Duration
	// MaxBytes drops the oldest segments while the store is larger (0: no
	// bound).
	MaxBytes int64
	Logger   *slog.Logger
}

// segment is one file. size, minTime and maxTime cover the frames
// written so far.
type segment struct {
	id               uint64
	path             string
	size             int64
	minTime, maxTime time.Time
	// chains holds, per chain, the lowest and highest sequence of the
	// segment's records and where the chain stands after its last one
	// (guarded by the store's lock; views leave it out).
	chains map[string]*seqRange
	// records counts the segment's records.
	records uint64
	// sealed: the segment is full and never written again; sum is the
	// SHA-256 of its bytes, recorded in its index file.
	sealed bool
	sum    []byte
	// hash sums the bytes of the segment being appended to (nil once
	// sealed, and in views).
	hash hash.Hash
}

// seqRange is the sequences of one chain's records in a segment, and the
// hash and snapshot_version of the record with the highest sequence.
type seqRange struct {
	min, max uint64
	head     []byte
	version  uint64
}

// noteChain widens seg's range of r's chain by r's sequence and counts r.
func (seg *segment) noteChain(r *auditv1.Record) {
	seg.records++
	if seg.chains == nil {
		seg.chains = map[string]*seqRange{}
	}
	seq := r.GetSequence()
	if c := seg.chains[r.GetDataplane()]; c != nil {
		c.min = min(c.min, seq)
		if seq >= c.max {
			c.max, c.head, c.version = seq, r.GetHash(), r.GetSnapshotVersion()
		}
		return
	}
	seg.chains[r.GetDataplane()] = &seqRange{min: seq, max: seq, head: r.GetHash(), version: r.GetSnapshotVersion()}
}

// mark is where one data plane's chain stands.
type mark struct {
	Next uint64 `json:"next"` // sequence of the next record expected
	Head []byte `json:"head"` // hash of the record before Next
	// Version is the snapshot_version of the record before Next: for the
	// control plane's own chain, the Raft index it was written at (see
	// AppendNext).
	Version uint64 `json:"version,omitempty"`
}

// Store is one node's audit store. Append, Restore and Prune are
// serialized by a lock; Query, Verify and Snapshot may run beside them
// and see what was appended before they started.
type Store struct {
	opts Options
	log  *slog.Logger

	mu    sync.RWMutex
	segs  []*segment // in order; the last is the one appended to
	f     *os.File   // the last segment, open for appending
	marks map[string]*mark
	base  map[string]mark // per data plane: the last dropped record
	// appended is closed, and replaced, whenever records reach the
	// segments (see Appended).
	appended chan struct{}
	buf      []byte // frames staged by stage, written by flush
	bufMin   time.Time
	bufMax   time.Time
	closed   bool
}

// Open opens (or creates) the store in opts.Dir. It reads the index of
// every sealed segment (rebuilding one that is missing or damaged from its
// segment) and the records of the last segment only, to find where each
// data plane's chain stands; cuts a frame torn by a crash off the end of
// the last segment; and goes on appending to it.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("audit store: no directory")
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit store directory: %w", err)
	}
	s := &Store{opts: opts, log: opts.Logger.With("component", "auditstore"), appended: make(chan struct{})}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the store's directory into s (see Open). s.f must be closed.
func (s *Store) load() error {
	s.marks, s.base, s.segs, s.f = map[string]*mark{}, map[string]mark{}, nil, nil
	if err := s.loadBase(); err != nil {
		return err
	}
	for dp, b := range s.base {
		s.marks[dp] = &mark{Next: b.Next, Head: b.Head, Version: b.Version}
	}
	if err := removeStray(s.opts.Dir); err != nil {
		return err
	}
	segs, err := listSegments(s.opts.Dir)
	if err != nil {
		return err
	}
	for i, seg := range segs {
		// The last segment is the one appended to, unless it has an index:
		// sealed just before a crash (or damaged), it is never appended to
		// again.
		if _, serr := os.Stat(indexPath(s.opts.Dir, seg.id)); i < len(segs)-1 || serr == nil {
			err = s.loadSealed(seg)
		} else {
			err = s.scanLast(seg)
		}
		if err != nil {
			return err
		}
		s.noteMarks(seg)
	}
	s.segs = segs
	if len(segs) == 0 {
		return s.newSegment(1)
	}
	last := segs[len(segs)-1]
	if last.sealed || last.size >= s.opts.SegmentSize {
		if !last.sealed {
			if err := s.seal(last); err != nil {
				return err
			}
		}
		return s.newSegment(last.id + 1)
	}
	f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open audit segment: %w", err)
	}
	s.f = f
	return nil
}

// noteMarks moves the marks past seg's records.
func (s *Store) noteMarks(seg *segment) {
	for chain, c := range seg.chains {
		if m := s.marks[chain]; m == nil || c.max >= m.Next {
			s.marks[chain] = &mark{Next: c.max + 1, Head: c.head, Version: c.version}
		}
	}
}

// scanLast reads the last segment, the one appended to: a frame torn at
// its end (a crash mid-write) is cut off; damage elsewhere seals the
// segment as it is, for Verify to report, and appends go to a new one.
func (s *Store) scanLast(seg *segment) error {
	end, h, stop, err := scanFile(seg)
	if err != nil {
		return err
	}
	switch {
	case errors.Is(stop, io.EOF):
		seg.size, seg.hash = end, h
		return nil
	case errors.Is(stop, errTorn):
		s.log.Warn("cutting a torn frame off the end of the audit store (a crash mid-write); the records reach this node again from the Raft log", "segment", seg.path, "offset", end)
		if err := os.Truncate(seg.path, end); err != nil {
			return fmt.Errorf("truncate audit segment: %w", err)
		}
		seg.size = end
		seg.hash, err = hashFile(seg.path, end)
		return err
	}
	s.log.Error("audit segment is damaged; 'gwctl audit verify' will report it", "segment", seg.path, "offset", end, "err", stop)
	st, err := os.Stat(seg.path)
	if err != nil {
		return fmt.Errorf("stat audit segment: %w", err)
	}
	seg.size = st.Size()
	if seg.hash, err = hashFile(seg.path, seg.size); err != nil {
		return err
	}
	return s.seal(seg)
}

// scanFile reads seg's frames from its file, filling its time bounds,
// chains and record count, and hashing the bytes read. It returns the
// offset where the frames end and why they end there: io.EOF (the file
// is whole, and the hash covers it), errTorn (a frame cut off at the end)
// or the damage that stopped it.
func scanFile(seg *segment) (end int64, h hash.Hash, stop, err error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	h = sha256.New()
	fr := auditframe.NewReader(io.TeeReader(f, h))
	seg.chains, seg.records, seg.minTime, seg.maxTime = nil, 0, time.Time{}, time.Time{}
	for {
		b, off, ferr := fr.Next()
		switch {
		case errors.Is(ferr, io.EOF):
			return fr.Off, h, io.EOF, nil
		case errors.Is(ferr, errBadCRC):
			// Damaged or edited: keep it for Verify, and count it if it
			// still decodes.
		case ferr != nil:
			return off, h, ferr, nil
		}
		r := new(auditv1.Record)
		if err := proto.Unmarshal(b, r); err != nil {
			continue
		}
		seg.note(r)
		seg.noteChain(r)
	}
}

// hashFile hashes the first n bytes of the file at path.
func hashFile(path string, n int64) (hash.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open audit segment: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	k, err := io.Copy(h, io.LimitReader(f, n))
	if err != nil {
		return nil, fmt.Errorf("hash audit segment %s: %w", path, err)
	}
	if k != n {
		return nil, fmt.Errorf("hash audit segment %s: read %d of %d bytes", path, k, n)
	}
	return h, nil
}

// note widens seg's time bounds by r's time.
func (seg *segment) note(r *auditv1.Record) {
	t := r.GetTime().AsTime()
	if seg.minTime.IsZero() || t.Before(seg.minTime) {
		seg.minTime = t
	}
	if t.After(seg.maxTime) {
		seg.maxTime = t
	}
}

func segmentPath(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", id, segmentSuffix))
}

func listSegments(dir string) ([]*segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list audit store: %w", err)
	}
	var out []*segment
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, &segment{id: id, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(out, func(a, b *segment) int { return cmpUint(a.id, b.id) })
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// newSegment starts segment id and appends to it from now on.
func (s *Store) newSegment(id uint64) error {
	seg := &segment{id: id, path: segmentPath(s.opts.Dir, id), hash: sha256.New()}
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create audit segment: %w", err)
	}
	s.f = f
	s.segs = append(s.segs, seg)
	return nil
}

// seal makes seg, the segment appended to until now, immutable: its bytes
// are synced, and its index file records their hash and a summary of its
// records. The caller starts the next segment.
func (s *Store) seal(seg *segment) error {
	if s.f != nil {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync audit segment: %w", err)
		}
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("close audit segment: %w", err)
		}
		s.f = nil
	}
	seg.sum, seg.hash, seg.sealed = seg.hash.Sum(nil), nil, true
	if err := writeIndex(s.opts.Dir, seg); err != nil {
		// The segment is whole; the next start rebuilds its index.
		s.log.Error("could not write an audit segment's index; the next start rebuilds it", "segment", seg.path, "err", err)
	}
	return nil
}

// Next is the sequence the store expects next from dataplane (1 for one
// it has never seen).
func (s *Store) Next(dataplane string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := s.marks[dataplane]; m != nil {
		return m.Next
	}
	return 1
}

// Append stores records of dataplane, in order, skipping those it already
// holds (sequence below Next). It stops at the first record that names
// another data plane (ErrDataplane), leaves a gap (ErrGap) or does not
// continue the chain (ErrChain), keeping what came before. It returns the
// sequence it expects next either way. Records are handed to the OS, not
// fsynced: the Raft log is the durable copy, and a record lost in a crash
// is applied again from it. Append does not check hashes; the node that
// proposes the records does, before they enter the log.
func (s *Store) Append(dataplane string, records []*auditv1.Record) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("audit store closed")
	}
	var err error
	for _, r := range records {
		if r.GetDataplane() != dataplane {
			err = fmt.Errorf("%w: record %d names %q, not %q", ErrDataplane, r.GetSequence(), r.GetDataplane(), dataplane)
			break
		}
		if err = s.stage(r); err != nil {
			break
		}
	}
	if ferr := s.flush(); ferr != nil {
		return s.nextLocked(dataplane), ferr
	}
	return s.nextLocked(dataplane), err
}

func (s *Store) nextLocked(dp string) uint64 {
	if m := s.marks[dp]; m != nil {
		return m.Next
	}
	return 1
}

// stage checks r against its data plane's mark and, when it is the next
// record, adds its frame to the buffer and moves the mark. A record
// already held is skipped.
func (s *Store) stage(r *auditv1.Record) error {
	dp := r.GetDataplane()
	m := s.marks[dp]
	if m == nil {
		m = &mark{Next: 1, Head: auditchain.Zero}
	}
	switch seq := r.GetSequence(); {
	case seq < m.Next:
		return nil
	case seq > m.Next:
		return fmt.Errorf("%w: data plane %q sent record %d, the store expects %d", ErrGap, dp, seq, m.Next)
	}
	if !bytes.Equal(r.GetPrevHash(), m.Head) {
		return fmt.Errorf("%w: data plane %q record %d", ErrChain, dp, r.GetSequence())
	}
	start := len(s.buf)
	s.buf = append(s.buf, make([]byte, frameHeaderSize)...)
	var err error
	if s.buf, err = deterministic.MarshalAppend(s.buf, r); err != nil {
		s.buf = s.buf[:start]
		return fmt.Errorf("encode audit record: %w", err)
	}
	auditframe.PutHeader(s.buf[start:start+frameHeaderSize], s.buf[start+frameHeaderSize:])
	s.segs[len(s.segs)-1].noteChain(r)
	s.marks[dp] = &mark{Next: m.Next + 1, Head: r.GetHash(), Version: r.GetSnapshotVersion()}
	t := r.GetTime().AsTime()
	if s.bufMin.IsZero() || t.Before(s.bufMin) {
		s.bufMin = t
	}
	if t.After(s.bufMax) {
		s.bufMax = t
	}
	return nil
}

// flush writes the staged frames to the last segment and starts a new
// segment once it is full. On a write error the marks are rebuilt from
// disk is not attempted: the error is returned and the node's operator
// must look (the other replicas hold the records).
func (s *Store) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	seg := s.segs[len(s.segs)-1]
	n, err := s.f.Write(s.buf)
	seg.size += int64(n)
	seg.hash.Write(s.buf[:n])
	if !s.bufMin.IsZero() && (seg.minTime.IsZero() || s.bufMin.Before(seg.minTime)) {
		seg.minTime = s.bufMin
	}
	if s.bufMax.After(seg.maxTime) {
		seg.maxTime = s.bufMax
	}
	s.buf, s.bufMin, s.bufMax = s.buf[:0], time.Time{}, time.Time{}
	if n > 0 {
		close(s.appended)
		s.appended = make(chan struct{})
	}
	if err != nil {
		return fmt.Errorf("write audit segment: %w", err)
	}
	if seg.size >= s.opts.SegmentSize {
		if err := s.seal(seg); err != nil {
			return err
		}
		return s.newSegment(seg.id + 1)
	}
	return nil
}

// Sync flushes what Append and AppendNext handed to the OS to disk. A
// store whose replicated copy of the records goes away once every node
// has them (the etcd store deletes applied upload batches) syncs before it
// says it has them.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.f == nil {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync audit segment: %w", err)
	}
	return nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	return s.f.Close()
}

// view is what readers work from: the segments and their sizes when the
// view was taken.
func (s *Store) view() []segment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]segment, len(s.segs))
	for i, seg := range s.segs {
		out[i] = *seg
		out[i].chains, out[i].hash = nil, nil
	}
	return out
}

func (s *Store) loadBase() error {
	b, err := os.ReadFile(filepath.Join(s.opts.Dir, baseFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read audit store base: %w", err)
	}
	if err := json.Unmarshal(b, &s.base); err != nil {
		return fmt.Errorf("read audit store base: %w", err)
	}
	return nil
}

// saveBase writes base.json atomically.
func (s *Store) saveBase() error {
	b, err := json.Marshal(s.base)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.opts.Dir, baseFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write audit store base: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write audit store base: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write audit store base: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write audit store base: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.opts.Dir, baseFile)); err != nil {
		return fmt.Errorf("write audit store base: %w", err)
	}
	return nil
}

// Frames are auditframe's, as in the data plane's local log.
var (
	errTorn   = auditframe.ErrTorn
	errBadCRC = auditframe.ErrBadCRC
)
