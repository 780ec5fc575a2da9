package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
)

// answer is the response to one request: a JSON body, or for a streaming
// method an event stream whose events are JSON-RPC responses to the
// request's id (errors included: the official SDKs read a streaming
// method's answer as events). Safe for concurrent use.
type answer struct {
	w         http.ResponseWriter
	id        json.RawMessage
	streaming bool
	// plain marks an answer outside JSON-RPC (the card endpoint).
	plain   bool
	stopped context.Context

	mu      sync.Mutex
	started bool
	done    bool
	gone    bool
}

func newAnswer(w http.ResponseWriter, _ *http.Request, id json.RawMessage, streaming bool, stopped context.Context) *answer {
	if id == nil {
		id = json.RawMessage("null")
	}
	return &answer{w: w, id: id, streaming: streaming, stopped: stopped}
}

var errAnswered = errors.New("the answer is complete")

// send writes one event before the result.
func (a *answer) send(msg []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return errAnswered
	}
	if a.gone {
		return errCallerGone
	}
	return a.writeEventLocked(msg)
}

// writeEventLocked starts the stream if needed and writes one event; a
// failed write marks the caller gone.
func (a *answer) writeEventLocked(msg []byte) error {
	if !a.started {
		h := a.w.Header()
		h.Set("Content-Type", a2awire.ContentTypeEventStream)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		a.w.WriteHeader(http.StatusOK)
		a.started = true
	}
	_, err := a.w.Write(a2awire.AppendEvent(nil, msg)) //nolint:gosec // JSON the gateway encoded, served as text/event-stream

	if err == nil {
		err = http.NewResponseController(a.w).Flush()
	}
	if err != nil {
		a.gone = true
		return errCallerGone
	}
	return nil
}

// finish answers with result.
func (a *answer) finish(result json.RawMessage) {
	msg, err := a2awire.NewResult(a.id, result)
	if err != nil {
		a.fail(http.StatusOK, &a2awire.Error{Code: a2awire.CodeInternal, Message: "the gateway failed to encode its answer"})
		return
	}
	a.write(http.StatusOK, msg)
}

// fail answers with an error: an event of a stream (HTTP status 200), or
// a JSON body with status.
func (a *answer) fail(status int, e *a2awire.Error) {
	a.write(status, a2awire.NewError(a.id, e))
}

// end ends a stream that has nothing more to say.
func (a *answer) end() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.done && !a.started && a.streaming {
		h := a.w.Header()
		h.Set("Content-Type", a2awire.ContentTypeEventStream)
		h.Set("Cache-Control", "no-cache")
		a.w.WriteHeader(http.StatusOK)
		a.started = true
	}
	a.done = true
}

func (a *answer) write(status int, msg []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	if a.gone {
		return
	}
	if a.streaming && (a.started || status == http.StatusOK) {
		_ = a.writeEventLocked(msg)
		return
	}
	writeJSON(a.w, status, msg)
}

// streamContext is ctx, also ended when the endpoint stops: a stream
// does not hold a shutting-down data plane open.
func (a *answer) streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(a.stopped, cancel)
	return ctx, func() { stop(); cancel() }
}
