package auditstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// manifestMagic starts the store's part of a Raft snapshot in the format
// of cluster version 8 (clusterversion.AuditSegments):
//
//	magic   8 bytes "PCAUDS02"
//	length  uint32, little-endian: bytes of the header
//	header  JSON: manifestHeader
//	open    the bytes of the segment being appended to (header.open.size)
//
// The sealed segments are named with their sizes and hashes only: a node
// restoring the snapshot keeps those it holds and fetches the others from
// a peer (Source). The snapshot's size is the header and at most one
// segment, however large the store grows.
const manifestMagic = "PCAUDS02"

// maxSegmentBytes bounds the size of a segment a snapshot names (what a
// peer may send for it).
const maxSegmentBytes = 4 << 30

// fetchSuffix names a segment being received (00000000000000000001.seg.fetch).
const fetchSuffix = ".fetch"

// fetchTimeout bounds the fetch of one segment from one peer.
const fetchTimeout = 10 * time.Minute

type manifestHeader struct {
	Base map[string]mark `json:"base"`
	// Sealed lists the sealed segments, in order.
	Sealed []segmentRef `json:"sealed"`
	// Open is the segment being appended to when the snapshot was taken:
	// its bytes follow the header, and SHA256 is their hash.
	Open segmentRef `json:"open"`
}

type segmentRef struct {
	ID     uint64 `json:"id"`
	Size   int64  `json:"size"`
	SHA256 []byte `json:"sha256"`
}

// SegmentName is the file name of segment id, as a Source is asked for it.
func SegmentName(id uint64) string { return fmt.Sprintf("%020d%s", id, segmentSuffix) }

// ParseSegmentName returns the id a segment's file name carries; false
// for anything else.
func ParseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil && id > 0
}

// decodeManifest decodes and checks a manifest header.
func decodeManifest(b []byte) (manifestHeader, error) {
	var h manifestHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("header: %w", err)
	}
	check := func(what string, r segmentRef) error {
		if r.ID == 0 || r.Size < 0 || r.Size > maxSegmentBytes || len(r.SHA256) != sha256.Size {
			return fmt.Errorf("header: %s segment %d (%d bytes) is not valid", what, r.ID, r.Size)
		}
		return nil
	}
	if err := check("open", h.Open); err != nil {
		return h, err
	}
	var prev uint64
	for _, r := range h.Sealed {
		if err := check("sealed", r); err != nil {
			return h, err
		}
		if r.ID <= prev || r.ID >= h.Open.ID {
			return h, fmt.Errorf("header: sealed segment %d is out of order", r.ID)
		}
		prev = r.ID
	}
	for chain, m := range h.Base {
		if chain == "" || len(m.Head) > maxHeadBytes {
			return h, fmt.Errorf("header: base of chain %q is not valid", chain)
		}
	}
	return h, nil
}

// Manifest is a snapshot of the store in the format of cluster version 8:
// the list of sealed segments with their hashes, and the segment being
// appended to, held open so that retention cannot take it away while it is
// written.
type Manifest struct {
	hdr  manifestHeader
	open *os.File
}

// Manifest captures the store as a Manifest. Take it where no Append runs
// (the state machine's Snapshot); write it with WriteTo from any
// goroutine, then Release it.
func (s *Store) Manifest() (*Manifest, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := &Manifest{hdr: manifestHeader{Base: make(map[string]mark, len(s.base))}}
	for k, v := range s.base {
		m.hdr.Base[k] = v
	}
	for _, seg := range s.segs {
		if seg.sealed {
			m.hdr.Sealed = append(m.hdr.Sealed, segmentRef{ID: seg.id, Size: seg.size, SHA256: seg.sum})
			continue
		}
		f, err := os.Open(seg.path)
		if err != nil {
			return nil, fmt.Errorf("snapshot audit store: %w", err)
		}
		m.open = f
		m.hdr.Open = segmentRef{ID: seg.id, Size: seg.size, SHA256: seg.hash.Sum(nil)}
	}
	if m.open == nil {
		return nil, errors.New("snapshot audit store: no segment is open")
	}
	return m, nil
}

// WriteTo writes the manifest: the magic, the length-prefixed header,
// then the open segment's bytes.
func (m *Manifest) WriteTo(w io.Writer) (int64, error) {
	hdr, err := json.Marshal(m.hdr)
	if err != nil {
		return 0, err
	}
	var n int64
	var pre [12]byte
	copy(pre[:8], manifestMagic)
	binary.LittleEndian.PutUint32(pre[8:], uint32(len(hdr)))
	for _, b := range [][]byte{pre[:], hdr} {
		k, err := w.Write(b)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	k, err := io.Copy(w, io.NewSectionReader(m.open, 0, m.hdr.Open.Size))
	n += k
	if err != nil {
		return n, fmt.Errorf("write the open audit segment to the snapshot: %w", err)
	}
	if k != m.hdr.Open.Size {
		return n, fmt.Errorf("write the open audit segment to the snapshot: %d of %d bytes", k, m.hdr.Open.Size)
	}
	return n, nil
}

// Release closes the manifest's file.
func (m *Manifest) Release() {
	if m.open != nil {
		_ = m.open.Close()
		m.open = nil
	}
}

// Source fetches the bytes of the sealed segment named name (SegmentName)
// from one peer and writes them to w. The store checks what arrives
// against the snapshot's size and hash; w refuses bytes past the size.
type Source func(ctx context.Context, name string, w io.Writer) error

// OpenSealed opens the sealed segment named name for a peer to fetch. A
// sealed segment never changes; retention may delete it while it is
// read, which the open file survives.
func (s *Store) OpenSealed(name string) (io.ReadCloser, int64, error) {
	id, ok := ParseSegmentName(name)
	if !ok {
		return nil, 0, fmt.Errorf("%q is not an audit segment name", name)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, seg := range s.segs {
		if seg.id != id {
			continue
		}
		if !seg.sealed {
			return nil, 0, fmt.Errorf("audit segment %s is not sealed yet", name)
		}
		f, err := os.Open(seg.path)
		if err != nil {
			return nil, 0, fmt.Errorf("open audit segment: %w", err)
		}
		return f, seg.size, nil
	}
	return nil, 0, fmt.Errorf("%w: this node holds no audit segment %s", os.ErrNotExist, name)
}

// restoreManifest restores a manifest snapshot (hdr, with the open
// segment's bytes to read from r): the store becomes the snapshot's. When
// the store already holds every segment it names (this node wrote it, or
// applied the same records), with at least the open segment's bytes, it
// is kept as it is, with records the snapshot does not have yet. Otherwise
// sealed segments this node holds with the snapshot's hash are kept, the
// others are fetched from sources (the first that sends the right bytes),
// the open segment is written from the snapshot, and every other segment
// is removed; a fetch that fails leaves the store untouched and fails the
// restore.
func (s *Store) restoreManifest(r io.Reader, hdr manifestHeader, sources []Source) error {
	listed := make(map[uint64]bool, len(hdr.Sealed))
	for _, ref := range hdr.Sealed {
		listed[ref.ID] = true
	}
	keep, skip, done, err := s.plan(hdr, listed)
	if err != nil || done {
		return err
	}

	// Fetch what is missing before anything changes, without the lock:
	// readers carry on meanwhile.
	var fetched []*segment
	defer func() {
		for _, seg := range fetched {
			_ = os.Remove(seg.path + fetchSuffix)
		}
	}()
	for _, ref := range hdr.Sealed {
		if keep[ref.ID] || skip[ref.ID] {
			continue
		}
		seg := &segment{id: ref.ID, path: segmentPath(s.opts.Dir, ref.ID)}
		fetched = append(fetched, seg)
		if err := s.fetch(seg, ref, sources); err != nil {
			return err
		}
	}
	open := &segment{id: hdr.Open.ID, path: segmentPath(s.opts.Dir, hdr.Open.ID)}
	fetched = append(fetched, open)
	if err := receive(open.path+fetchSuffix, hdr.Open, func(w io.Writer) error {
		_, err := io.CopyN(w, r, hdr.Open.Size)
		return err
	}); err != nil {
		return fmt.Errorf("restore audit store: the snapshot's open segment: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("restore audit store: closed")
	}
	held := 0
	for _, seg := range s.segs {
		if keep[seg.id] && seg.sealed {
			held++
		}
	}
	if held != len(keep) {
		return errors.New("restore audit store: retention removed a segment the restore meant to keep; the restore is retried")
	}
	if err := s.install(hdr, keep, fetched); err != nil {
		if lerr := s.load(); lerr != nil {
			s.log.Error("audit store: could not reload after a failed restore", "err", lerr)
		}
		return err
	}
	close(s.appended)
	s.appended = make(chan struct{})
	s.log.Info("audit store restored from a snapshot's segment list", "segments", len(hdr.Sealed)+1, "kept", len(keep), "fetched", len(fetched)-1)
	return nil
}

// plan decides, under the lock, how to restore hdr: when the store
// already holds it (see extends) it finishes the restore (done); otherwise
// it returns the sealed segments to keep, and those this node's retention
// dropped, which it does not fetch again.
func (s *Store) plan(hdr manifestHeader, listed map[uint64]bool) (keep, skip map[uint64]bool, done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, false, errors.New("restore audit store: closed")
	}
	if err := s.flush(); err != nil {
		return nil, nil, false, err
	}
	local := make(map[uint64]*segment, len(s.segs))
	for _, seg := range s.segs {
		local[seg.id] = seg
	}
	ext, err := s.extends(hdr, local, listed)
	if err != nil {
		return nil, nil, false, err
	}
	if ext {
		return nil, nil, true, s.trimTo(hdr, listed)
	}
	keep, skip = map[uint64]bool{}, map[uint64]bool{}
	for _, ref := range hdr.Sealed {
		if seg := local[ref.ID]; seg != nil && seg.sealed && seg.size == ref.Size && bytes.Equal(seg.sum, ref.SHA256) {
			keep[ref.ID] = true
		} else if s.prunedHere(ref.ID, local) {
			skip[ref.ID] = true
		}
	}
	return keep, skip, false, nil
}

// install replaces the store's segments with the snapshot's: those kept,
// and those fetched (received beside their final names), then reloads.
func (s *Store) install(hdr manifestHeader, keep map[uint64]bool, fetched []*segment) error {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	for _, seg := range s.segs {
		if !keep[seg.id] {
			if err := removeSegment(s.opts.Dir, seg); err != nil {
				return err
			}
		}
	}
	for _, seg := range fetched {
		if err := os.Rename(seg.path+fetchSuffix, seg.path); err != nil {
			return fmt.Errorf("restore audit store: %w", err)
		}
	}
	for _, ref := range hdr.Sealed {
		if keep[ref.ID] {
			continue
		}
		seg := findSeg(fetched, ref.ID)
		if seg == nil { // dropped by this node's retention
			continue
		}
		if _, _, _, err := scanFile(seg); err != nil {
			return err
		}
		seg.size, seg.sum, seg.sealed = ref.Size, ref.SHA256, true
		if err := writeIndex(s.opts.Dir, seg); err != nil {
			s.log.Error("could not write an audit segment's index; the next start rebuilds it", "segment", seg.path, "err", err)
		}
	}
	// The snapshot's cut, or this node's where its retention cut later.
	for k, v := range hdr.Base {
		if cur, ok := s.base[k]; !ok || cur.Next < v.Next {
			s.base[k] = v
		}
	}
	if err := s.saveBase(); err != nil {
		return err
	}
	return s.load()
}

func findSeg(segs []*segment, id uint64) *segment {
	for _, seg := range segs {
		if seg.id == id {
			return seg
		}
	}
	return nil
}

// extends reports whether the store already holds everything hdr names:
// its sealed segments with their hashes, and the open segment's bytes
// (perhaps followed by more records, sealed or not).
func (s *Store) extends(hdr manifestHeader, local map[uint64]*segment, listed map[uint64]bool) (bool, error) {
	for _, ref := range hdr.Sealed {
		if s.prunedHere(ref.ID, local) {
			continue
		}
		seg := local[ref.ID]
		if seg == nil || !seg.sealed || seg.size != ref.Size || !bytes.Equal(seg.sum, ref.SHA256) {
			return false, nil
		}
	}
	if s.prunedHere(hdr.Open.ID, local) {
		// Everything the snapshot holds is older than what this node
		// keeps (its own snapshot, taken before its retention ran).
		return true, nil
	}
	first := hdr.Open.ID
	if len(hdr.Sealed) > 0 {
		first = hdr.Sealed[0].ID
	}
	for id := range local {
		if id >= first && id < hdr.Open.ID && !listed[id] {
			return false, nil
		}
	}
	seg := local[hdr.Open.ID]
	if seg == nil || seg.size < hdr.Open.Size {
		return false, nil
	}
	var sum []byte
	if !seg.sealed && seg.size == hdr.Open.Size {
		sum = seg.hash.Sum(nil)
	} else {
		h, err := hashFile(seg.path, hdr.Open.Size)
		if err != nil {
			return false, err
		}
		sum = h.Sum(nil)
	}
	return bytes.Equal(sum, hdr.Open.SHA256), nil
}

// prunedHere reports whether this node's retention dropped segment id:
// it is older than the store's first segment, and the store has a cut.
// A node restoring its own snapshot after retention ran, or a follower
// whose retention ran before it fell behind, does not fetch it again.
func (s *Store) prunedHere(id uint64, local map[uint64]*segment) bool {
	return local[id] == nil && len(s.segs) > 0 && id < s.segs[0].id && len(s.base) > 0
}

// trimTo finishes a restore over a store that already holds the
// snapshot's segments: it drops the segments before the snapshot's first
// (retention on the node that wrote it dropped them) and takes the
// snapshot's base where it is further along.
func (s *Store) trimTo(hdr manifestHeader, listed map[uint64]bool) error {
	n := 0
	for n < len(s.segs)-1 && s.segs[n].id < hdr.Open.ID && !listed[s.segs[n].id] {
		n++
	}
	moved := false
	for chain, b := range hdr.Base {
		if cur, ok := s.base[chain]; !ok || cur.Next < b.Next {
			s.base[chain] = b
			moved = true
		}
		if m := s.marks[chain]; m == nil || m.Next < b.Next {
			s.marks[chain] = &mark{Next: b.Next, Head: b.Head, Version: b.Version}
		}
	}
	if moved {
		if err := s.saveBase(); err != nil {
			return err
		}
	}
	for _, seg := range s.segs[:n] {
		if err := removeSegment(s.opts.Dir, seg); err != nil {
			return err
		}
	}
	s.segs = append(s.segs[:0], s.segs[n:]...)
	s.log.Info("audit store already holds the snapshot's segments", "segments", len(hdr.Sealed)+1, "dropped", n)
	return nil
}

func removeSegment(dir string, seg *segment) error {
	for _, p := range []string{seg.path, indexPath(dir, seg.id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove audit segment: %w", err)
		}
	}
	return nil
}

// fetch receives the sealed segment ref from the first source that sends
// exactly its bytes.
func (s *Store) fetch(seg *segment, ref segmentRef, sources []Source) error {
	name := SegmentName(ref.ID)
	if len(sources) == 0 {
		return fmt.Errorf("restore audit store: this node lacks sealed segment %s and has no peer to fetch it from", name)
	}
	var errs []error
	for i, src := range sources {
		err := receive(seg.path+fetchSuffix, ref, func(w io.Writer) error {
			ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
			defer cancel()
			return src(ctx, name, w)
		})
		if err == nil {
			s.log.Info("fetched a sealed audit segment from a peer", "segment", name, "bytes", ref.Size, "source", i)
			return nil
		}
		s.log.Warn("could not fetch a sealed audit segment from a peer; trying the next", "segment", name, "source", i, "err", err)
		errs = append(errs, err)
	}
	return fmt.Errorf("restore audit store: no peer sent sealed segment %s with the snapshot's hash: %w", name, errors.Join(errs...))
}

// receive writes what send writes to the file at path, and fails unless
// it is exactly ref's size and hash; the file is synced.
func receive(path string, ref segmentRef, send func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	w := &boundedWriter{w: f, h: sha256.New(), left: ref.Size}
	if err := send(w); err != nil {
		return err
	}
	if w.left != 0 {
		return fmt.Errorf("received %d of %d bytes", ref.Size-w.left, ref.Size)
	}
	if !bytes.Equal(w.h.Sum(nil), ref.SHA256) {
		return errors.New("the bytes received do not have the snapshot's hash")
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// errTooLong: a peer sent more bytes than the snapshot says the segment
// has.
var errTooLong = errors.New("the peer sent more bytes than the segment has")

// boundedWriter writes to w and hashes, refusing more than left bytes.
type boundedWriter struct {
	w    io.Writer
	h    hash.Hash
	left int64
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		return 0, errTooLong
	}
	n, err := b.w.Write(p)
	b.h.Write(p[:n])
	b.left -= int64(n)
	return n, err
}
