package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// frameHeaderSize is the length and CRC in front of every record.
const frameHeaderSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame decoding errors. errTorn is what a crash mid-write leaves at the
// end of a segment; the others are damage (or a crash that left garbage,
// such as zeroed blocks, behind the last good frame).
var (
	errTorn      = errors.New("frame runs past the end of the file")
	errBadLength = errors.New("frame length out of range")
	errBadCRC    = errors.New("frame CRC mismatch")
)

// putFrameHeader fills the frameHeaderSize bytes in front of rec.
func putFrameHeader(hdr, rec []byte) {
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(rec, castagnoli))
}

// frameReader reads frames from a segment.
type frameReader struct {
	r   *bufio.Reader
	off int64 // offset of the next frame
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next frame's record bytes (valid until the following
// call) and the frame's offset. It returns io.EOF at a clean end, and
// errTorn, errBadLength or errBadCRC (with the offset of the bad frame)
// otherwise. It never allocates more than MaxRecordSize for a frame.
func (fr *frameReader) next() (rec []byte, off int64, err error) {
	off = fr.off
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return nil, off, io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, off, errTorn
		}
		return nil, off, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n == 0 || n > MaxRecordSize {
		return nil, off, errBadLength
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	rec = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, rec); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, off, errTorn
		}
		return nil, off, err
	}
	if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return nil, off, errBadCRC
	}
	fr.off += frameHeaderSize + int64(n)
	return rec, off, nil
}
