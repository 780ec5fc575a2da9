package auditstore

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/portcullis-gw/portcullis/internal/auditframe"
	"io"
	"os"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// snapshotMagic starts the store's part of a Raft snapshot.
const snapshotMagic = "PCAUDS01"

// maxSnapshotHeader bounds the JSON header when restoring.
const maxSnapshotHeader = 64 << 20

// snapshotHeader lists what follows: the bases, and the segments whose
// bytes follow in this order.
type snapshotHeader struct {
	Base     map[string]mark `json:"base"`
	Segments []int64         `json:"segments"` // sizes
}

// Snapshot is a point-in-time copy of the store: the segments as long as
// they were when it was taken, held open so that retention cannot take
// them away while it is written.
type Snapshot struct {
	hdr   snapshotHeader
	files []*os.File
}

// Snapshot captures the store. Take it where no Append runs (the state
// machine's Snapshot); write it with WriteTo from any goroutine, then
// Release it.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := &Snapshot{hdr: snapshotHeader{Base: make(map[string]mark, len(s.base))}}
	for k, v := range s.base {
		snap.hdr.Base[k] = v
	}
	for _, seg := range s.segs {
		if seg.size == 0 {
			continue
		}
		f, err := os.Open(seg.path)
		if err != nil {
			snap.Release()
			return nil, fmt.Errorf("snapshot audit store: %w", err)
		}
		snap.files = append(snap.files, f)
		snap.hdr.Segments = append(snap.hdr.Segments, seg.size)
	}
	return snap, nil
}

// WriteTo writes the snapshot: the magic, a length-prefixed JSON header,
// then each segment's bytes.
func (snap *Snapshot) WriteTo(w io.Writer) (int64, error) {
	hdr, err := json.Marshal(snap.hdr)
	if err != nil {
		return 0, err
	}
	var n int64
	var pre [12]byte
	copy(pre[:8], snapshotMagic)
	binary.LittleEndian.PutUint32(pre[8:], uint32(len(hdr)))
	for _, b := range [][]byte{pre[:], hdr} {
		k, err := w.Write(b)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	for i, f := range snap.files {
		k, err := io.Copy(w, io.NewSectionReader(f, 0, snap.hdr.Segments[i]))
		n += k
		if err != nil {
			return n, fmt.Errorf("write audit segment to snapshot: %w", err)
		}
		if k != snap.hdr.Segments[i] {
			return n, fmt.Errorf("write audit segment to snapshot: %d of %d bytes", k, snap.hdr.Segments[i])
		}
	}
	return n, nil
}

// Release closes the snapshot's files.
func (snap *Snapshot) Release() {
	for _, f := range snap.files {
		_ = f.Close()
	}
	snap.files = nil
}

// Restore restores a snapshot of the store, in either format.
//
// A Manifest (cluster version 8 on) makes the store the snapshot's: see
// restoreManifest; sealed segments this node lacks are fetched from
// sources, tried in order.
//
// A Snapshot (the format before) is merged: a data plane whose chain the
// snapshot's cut (retention) has moved past this node's continues from
// there, and every record this node lacks is appended. Records this node
// already holds stay: what the Raft log committed is the same on every
// node, so they are the same records.
func (s *Store) Restore(r io.Reader, sources ...Source) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var pre [12]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return fmt.Errorf("restore audit store: %w", err)
	}
	magic := string(pre[:8])
	if magic != snapshotMagic && magic != manifestMagic {
		if string(pre[:6]) == snapshotMagic[:6] {
			return fmt.Errorf("restore audit store: the snapshot's format %q is not %q or %q, the ones this binary reads: it was written by a newer Portcullis version; upgrade this node's binary", pre[:8], snapshotMagic, manifestMagic)
		}
		return errors.New("restore audit store: not an audit store snapshot")
	}
	hlen := binary.LittleEndian.Uint32(pre[8:])
	if hlen > maxSnapshotHeader {
		return errors.New("restore audit store: header too large")
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return fmt.Errorf("restore audit store: %w", err)
	}
	if magic == manifestMagic {
		hdr, err := decodeManifest(hb)
		if err != nil {
			return fmt.Errorf("restore audit store: %w", err)
		}
		return s.restoreManifest(br, hdr, sources)
	}
	var hdr snapshotHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return fmt.Errorf("restore audit store: header: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	moved := false
	for dp, b := range hdr.Base {
		if m := s.marks[dp]; m == nil || m.Next < b.Next {
			s.marks[dp] = &mark{Next: b.Next, Head: b.Head, Version: b.Version}
			s.base[dp] = b
			moved = true
		}
	}
	if moved {
		if err := s.saveBase(); err != nil {
			return err
		}
	}
	var restored, skipped int
	for _, size := range hdr.Segments {
		lr := io.LimitReader(br, size)
		fr := auditframe.NewReader(lr)
		for {
			b, off, ferr := fr.Next()
			if errors.Is(ferr, io.EOF) {
				break
			}
			if ferr != nil && !errors.Is(ferr, errBadCRC) {
				// Damage in the sender's copy: keep going with the next
				// segment; Verify on the sender names the record.
				s.log.Error("audit snapshot segment is damaged; the rest of it is skipped", "offset", off, "err", ferr)
				if err := fr.Drain(); err != nil {
					return fmt.Errorf("restore audit store: %w", err)
				}
				fr.Off = size
				break
			}
			rec := new(auditv1.Record)
			if err := proto.Unmarshal(b, rec); err != nil {
				skipped++
				continue
			}
			before := s.nextLocked(rec.GetDataplane())
			if err := s.stage(rec); err != nil {
				skipped++
				s.log.Warn("audit snapshot record not restored", "err", err)
				continue
			}
			if s.nextLocked(rec.GetDataplane()) > before {
				restored++
			}
			if len(s.buf) >= 1<<20 {
				if err := s.flush(); err != nil {
					return err
				}
			}
		}
		if fr.Off != size {
			return fmt.Errorf("restore audit store: segment of %d bytes ends at %d", size, fr.Off)
		}
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.log.Info("audit store restored from a snapshot", "records_added", restored, "skipped", skipped)
	return nil
}
