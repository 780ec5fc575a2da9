package demo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// Bounds: request bodies the demo server reads, calls it remembers.
const (
	maxBody  = 1 << 20
	maxCalls = 10_000
)

// Call is one tools/call request as it reached the server, recorded on
// arrival, before authentication, session lookup and argument validation.
type Call struct {
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Authorization is the request's Authorization header value, verbatim.
	Authorization string `json:"authorization"`
	// Header holds every request header.
	Header http.Header `json:"header"`
	Time   time.Time   `json:"time"`
	// Status is the HTTP status the server answered with: 200 when a
	// session took the call, 401 or 404 when it was refused before any tool
	// ran; 0 until the response header is written.
	Status int `json:"status"`
}

// callLog is the list of recorded calls, the newest maxCalls; safe for
// concurrent use.
type callLog struct {
	mu   sync.Mutex
	list []*Call
}

func (l *callLog) add(c *Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.list) == maxCalls {
		l.list = append(l.list[:0], l.list[1:]...)
	}
	l.list = append(l.list, c)
}

func (l *callLog) setStatus(c *Call, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.Status = status
}

func (l *callLog) calls() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Call, 0, len(l.list)) // encodes as [] rather than null
	for _, c := range l.list {
		out = append(out, *c)
	}
	return out
}

func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = nil
}

// record logs every POSTed tools/call request and hands the request, body
// intact, to next.
func (l *callLog) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			Method string `json:"method"`
			Params struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" {
			next.ServeHTTP(w, r)
			return
		}
		c := &Call{
			Tool:          msg.Params.Name,
			Arguments:     msg.Params.Arguments,
			Authorization: r.Header.Get("Authorization"),
			Header:        r.Header.Clone(),
			Time:          time.Now().UTC(),
		}
		l.add(c)
		next.ServeHTTP(&statusWriter{ResponseWriter: w, set: func(code int) { l.setStatus(c, code) }}, r)
	})
}

// statusWriter reports the status when the handler writes the header
// (before an SSE response's body, which can outlast the call).
type statusWriter struct {
	http.ResponseWriter
	set   func(status int)
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.set(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush lets SSE responses through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
