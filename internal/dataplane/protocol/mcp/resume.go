package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Resumable streams (legacy era). A tools/call answered with an event
// stream in a session keeps its events, with ids "<stream>-<n>", for
// resumeWindow after it ends. When the connection breaks, the call goes on
// (the spec: a disconnection is not a cancellation; notifications/cancelled
// is), and the client resumes with GET and Last-Event-ID to get what it
// missed and the rest. Bounds: maxStreamEvents and maxStreamBytes per
// stream (beyond them the oldest events are dropped, and resuming from one
// of them is refused), maxStreamsPerSession kept per session.
const (
	resumeWindow         = time.Minute
	maxStreamEvents      = 1000
	maxStreamBytes       = 8 << 20
	maxStreamsPerSession = 32
	keepAliveEvery       = 15 * time.Second
)

// eventLog holds one response stream's events for resumption.
type eventLog struct {
	id      string
	session string
	agent   string

	mu      sync.Mutex
	first   int // index of events[0]
	events  [][]byte
	bytes   int
	done    bool
	ended   time.Time
	changed chan struct{} // closed and replaced on every append
}

func (l *eventLog) append(msg []byte) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, msg)
	l.bytes += len(msg)
	for len(l.events) > maxStreamEvents || (l.bytes > maxStreamBytes && len(l.events) > 1) {
		l.bytes -= len(l.events[0])
		l.events = l.events[1:]
		l.first++
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return l.first + len(l.events) - 1
}

func (l *eventLog) finish(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done, l.ended = true, now
	close(l.changed)
	l.changed = make(chan struct{})
}

// after returns the events after index n (n = -1 for all), whether the
// stream has ended, and a channel closed on the next change; ok is false
// when events after n were already dropped.
func (l *eventLog) after(n int) (events [][]byte, next int, done bool, changed <-chan struct{}, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n+1 < l.first {
		return nil, 0, l.done, l.changed, false
	}
	start := n + 1 - l.first
	if start < len(l.events) {
		events = append(events, l.events[start:]...)
	}
	return events, n + 1 + len(events), l.done, l.changed, true
}

// streamStore holds the resumable streams of every session.
type streamStore struct {
	next atomic.Int64
	mu   sync.Mutex
	m    map[string]*eventLog // by id
	now  func() time.Time
}

// create starts a stream log for session, dropping expired ones and the
// session's oldest beyond its bound.
func (s *streamStore) create(session, agent string) *eventLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*eventLog{}
	}
	now := s.now()
	var oldest *eventLog
	mine := 0
	for id, l := range s.m {
		l.mu.Lock()
		expired := l.done && now.Sub(l.ended) > resumeWindow
		l.mu.Unlock()
		if expired {
			delete(s.m, id)
			continue
		}
		if l.session == session {
			mine++
			if oldest == nil || l.id < oldest.id {
				oldest = l
			}
		}
	}
	if mine >= maxStreamsPerSession && oldest != nil {
		delete(s.m, oldest.id)
	}
	l := &eventLog{id: "s" + strconv.FormatInt(s.next.Add(1), 10), session: session, agent: agent, changed: make(chan struct{})}
	s.m[l.id] = l
	return l
}

func (s *streamStore) get(id, session, agent string) (*eventLog, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[id]
	if !ok || l.session != session || l.agent != agent {
		return nil, false
	}
	return l, true
}

// parseEventID splits "<stream>-<n>".
func parseEventID(v string) (stream string, n int, ok bool) {
	i := strings.LastIndexByte(v, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(v[i+1:])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return v[:i], n, true
}

// calls tracks the running tools/calls of sessions, so that
// notifications/cancelled can cancel one.
type calls struct {
	mu sync.Mutex
	m  map[string]context.CancelFunc // "<session>\x00<raw request id>"
}

func (c *calls) add(session string, id json.RawMessage, cancel context.CancelFunc) func() {
	key := session + "\x00" + string(id)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]context.CancelFunc{}
	}
	c.m[key] = cancel
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.m, key)
		c.mu.Unlock()
	}
}

// cancelSession cancels every call of session that runs: the session
// ended, so no one can resume their streams or receive their results.
func (c *calls) cancelSession(session string) {
	prefix := session + "\x00"
	var cancels []context.CancelFunc
	c.mu.Lock()
	for key, cancel := range c.m {
		if strings.HasPrefix(key, prefix) {
			cancels = append(cancels, cancel)
		}
	}
	c.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}

// cancel cancels the session's call with request id, if it runs.
func (c *calls) cancel(session string, id json.RawMessage) {
	c.mu.Lock()
	cancel := c.m[session+"\x00"+string(id)]
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// serveGet opens a legacy session's stream: with Last-Event-ID, it resumes
// a response stream (the events after that one, then the rest as they
// come, until it ends); without, it is the session's standalone stream,
// which carries notifications/tools/list_changed when the configuration
// changes, and keep-alive comments.
func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request) {
	if !acceptsEventStream(r) {
		if !presented(r, bearer(r)) {
			h.anonymous(w, r, nil, false)
			return
		}
		http.Error(w, "GET needs Accept: text/event-stream", http.StatusNotAcceptable)
		return
	}
	last := r.Header.Get("Last-Event-ID")
	method := "GET (stream)"
	if last != "" {
		method = "GET (resume)"
	}
	call, ok := h.beginBare(w, r, method)
	if !ok {
		return
	}
	session := r.Header.Get("Mcp-Session-Id")
	if session == "" {
		// The 2026-07-28 era has no GET stream; neither does a caller
		// without a session.
		w.Header().Set("Allow", "POST, DELETE")
		http.Error(w, "GET needs a session (Mcp-Session-Id); the 2026-07-28 era has no GET stream", http.StatusMethodNotAllowed)
		return
	}
	name := call.Agent.GetMeta().GetName()
	if !h.sessions.use(session, name) {
		sessionNotFound(w)
		return
	}
	call.Op = pipeline.OpSession
	if _, err := h.backend.Run(r.Context(), call); err != nil {
		http.Error(w, h.logged(r, err).Message, http.StatusServiceUnavailable)
		return
	}
	if last != "" {
		h.resume(w, r, last, session, name)
		return
	}
	h.standalone(w, r, session)
}

func startEventStream(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
}

func writeEvent(w http.ResponseWriter, id string, msg []byte) error {
	ev, err := mcpwire.AppendEvent(nil, &mcpwire.Event{ID: id, Name: "message", Data: msg})
	if err != nil {
		return err
	}
	if _, err := w.Write(ev); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}

// resume replays a response stream after the event last and follows it
// to its end.
func (h *Handler) resume(w http.ResponseWriter, r *http.Request, last, session, agent string) {
	streamID, n, ok := parseEventID(last)
	if !ok {
		http.Error(w, "Last-Event-ID is not an event id this gateway issued", http.StatusBadRequest)
		return
	}
	l, ok := h.streams.get(streamID, session, agent)
	if !ok {
		sessionNotFound(w) // gone or never this session's: the stream cannot be resumed
		return
	}
	started := false
	for {
		events, next, done, changed, ok := l.after(n)
		if !ok {
			if !started {
				http.Error(w, "the events after Last-Event-ID are no longer kept", http.StatusGone)
			}
			return
		}
		if !started {
			startEventStream(w)
			started = true
		}
		for i, ev := range events {
			if err := writeEvent(w, l.id+"-"+strconv.Itoa(n+1+i), ev); err != nil {
				return
			}
		}
		n = next - 1
		if done && len(events) == 0 {
			return
		}
		if done {
			continue // drain what came with the end, then stop
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

// standalone serves the session's server-initiated stream.
func (h *Handler) standalone(w http.ResponseWriter, r *http.Request, session string) {
	ch := h.listeners.add(session)
	defer h.listeners.remove(session, ch)
	startEventStream(w)
	t := time.NewTicker(keepAliveEvery)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			if err := http.NewResponseController(w).Flush(); err != nil {
				return
			}
		case msg, ok := <-ch:
			if !ok {
				return // replaced by a newer GET of the session
			}
			if err := writeEvent(w, "", msg); err != nil {
				return
			}
		}
	}
}

// listeners are the sessions' standalone streams: one per session (a new
// GET replaces the old one, whose channel closes).
type listeners struct {
	mu sync.Mutex
	m  map[string]chan []byte
}

func (ls *listeners) add(session string) chan []byte {
	ch := make(chan []byte, 16)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = map[string]chan []byte{}
	}
	if old, ok := ls.m[session]; ok {
		close(old)
	}
	ls.m[session] = ch
	return ch
}

func (ls *listeners) remove(session string, ch chan []byte) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m[session] == ch {
		delete(ls.m, session)
	}
}

// closeAll ends every standalone stream.
func (ls *listeners) closeAll() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for session, ch := range ls.m {
		close(ch)
		delete(ls.m, session)
	}
}

// send passes msg to the session's standalone stream, if it has one open
// with room: a caller without a stream misses it, as the spec allows.
func (ls *listeners) send(session string, msg []byte) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ch, ok := ls.m[session]; ok {
		select {
		case ch <- msg:
		default:
		}
	}
}

// broadcast sends msg to every standalone stream; a stream whose buffer is
// full misses it (a list_changed is idempotent).
func (ls *listeners) broadcast(msg []byte) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, ch := range ls.m {
		select {
		case ch <- msg:
		default:
		}
	}
}

// ToolsChanged tells every session with a standalone stream that the tool
// list may have changed (a new configuration, a quarantine).
func (h *Handler) ToolsChanged() {
	msg, _ := mcpwire.NewNotification("notifications/tools/list_changed", nil)
	h.listeners.broadcast(msg)
}
