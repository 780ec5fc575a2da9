// Package auditframe is the on-disk framing of audit records, shared by
// the data plane's local log and the control plane's store (which keep
// the same format, so a segment means the same on both):
//
//	length  uint32, little-endian: bytes in record (1 … MaxRecordSize)
//	crc     uint32, little-endian: CRC-32C (Castagnoli) of record
//	record  the deterministic protobuf encoding of an auditv1.Record
package auditframe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// HeaderSize is the length and CRC in front of every record.
const HeaderSize = 8

// MaxRecordSize is the largest record a frame holds, in bytes.
const MaxRecordSize = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decoding errors. ErrTorn is what a crash mid-write leaves at the end of
// a segment; the others are damage (or a crash that left garbage, such as
// zeroed blocks, behind the last good frame).
var (
	ErrTorn      = errors.New("frame runs past the end of the file")
	ErrBadLength = errors.New("frame length out of range")
	ErrBadCRC    = errors.New("frame CRC mismatch")
)

// PutHeader fills the HeaderSize bytes hdr in front of rec.
func PutHeader(hdr, rec []byte) {
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(rec, castagnoli))
}

// Reader reads frames.
type Reader struct {
	r *bufio.Reader
	// Off is the offset of the next frame.
	Off int64
	// Limit, when not negative, is an offset at which reading stops
	// (io.EOF).
	Limit int64
	buf   []byte
}

// NewReader reads frames from r, from offset 0 (set Off to start
// elsewhere, having positioned r there), without a limit.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), Limit: -1}
}

// Next returns the next frame's record bytes (valid until the following
// call) and the frame's offset. It returns io.EOF at a clean end (or at
// Limit), and ErrTorn, ErrBadLength or ErrBadCRC (with the offset of the
// bad frame) otherwise. On ErrBadCRC the record bytes are returned too and
// reading can go on with the next frame. It never allocates more than
// MaxRecordSize for a frame.
func (fr *Reader) Next() ([]byte, int64, error) {
	off := fr.Off
	if fr.Limit >= 0 && off >= fr.Limit {
		return nil, off, io.EOF
	}
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return nil, off, io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, off, ErrTorn
		}
		return nil, off, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n == 0 || n > MaxRecordSize {
		return nil, off, ErrBadLength
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	rec := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, rec); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, off, ErrTorn
		}
		return nil, off, err
	}
	fr.Off += HeaderSize + int64(n)
	if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return rec, off, ErrBadCRC
	}
	return rec, off, nil
}

// Drain reads and discards the rest of the underlying reader.
func (fr *Reader) Drain() error {
	_, err := io.Copy(io.Discard, fr.r)
	return err
}
