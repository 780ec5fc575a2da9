// Package audit is the data plane's audit log: one record per call,
// appended to a durable, hash-chained log on local disk (Log) before the
// call's result is released. Records carry a gap-free sequence and a
// SHA-256 chain (see the hash field of auditv1.Record for the exact rule),
// so Verify can tell an intact log from one that was cut, edited or
// reordered, and name the first bad record.
//
// On disk a log is a directory of segment files, each named after the
// sequence of its first record in 20 decimal digits
// (00000000000000000001.seg). A segment is a run of frames:
//
//	length  uint32, little-endian: bytes in record (1 … MaxRecordSize)
//	crc     uint32, little-endian: CRC-32C (Castagnoli) of record
//	record  length bytes: an auditv1.Record, deterministic proto binary
//
// with nothing between frames and no header. A new segment starts once
// the current one would grow past Options.SegmentSize.
package audit

import (
	"context"
	"errors"
	"github.com/portcullis-gw/portcullis/internal/auditframe"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Writer records audit records. Write returns only once the record is
// recorded as well as the implementation promises; a non-nil error means
// it was not, and the caller must fail the call closed. Implementations
// must be safe for concurrent use.
type Writer interface {
	Write(ctx context.Context, r *auditv1.Record) error
	Close() error
}

// MaxRecordSize is the largest encoded record a log accepts, in bytes.
const MaxRecordSize = auditframe.MaxRecordSize

var (
	// ErrRecordTooLarge is returned by Write for a record whose encoding
	// exceeds MaxRecordSize. The log stays usable; no sequence is spent.
	ErrRecordTooLarge = errors.New("audit record too large")
	// ErrFailed wraps the write or fsync error that stopped the log. Once
	// it is returned, every later Write returns it too: records after a
	// failed write could not be chained to what is on disk.
	ErrFailed = errors.New("audit log failed")
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("audit log closed")
)
