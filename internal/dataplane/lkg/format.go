package lkg

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// The file is a fixed-size header followed by the AES-256-GCM ciphertext
// of the snapshot (with its 16-byte tag). The whole header is the AEAD's
// additional data, so no header field can change without Load noticing.
//
//	offset size  field
//	0      6     magic "PCLKG1"
//	6      8     version, big endian
//	14     8     plaintext length, big endian
//	22     32    SHA-256 of the plaintext
//	54     12    GCM nonce (random per Save)
//	66     n+16  ciphertext and tag
const (
	magic      = "PCLKG1"
	nonceSize  = 12
	tagSize    = 16
	headerSize = len(magic) + 8 + 8 + sha256.Size + nonceSize
)

// MaxSnapshotSize bounds the snapshot a Store saves and loads, so a damaged
// length field cannot make Load allocate without limit.
const MaxSnapshotSize = 256 << 20

// Precise causes wrapped together with ErrCorrupt.
var (
	// ErrTruncated: the file is shorter than its header says.
	ErrTruncated = errors.New("truncated")
	// ErrBadMagic: the file is not a last-known-good snapshot of this
	// format.
	ErrBadMagic = errors.New("bad magic")
	// ErrTrailingData: the file is longer than its header says.
	ErrTrailingData = errors.New("trailing data")
	// ErrAuthFailed: decryption failed, because the file was written with
	// another key (another join credential) or was altered.
	ErrAuthFailed = errors.New("authentication failed (written with another join credential, or altered)")
	// ErrChecksum: the decrypted snapshot does not match the checksum in the
	// header.
	ErrChecksum = errors.New("checksum mismatch")
)

type header struct {
	version uint64
	length  uint64
	sum     [sha256.Size]byte
	nonce   [nonceSize]byte
}

func (h *header) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint64(b, h.version)
	b = binary.BigEndian.AppendUint64(b, h.length)
	b = append(b, h.sum[:]...)
	b = append(b, h.nonce[:]...)
	return b
}

// corrupt wraps cause and detail under ErrCorrupt.
func corrupt(cause error, format string, args ...any) error {
	return fmt.Errorf("%w: %w (%s)", ErrCorrupt, cause, fmt.Sprintf(format, args...))
}

// seal encrypts snapshot into a complete file image.
func seal(aead cipher.AEAD, h header, snapshot []byte) []byte {
	hdr := h.marshal()
	out := make([]byte, 0, len(hdr)+len(snapshot)+aead.Overhead())
	out = append(out, hdr...)
	return aead.Seal(out, h.nonce[:], snapshot, hdr)
}

// open checks and decrypts a file image.
func open(aead cipher.AEAD, macKey, b []byte) (uint64, []byte, error) {
	if len(b) < len(magic) {
		if bytes.HasPrefix([]byte(magic), b) {
			return 0, nil, corrupt(ErrTruncated, "%d bytes, shorter than the header", len(b))
		}
		return 0, nil, corrupt(ErrBadMagic, "file does not start with %q", magic)
	}
	if string(b[:len(magic)]) != magic {
		return 0, nil, corrupt(ErrBadMagic, "file does not start with %q", magic)
	}
	if len(b) < headerSize {
		return 0, nil, corrupt(ErrTruncated, "%d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	var h header
	p := b[len(magic):]
	h.version = binary.BigEndian.Uint64(p)
	h.length = binary.BigEndian.Uint64(p[8:])
	copy(h.sum[:], p[16:])
	copy(h.nonce[:], p[16+sha256.Size:])
	got := uint64(len(b))
	if h.length > got { // also keeps the sum below from overflowing
		return 0, nil, corrupt(ErrTruncated, "%d bytes, header says the snapshot alone has %d", got, h.length)
	}
	want := uint64(headerSize) + h.length + tagSize
	switch {
	case got < want:
		return 0, nil, corrupt(ErrTruncated, "%d bytes, header says %d", got, want)
	case got > want:
		return 0, nil, corrupt(ErrTrailingData, "%d bytes, header says %d", got, want)
	}
	plain, err := aead.Open(nil, h.nonce[:], b[headerSize:], b[:headerSize])
	if err != nil {
		return 0, nil, corrupt(ErrAuthFailed, "%d-byte snapshot", h.length)
	}
	if sum := checksum(macKey, plain); !hmac.Equal(sum[:], h.sum[:]) {
		return 0, nil, corrupt(ErrChecksum, "version %d", h.version)
	}
	return h.version, plain, nil
}

// checksum is an HMAC-SHA-256 of the plaintext under a key derived from the
// storage key: it detects a snapshot that decrypts but is not the one that
// was written, without letting a reader of the file confirm a guess of its
// content (a plain hash would).
func checksum(macKey, plain []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(plain)
	var out [sha256.Size]byte
	copy(out[:], m.Sum(nil))
	return out
}
