package llmwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Frame is one event of a provider's event stream, with the exact bytes
// it arrived as.
type Frame struct {
	// Raw is the event as the provider sent it, up to and including the
	// blank line that ends it.
	Raw []byte
	// Event is its event field ("" when it has none).
	Event string
	// Data is its data lines joined by "\n" (nil when it has none: a
	// comment or keep-alive).
	Data []byte
}

// ErrFrameTooLarge is returned by FrameReader for an event over its bound.
var ErrFrameTooLarge = errors.New("stream event exceeds the size limit")

// FrameReader splits an event stream (text/event-stream) into frames,
// keeping each one's bytes as they came. Lines end in "\n", "\r\n" or
// "\r".
type FrameReader struct {
	r   *bufio.Reader
	max int
}

// NewFrameReader reads frames of at most max bytes from r.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 16<<10), max: max}
}

// Next returns the next frame. At the end of the stream it returns
// io.EOF, or io.ErrUnexpectedEOF when the stream ended inside a frame
// (which is dropped: the format discards an unfinished event).
func (fr *FrameReader) Next() (*Frame, error) {
	var raw []byte
	f := &Frame{}
	var data bytes.Buffer
	hasData := false
	for {
		line, err := fr.line(fr.max - len(raw))
		if err != nil {
			if errors.Is(err, io.EOF) && len(raw) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		raw = append(raw, line...)
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			if len(raw) == len(line) {
				// A blank line between events: nothing to dispatch, but
				// relay it as is.
				f.Raw = raw
				return f, nil
			}
			f.Raw = raw
			if hasData {
				f.Data = data.Bytes()
			}
			return f, nil
		}
		if content[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(content, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "event":
			f.Event = string(value)
		}
	}
}

// line reads one line with its terminator, of at most limit bytes.
func (fr *FrameReader) line(limit int) ([]byte, error) {
	var out []byte
	for {
		b, err := fr.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(out) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(out) >= limit {
			return nil, ErrFrameTooLarge
		}
		out = append(out, b)
		switch b {
		case '\n':
			return out, nil
		case '\r':
			if next, err := fr.r.Peek(1); err == nil && next[0] == '\n' {
				_, _ = fr.r.ReadByte()
				out = append(out, '\n')
			}
			return out, nil
		}
	}
}
