package a2awire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// ContentTypeEventStream is the media type of a Server-Sent Events stream.
const ContentTypeEventStream = "text/event-stream"

// ErrEventTooLarge is returned by EventReader for an event over its limit.
var ErrEventTooLarge = errors.New("SSE event exceeds the size limit")

// EventReader reads the data of Server-Sent Events (WHATWG event-stream
// format): in A2A's JSON-RPC binding each event's data is one JSON-RPC
// response. Comments, ids, event names and events without data are
// skipped.
type EventReader struct {
	r   *bufio.Reader
	max int
}

// NewEventReader reads events of at most max bytes from r.
func NewEventReader(r io.Reader, max int) *EventReader {
	return &EventReader{r: bufio.NewReaderSize(r, 16<<10), max: max}
}

// Next returns the next event's data (its data lines joined by "\n"). It
// returns io.EOF at the end of the stream; an event cut off by the end is
// discarded, as the format requires, and io.ErrUnexpectedEOF reports that
// one was.
func (er *EventReader) Next() ([]byte, error) {
	var data bytes.Buffer
	hasData, partial := false, false
	for {
		line, err := er.readLine(er.max - data.Len())
		if err != nil {
			if errors.Is(err, io.EOF) && (partial || hasData) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			if hasData && data.Len() > 0 {
				return data.Bytes(), nil
			}
			data.Reset()
			hasData, partial = false, false
			continue
		}
		partial = true
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if hasData {
			data.WriteByte('\n')
		}
		if data.Len()+len(value) > er.max {
			return nil, ErrEventTooLarge
		}
		data.Write(value)
		hasData = true
	}
}

// readLine reads one line (ending in "\n", "\r\n" or "\r") of at most
// limit bytes, without its terminator.
func (er *EventReader) readLine(limit int) ([]byte, error) {
	var line []byte
	for {
		b, err := er.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch b {
		case '\n':
			return line, nil
		case '\r':
			if next, err := er.r.Peek(1); err == nil && next[0] == '\n' {
				_, _ = er.r.ReadByte()
			}
			return line, nil
		}
		if len(line) >= limit+1 {
			return nil, ErrEventTooLarge
		}
		line = append(line, b)
	}
}

// AppendEvent appends one event carrying data to dst. data must not
// contain a line break: JSON the gateway encodes never does (and the
// official Go SDK reads one data line per event).
func AppendEvent(dst, data []byte) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, data...)
	return append(dst, '\n', '\n')
}
