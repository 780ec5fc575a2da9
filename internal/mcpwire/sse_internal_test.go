package mcpwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// byteLine is readLine as it was first written, a byte at a time: the
// reference FuzzReadLine holds the buffered version to.
func byteLine(r *bufio.Reader, limit int) (string, error) {
	var b strings.Builder
	for {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", io.EOF
			}
			return "", err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			if next, err := r.Peek(1); err == nil && next[0] == '\n' {
				_, _ = r.ReadByte()
			}
			return b.String(), nil
		}
		if b.Len() >= limit {
			return "", ErrEventTooLarge
		}
		b.WriteByte(c)
	}
}

// FuzzReadLine: the buffered readLine returns the lines and errors the
// byte-at-a-time one does, however the input arrives.
func FuzzReadLine(f *testing.F) {
	f.Add([]byte("id: 1\nevent: message\ndata: {}\n\n"), 8, false)
	f.Add([]byte("data: a\r\ndata: b\r\r: c\ndata\n\n"), 3, true)
	f.Add([]byte("0123456789\n"), 10, true)
	f.Fuzz(func(t *testing.T, b []byte, limit int, oneByte bool) {
		var src io.Reader = bytes.NewReader(b)
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		er := NewEventReader(src, 0)
		defer er.Release()
		ref := bufio.NewReaderSize(bytes.NewReader(b), 16)
		for range len(b) + 1 {
			got, gerr := er.readLine(limit)
			want, werr := byteLine(ref, limit)
			if string(got) != want || !errors.Is(gerr, werr) {
				t.Fatalf("%q limit %d: readLine = %q, %v; want %q, %v", b, limit, got, gerr, want, werr)
			}
			if werr != nil {
				return
			}
		}
	})
}
