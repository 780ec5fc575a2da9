// Package audit records one audit record per call. Writer is the seam the
// durable, hash-chained log will fill; Local is the simple implementation
// used until then: JSON lines appended to a file, flushed per record.
package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sync"

	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Writer records audit records. Write returns only once the record is
// recorded as well as the implementation promises; a non-nil error means
// it was not, and the caller must fail the call closed. Implementations
// must be safe for concurrent use.
type Writer interface {
	Write(ctx context.Context, r *auditv1.Record) error
	Close() error
}

// Local appends records as JSON lines to a file.
type Local struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

var _ Writer = (*Local)(nil)

// OpenLocal opens (creating) the file at path for appending (mode 0600).
func OpenLocal(path string) (*Local, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &Local{f: f, w: bufio.NewWriter(f)}, nil
}

// Write appends r and flushes it to the file (not fsynced: the durable log
// comes with the audit work).
func (l *Local) Write(_ context.Context, r *auditv1.Record) error {
	b, err := protojson.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write audit record: %w", err)
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("write audit record: %w", err)
	}
	return nil
}

// Close flushes and closes the file.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		l.f.Close()
		return err
	}
	return l.f.Close()
}
