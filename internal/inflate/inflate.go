// Package inflate decompresses gzip from callers that are not trusted with
// memory or CPU: the output is bounded in size and in its ratio to the
// compressed input consumed, so a small "gzip bomb" is refused after a
// bounded amount of work instead of being inflated (or drained) to the end.
package inflate

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// Errors Read returns when a bound is crossed; both wrap ErrBound.
var (
	// ErrBound matches every refusal of this package.
	ErrBound = errors.New("compressed message refused")
	// ErrTooLarge: the message decompresses to more than MaxBytes.
	ErrTooLarge = fmt.Errorf("%w: too large once decompressed", ErrBound)
	// ErrRatio: the message decompresses to more than MaxRatio times the
	// compressed bytes read so far (past Slack).
	ErrRatio = fmt.Errorf("%w: compression ratio too high", ErrBound)
)

// Limits bound one message.
type Limits struct {
	// MaxBytes is the most decompressed bytes Read returns; the byte after
	// it is an error (ErrTooLarge). Zero or less: unbounded.
	MaxBytes int64
	// MaxRatio bounds decompressed/compressed bytes (ErrRatio). Zero or
	// less: unbounded.
	MaxRatio int64
	// Slack is how much output is allowed whatever the ratio, so that a
	// small, very regular message (a JSON body of repeated fields) still
	// passes.
	Slack int64
}

// DefaultMaxRatio is a ratio no message met in practice exceeds (protobuf
// and JSON compress about 3-20 to 1) and far below what deflate reaches on
// crafted input (about 1,000 to 1).
const DefaultMaxRatio = 100

// DefaultSlack is the output allowed before the ratio applies.
const DefaultSlack = 1 << 20

// Reader is a gzip reader with Limits. The zero value is not usable; call
// NewReader, then Reset for each message. A Reader is not safe for
// concurrent use; it may be reused (pooled) after Reset.
type Reader struct {
	lim Limits
	src counter
	zr  *gzip.Reader
	br  *bufio.Reader
	out int64
	err error
}

// NewReader returns a Reader with limits l. Call Reset before reading.
func NewReader(l Limits) *Reader {
	return &Reader{lim: l, err: errors.New("inflate: Read before Reset")}
}

// Reset starts decompressing src, with fresh counts.
func (r *Reader) Reset(src io.Reader) error {
	r.out, r.err = 0, nil
	if byteSrc, ok := src.(io.ByteReader); ok {
		r.src = counter{r: src, b: byteSrc}
	} else {
		// gzip would add its own buffer; own it so that what it consumes
		// is what we count (to within the buffer, which the slack covers).
		if r.br == nil {
			r.br = bufio.NewReaderSize(src, 4096)
		} else {
			r.br.Reset(src)
		}
		r.src = counter{r: r.br, b: r.br}
	}
	var err error
	if r.zr == nil {
		r.zr, err = gzip.NewReader(&r.src)
	} else {
		err = r.zr.Reset(&r.src)
	}
	if err != nil {
		r.err = fmt.Errorf("read gzip header: %w", err)
		return r.err
	}
	return nil
}

// Read implements io.Reader. It never returns more than MaxBytes in total;
// once a bound is crossed it returns ErrTooLarge or ErrRatio from then on.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.lim.MaxBytes > 0 {
		// Room for one byte beyond the limit, to tell "exactly MaxBytes"
		// from "more".
		if room := r.lim.MaxBytes + 1 - r.out; int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := r.zr.Read(p)
	r.out += int64(n)
	switch {
	case r.lim.MaxBytes > 0 && r.out > r.lim.MaxBytes:
		r.err = ErrTooLarge
		return 0, r.err
	case r.lim.MaxRatio > 0 && r.out > r.lim.Slack && r.out > r.lim.MaxRatio*r.src.n:
		r.err = ErrRatio
		return 0, r.err
	}
	return n, err
}

// Close releases the gzip reader's state; it does not close the source.
func (r *Reader) Close() error {
	if r.zr == nil {
		return nil
	}
	return r.zr.Close()
}

// counter counts the compressed bytes gzip consumes. It is a ByteReader so
// that gzip reads through it byte by byte rather than through a hidden
// read-ahead buffer.
type counter struct {
	r io.Reader
	b io.ByteReader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *counter) ReadByte() (byte, error) {
	b, err := c.b.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}
