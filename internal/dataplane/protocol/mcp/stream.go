package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Limits on server→client requests waiting for the caller's answer.
const (
	// maxPendingAsks bounds the requests waiting for answers, over all
	// callers.
	maxPendingAsks = 10_000
)

var errStreamClosed = errors.New("the caller's response stream has ended")

// errNoElicitation refuses an elicitation for a caller whose protocol
// version has none.
var errNoElicitation = errors.New("the caller speaks MCP 2025-03-26, which has no elicitation")

// responseStream answers one POSTed request: with a single JSON body when
// nothing has to reach the caller before the response, else with an event
// stream (text/event-stream) whose last event is the response. In a legacy
// session the stream is resumable (see resume.go): its events carry ids
// and are kept, and the caller may reconnect with Last-Event-ID.
type responseStream struct {
	w         http.ResponseWriter
	canStream bool
	// newLog, when set, makes the stream resumable: it is called once,
	// when the answer turns into a stream, for the log that keeps its
	// events (see resume.go).
	newLog func() *eventLog
	now    func() time.Time

	mu      sync.Mutex
	started bool
	closed  bool
	log     *eventLog
	gone    bool // the caller's connection failed; events are only logged
}

func newResponseStream(w http.ResponseWriter, r *http.Request) *responseStream {
	return &responseStream{w: w, canStream: acceptsEventStream(r)}
}

// acceptsEventStream reports whether the request's Accept lists
// text/event-stream (or */*).
func acceptsEventStream(r *http.Request) bool {
	for rest, more := r.Header.Get("Accept"), true; more; {
		var part string
		part, rest, more = strings.Cut(rest, ",")
		part = strings.TrimSpace(part)
		switch part {
		case "text/event-stream", "*/*":
			return true
		case "application/json":
			continue // the usual other part, as clients send it
		}
		mt, _, err := mime.ParseMediaType(part)
		if err == nil && (mt == "text/event-stream" || mt == "*/*") {
			return true
		}
	}
	return false
}

// send writes one message before the response, switching the answer to an
// event stream on first use.
func (s *responseStream) send(msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStreamClosed
	}
	if !s.canStream {
		return errors.New("the caller does not accept an event stream")
	}
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
		if s.newLog != nil {
			s.log = s.newLog()
		}
	}
	return s.writeEventLocked(msg)
}

// writeEventLocked logs msg (when resumable) and writes it to the caller
// while the connection works. With a log, a failed write is not an
// error: the caller can resume.
func (s *responseStream) writeEventLocked(msg []byte) error {
	id := ""
	if s.log != nil {
		id = s.log.id + "-" + strconv.Itoa(s.log.append(msg))
	}
	if s.gone {
		return nil
	}
	ev, err := mcpwire.AppendEvent(nil, &mcpwire.Event{ID: id, Name: "message", Data: msg})
	if err == nil {
		if _, err = s.w.Write(ev); err == nil {
			err = http.NewResponseController(s.w).Flush()
		}
	}
	if err != nil && s.log != nil {
		s.gone = true
		return nil
	}
	return err
}

// finish writes the response: the stream's last event once streaming,
// else a JSON body with status. Later sends fail.
func (s *responseStream) finish(status int, msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.started {
		_ = s.writeEventLocked(msg)
		if s.log != nil {
			s.log.finish(s.now())
		}
		return
	}
	s.w.Header().Set("Content-Type", "application/json")
	s.w.WriteHeader(status)
	_, _ = s.w.Write(msg) //nolint:gosec // a JSON-RPC message, sent as application/json, never HTML
}

// header lets set change the response's headers unless they were sent
// (the answer became an event stream).
func (s *responseStream) header(set func(http.Header)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started && !s.closed {
		set(s.w.Header())
	}
}

// streamed reports whether the answer became an event stream.
func (s *responseStream) streamed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// asks holds the server→client requests relayed to callers and waiting
// for their answers, by the id the gateway gave them. An answer is taken
// only from the agent (and session) the request went to.
type asks struct {
	next atomic.Int64
	mu   sync.Mutex
	m    map[string]*pendingAsk
	// unanswered are the ids of the latest requests that stopped waiting
	// without an answer (withdrawn by the upstream, or their call ended),
	// oldest first: a late answer to one is accepted and dropped.
	unanswered []string
	gone       map[string]bool
}

// maxUnanswered bounds asks.unanswered.
const maxUnanswered = 1024

type pendingAsk struct {
	agent, session string
	upstreamID     json.RawMessage
	answer         chan []byte
}

// callRelay is the relay of one call and its MCP state, in one
// allocation.
type callRelay struct {
	pipeline.Relay
	wire                    callWire
	stream                  *responseStream
	h                       *Handler
	agent, session, version string
	// asked maps the ids of the upstream's requests relayed to the
	// caller to the gateway ids the caller saw. The forwarder calls
	// Notify and Ask from one goroutine at a time.
	asked map[string]string
}

// relay builds the pipeline.Relay of one call: notifications go to the
// caller's stream (log messages only at the level it asked for,
// logLevel, a LogLevelRank); server→client requests go there too with a
// gateway id, and only a caller in a session (the legacy era) can answer
// them; the upstream's cancellation of one reaches the caller under that
// id. A caller speaking 2025-03-26 is never asked for elicitation, which
// its version does not have: the upstream gets an error instead.
func (h *Handler) relay(s *responseStream, progressToken json.RawMessage, logLevel int, agent, session, version string) *pipeline.Relay {
	if !s.canStream {
		return nil
	}
	cr := &callRelay{stream: s, h: h, agent: agent, session: session, version: version}
	cr.wire = callWire{progressToken: progressToken, logLevel: logLevel}
	cr.Wire = &cr.wire
	cr.Notify = cr.notify
	if session != "" {
		cr.Ask = cr.ask
	}
	return &cr.Relay
}

func (cr *callRelay) ask(ctx context.Context, msg []byte) (<-chan []byte, error) {
	m, err := mcpwire.Parse(msg)
	if err != nil || m.Kind() != mcpwire.KindRequest {
		return nil, errors.New("not a request")
	}
	if cr.version == version20250326 && m.Method == "elicitation/create" {
		return nil, errNoElicitation
	}
	gwID, answers, err := cr.h.asks.ask(ctx, cr.stream, m, cr.agent, cr.session)
	if err != nil {
		return nil, err
	}
	if cr.asked == nil {
		cr.asked = map[string]string{}
	}
	cr.asked[string(m.ID)] = gwID
	return answers, nil
}

// notify sends a notification to the caller; the upstream's
// notifications/cancelled for a request the caller was asked gets the
// gateway's id for it (the forwarder passes no other).
func (cr *callRelay) notify(msg []byte) error {
	if cr.asked != nil && bytes.Contains(msg, []byte(`"notifications/cancelled"`)) {
		m, err := mcpwire.Parse(msg)
		if err == nil && m.Method == "notifications/cancelled" {
			id, _ := mcpwire.Find(m.Params, "requestId")
			gwID, ok := cr.asked[string(id)]
			if !ok {
				return nil
			}
			delete(cr.asked, string(id))
			cr.h.asks.drop(gwID)
			params, err := mcpwire.Set(m.Params, "requestId", []byte(gwID))
			if err != nil {
				return err
			}
			if msg, err = mcpwire.Set(m.Raw, "params", params); err != nil {
				return err
			}
		}
	}
	return cr.stream.send(msg)
}

// ask relays one server→client request m to the caller under a fresh
// gateway id and returns that id and where the answer will arrive. The
// entry is dropped when ctx ends.
func (a *asks) ask(ctx context.Context, s *responseStream, m *mcpwire.Message, agent, session string) (string, <-chan []byte, error) {
	gwID := `"pcs-` + strconv.FormatInt(a.next.Add(1), 10) + `"`
	out, err := mcpwire.Set(m.Raw, "id", []byte(gwID))
	if err != nil {
		return "", nil, err
	}
	p := &pendingAsk{agent: agent, session: session, upstreamID: m.ID, answer: make(chan []byte, 1)}
	a.mu.Lock()
	if a.m == nil {
		a.m = map[string]*pendingAsk{}
	}
	if len(a.m) >= maxPendingAsks {
		a.mu.Unlock()
		return "", nil, errors.New("too many server requests are waiting for answers")
	}
	a.m[gwID] = p
	a.mu.Unlock()
	context.AfterFunc(ctx, func() { a.drop(gwID) })
	if err := s.send(out); err != nil {
		a.drop(gwID)
		return "", nil, err
	}
	return gwID, p.answer, nil
}

// drop stops waiting for the answer to id, if it still waits.
func (a *asks) drop(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.m[id]; !ok {
		return // answered
	}
	delete(a.m, id)
	if a.gone == nil {
		a.gone = map[string]bool{}
	}
	if len(a.unanswered) == maxUnanswered {
		delete(a.gone, a.unanswered[0])
		a.unanswered = a.unanswered[1:]
	}
	a.unanswered = append(a.unanswered, id)
	a.gone[id] = true
}

// ended reports whether id is one of the latest relayed requests that
// stopped waiting without an answer.
func (a *asks) ended(id json.RawMessage) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gone[string(id)]
}

// answer takes a caller's response to a relayed request: false when no
// request of this agent and session waits under its id.
func (a *asks) answer(m *mcpwire.Message, agent, session string) bool {
	a.mu.Lock()
	p, ok := a.m[string(m.ID)]
	if ok && (p.agent != agent || p.session != session) {
		ok = false
	}
	if ok {
		delete(a.m, string(m.ID))
	}
	a.mu.Unlock()
	if !ok {
		return false
	}
	back, err := mcpwire.Set(m.Raw, "id", p.upstreamID)
	if err != nil {
		return false
	}
	p.answer <- back
	return true
}
