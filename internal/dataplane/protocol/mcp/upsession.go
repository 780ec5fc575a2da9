package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// upSession is the pool's connection to one upstream under one set of
// settings: the mcpclient.Client every call shares, and the listener that
// keeps the upstream's notification stream open, on which it sends what
// belongs to no call:
//
//   - legacy era: the session's standalone stream (HTTP GET), opened once
//     the session is first used and kept open, as SDK clients do, so that
//     the upstream's keep-alive pings are answered (by mcpclient) and
//     resource updates arrive; when the upstream forgets the session the
//     listener makes a new one and subscribes it again to every resource
//     the gateway's callers follow;
//   - modern era (2026-07-28): a subscriptions/listen stream, open while
//     the gateway's callers follow some of the upstream's resources, and
//     re-opened with the new list whenever it changes.
//
// Log messages and requests on that stream belong to no caller: log
// messages are dropped, requests other than ping refused.
type upSession struct {
	*mcpclient.Client
	name string
	pool *Pool

	ctx    context.Context // ends at close
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	running bool
	// retryAt delays a listener that failed without subscriptions to
	// keep it up (the next use restarts it, not before).
	retryAt time.Time
	wg      sync.WaitGroup

	// listening is set while the listener runs (the hot path reads only
	// this); quiet when no stream is to be opened on its own: the
	// upstream has none, or speaks the modern era (whose stream opens for
	// subscriptions only).
	listening atomic.Bool
	quiet     atomic.Bool
	// subscribed is the legacy session id the upstream holds the
	// gateway's subscriptions in (listener goroutine only).
	subscribed string

	// streamMu guards streamOpen (the legacy standalone stream is open)
	// and streamUp, closed when it opens and replaced when it ends.
	streamMu   sync.Mutex
	streamOpen bool
	streamUp   chan struct{}
}

// Listener timings.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 30 * time.Second
	// listenIdleRetry is how long a listener that failed without
	// subscriptions waits before the next use may restart it.
	listenIdleRetry = 10 * time.Second
)

func newUpSession(p *Pool, name string, c *mcpclient.Client) *upSession {
	ctx, cancel := context.WithCancel(context.Background())
	return &upSession{Client: c, name: name, pool: p, ctx: ctx, cancel: cancel, streamUp: make(chan struct{})}
}

// streamOpened and streamEnded track the legacy standalone stream.
func (s *upSession) streamOpened() {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if !s.streamOpen {
		s.streamOpen = true
		close(s.streamUp)
	}
}

func (s *upSession) streamEnded() {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streamOpen {
		s.streamOpen = false
		s.streamUp = make(chan struct{})
	}
}

// awaitStream waits, at most d, until the upstream's standalone stream is
// open (updates sent before it opens are lost: the upstream has nowhere
// to send them), unless the upstream offers none.
func (s *upSession) awaitStream(ctx context.Context, d time.Duration) {
	s.streamMu.Lock()
	open, up := s.streamOpen, s.streamUp
	s.streamMu.Unlock()
	if open || s.quiet.Load() {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-up:
	case <-ctx.Done():
	case <-s.ctx.Done():
	case <-t.C:
	}
}

// Close stops the listener and ends the upstream session.
func (s *upSession) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.Client.Close(ctx)
}

// used starts the listener after a call used the session, unless it runs
// or has nothing to do on its own. It is on the hot path: two atomic
// loads when the listener runs.
func (s *upSession) used() {
	if s.listening.Load() || s.quiet.Load() {
		return
	}
	s.start(false)
}

// subscriptionsChanged starts the listener for the upstream's
// subscriptions (a modern upstream's stream opens for them alone).
func (s *upSession) subscriptionsChanged() { s.start(true) }

func (s *upSession) start(forSubscriptions bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.running || !forSubscriptions && time.Now().Before(s.retryAt) {
		return
	}
	s.running = true
	s.listening.Store(true)
	s.wg.Go(s.run)
}

// listenNext is what the listener does after one stream.
type listenNext int

const (
	listenAgain  listenNext = iota // at once (the subscriptions changed)
	listenWorked                   // after the shortest pause: the stream worked
	listenFailed                   // after a growing pause, if there is reason to
	listenStop                     // not until the next use or subscription
)

// run is the listener: it keeps the upstream's stream open while there is
// reason to, and ends when there is none (the next use or subscription
// starts it again).
func (s *upSession) run() {
	idle := true
	defer func() {
		s.mu.Lock()
		s.running = false
		s.listening.Store(false)
		if idle {
			s.retryAt = time.Now().Add(listenIdleRetry)
		}
		s.mu.Unlock()
	}()
	backoff := listenBackoffMin
	for s.ctx.Err() == nil {
		next := listenFailed
		if era, err := s.Era(s.ctx); err == nil {
			if era == mcpclient.EraModern {
				s.quiet.Store(true)
				next = s.listenModern()
			} else {
				next = s.listenLegacy()
			}
		}
		switch next {
		case listenAgain:
			continue
		case listenStop:
			idle = false
			return
		case listenWorked:
			backoff = listenBackoffMin
		case listenFailed:
			if !s.pool.subs.has(s.name) {
				return // nothing to keep up; a later use retries
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenLegacy holds the session's standalone stream open once, first
// subscribing a new session to the gateway's resources.
func (s *upSession) listenLegacy() listenNext {
	sid, err := s.Session(s.ctx)
	if err != nil {
		return listenFailed
	}
	if sid != s.subscribed {
		s.resubscribe()
		s.subscribed = sid
	}
	err = s.Stream(s.ctx, s.onStream, s.streamOpened)
	s.streamEnded()
	var he *mcpclient.HTTPError
	switch {
	case errors.Is(err, mcpclient.ErrNoStream):
		s.quiet.Store(true)
		if s.pool.subs.has(s.name) {
			s.pool.logger.Warn("the upstream offers no standalone stream; updates of the resources callers subscribed to cannot arrive",
				slog.String("upstream", s.name))
		}
		return listenStop
	case errors.As(err, &he) && he.Status == http.StatusNotFound:
		// The upstream forgot the session: the next round makes a new one
		// and subscribes it again.
		return listenAgain
	case err != nil:
		s.pool.logger.Debug("the upstream's standalone stream failed", slog.String("upstream", s.name), slog.Any("error", err))
		return listenFailed
	}
	return listenWorked
}

// resubscribe subscribes a new legacy session to every resource the
// gateway's callers follow on this upstream (those still pending are
// being subscribed by their own request).
func (s *upSession) resubscribe() {
	for _, uri := range s.pool.subs.confirmedURIs(s.name) {
		if err := s.upstreamSubscription(s.ctx, "resources/subscribe", uri); err != nil {
			s.pool.logger.Warn("subscribing the upstream's new session again failed", slog.String("upstream", s.name), slog.Any("error", err))
		}
	}
}

// upstreamSubscription sends resources/subscribe or resources/unsubscribe
// for uri (legacy era), bounded in time, outside the guard: it keeps the
// gateway's own state, it is not a caller's call.
func (s *upSession) upstreamSubscription(ctx context.Context, method, uri string) error {
	params, err := json.Marshal(map[string]string{"uri": uri})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	defer cancel()
	m, err := s.Call(ctx, method, params, nil)
	if err != nil {
		return err
	}
	if m.Kind() == mcpwire.KindError {
		return s.Refused(method, m)
	}
	return nil
}

// listenModern holds a subscriptions/listen stream for the resources the
// gateway's callers follow on this upstream, until the list changes or
// the stream ends.
func (s *upSession) listenModern() listenNext {
	uris, changed := s.pool.subs.watch(s.name)
	if len(uris) == 0 {
		return listenStop
	}
	params, err := json.Marshal(map[string]any{"notifications": map[string]any{"resourceSubscriptions": uris}})
	if err != nil {
		return listenFailed
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err = s.Call(ctx, "subscriptions/listen", params, s.onStream)
	switch {
	case s.ctx.Err() != nil:
		return listenStop
	case ctx.Err() != nil:
		return listenAgain // the list changed: listen with the new one
	case err != nil:
		s.pool.logger.Debug("the upstream's subscriptions/listen stream failed", slog.String("upstream", s.name), slog.Any("error", err))
		s.pool.subs.acked(s.name, nil, err)
		return listenFailed
	}
	return listenWorked // the upstream ended the subscription; listen again
}

// onStream takes a message of the upstream's notification stream.
func (s *upSession) onStream(m *mcpwire.Message) {
	switch {
	case m.Method == "notifications/resources/updated":
		var p struct {
			URI string `json:"uri"`
		}
		if json.Unmarshal(m.Params, &p) == nil && p.URI != "" {
			s.pool.deliver(s.name, p.URI)
		}
	case m.Method == "notifications/subscriptions/acknowledged":
		var p struct {
			Notifications struct {
				ResourceSubscriptions []string `json:"resourceSubscriptions"`
			} `json:"notifications"`
		}
		_ = json.Unmarshal(m.Params, &p)
		s.pool.send(s.pool.subs.acked(s.name, p.Notifications.ResourceSubscriptions, nil))
	case m.Kind() == mcpwire.KindRequest:
		// No caller asked: refuse (pings never get here).
		resp := mcpwire.NewError(m.ID, &mcpwire.Error{Code: mcpwire.CodeMethodNotFound,
			Message: "the gateway relays " + m.Method + " only within a call of one of its callers"})
		ctx, cancel := context.WithTimeout(s.ctx, backgroundTimeout)
		defer cancel()
		_ = s.Send(ctx, resp)
	}
}

// backgroundTimeout bounds what the pool sends an upstream on its own.
const backgroundTimeout = 10 * time.Second
