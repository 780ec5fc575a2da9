package mcpwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Event is one Server-Sent Event.
type Event struct {
	// ID is the event id ("" when the event has none).
	ID string
	// Name is the event type ("" means "message").
	Name string
	// Data is the event's data lines joined by "\n".
	Data []byte
	// Retry is the reconnection time in milliseconds the event asks for
	// (0 when absent).
	Retry int
}

// ErrEventTooLarge is returned by EventReader when an event exceeds its
// size limit.
var ErrEventTooLarge = errors.New("SSE event exceeds the size limit")

// EventReader reads Server-Sent Events (the WHATWG event-stream format)
// with a bound on each event's size.
type EventReader struct {
	r      *bufio.Reader
	max    int
	lastID string
	// line holds a line readLine could not leave in r's buffer.
	line []byte
}

// LastID is the last event id the stream set (also by events without
// data): what a client sends as Last-Event-ID to resume.
func (er *EventReader) LastID() string { return er.lastID }

// NewEventReader reads events of at most max bytes (data and fields) from
// r. Release gives its buffer back once it is no longer needed.
func NewEventReader(r io.Reader, max int) *EventReader {
	br, _ := readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(r, eventBufferSize)
	} else {
		br.Reset(r)
	}
	return &EventReader{r: br, max: max}
}

const eventBufferSize = 16 << 10

// readers are the buffers of released EventReaders: a tools/call answered
// on an event stream would otherwise allocate one per call.
var readers sync.Pool

// Release returns the reader's buffer for reuse; er must not be used
// afterwards. Events it returned stay valid: they never alias the buffer.
func (er *EventReader) Release() {
	if er.r == nil {
		return
	}
	er.r.Reset(nil)
	readers.Put(er.r)
	er.r = nil
}

// Next returns the next event that has data; comment lines and events
// without data or with empty data (keep-alives, a lone id or retry, MCP's
// priming event) are skipped, though their id still counts for LastID. It returns
// io.EOF at the end of the stream; an event cut off by the end is
// discarded, as the format requires.
func (er *EventReader) Next() (*Event, error) {
	ev := &Event{}
	var data bytes.Buffer
	hasData := false
	size := 0
	for {
		line, err := er.readLine(er.max - size)
		if err != nil {
			return nil, err
		}
		size += len(line) + 1
		if len(line) == 0 {
			// An event whose data is empty is not dispatched (WHATWG: an
			// empty data buffer at dispatch): that includes MCP's priming
			// event, an id and one empty data line, which only sets the
			// id a client resumes from.
			if hasData && data.Len() > 0 {
				ev.Data = data.Bytes()
				return ev, nil
			}
			ev, data, size, hasData = &Event{}, bytes.Buffer{}, 0, false
			continue
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID = string(value)
				er.lastID = ev.ID
			}
		case "event":
			ev.Name = eventName(value)
		case "retry":
			var n int
			if _, err := fmt.Sscanf(string(value), "%d", &n); err == nil && n >= 0 {
				ev.Retry = n
			}
		}
	}
}

// eventName is an event's type, without allocating for MCP's one.
func eventName(v []byte) string {
	if string(v) == "message" {
		return "message"
	}
	return string(v)
}

// readLine reads one line (ending in "\n", "\r\n" or "\r") of at most
// limit bytes, without its terminator. It takes what is buffered a run at
// a time, and reads no further than the terminator (and the "\n" after a
// "\r", which it waits for). The line is valid until the next read: it is
// in the reader's buffer when it was all there, else in er.line.
func (er *EventReader) readLine(limit int) ([]byte, error) {
	er.line = er.line[:0]
	owned := false // the line so far is in er.line
	for {
		if er.r.Buffered() == 0 {
			if _, err := er.r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return nil, io.EOF // a partial line or event is dropped
				}
				return nil, err
			}
		}
		buf, _ := er.r.Peek(er.r.Buffered())
		n := bytes.IndexAny(buf, "\r\n")
		run := buf
		if n >= 0 {
			run = buf[:n]
		}
		if len(run) > 0 && len(er.line)+len(run) > limit {
			return nil, ErrEventTooLarge
		}
		if n < 0 {
			er.line = append(er.line, run...)
			owned = true
			_, _ = er.r.Discard(len(run))
			continue
		}
		term := buf[n]
		if owned || term == '\r' {
			// Peeking past a "\r" may refill the buffer under the line.
			er.line = append(er.line, run...)
			run = er.line
		}
		_, _ = er.r.Discard(n + 1)
		if term == '\r' {
			if next, err := er.r.Peek(1); err == nil && next[0] == '\n' {
				_, _ = er.r.ReadByte()
			}
		}
		return run, nil
	}
}

// AppendEvent appends ev in event-stream format. Data is split into data
// lines at "\n"; "\r" in data, and line breaks in the id and name, are
// refused because they would change the framing.
func AppendEvent(dst []byte, ev *Event) ([]byte, error) {
	if strings.ContainsAny(ev.ID, "\r\n\x00") || strings.ContainsAny(ev.Name, "\r\n") || bytes.IndexByte(ev.Data, '\r') >= 0 {
		return dst, errors.New("SSE event id, name or data contains a forbidden line break")
	}
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	if ev.Name != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Name...)
		dst = append(dst, '\n')
	}
	if ev.Retry > 0 {
		dst = fmt.Appendf(dst, "retry: %d\n", ev.Retry)
	}
	for line := range bytes.SplitSeq(ev.Data, []byte("\n")) {
		dst = append(dst, "data: "...)
		dst = append(dst, line...)
		dst = append(dst, '\n')
	}
	return append(dst, '\n'), nil
}
