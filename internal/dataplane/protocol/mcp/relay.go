package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// progressTokens numbers the progress tokens the gateway sends upstream.
// One legacy session carries many callers' requests, and the spec wants a
// token unique among a session's active requests, so each call gets its
// own and the caller's token is restored on the way back.
var progressTokens atomic.Int64

// askTimeout bounds waiting for a caller's answer to a server→client
// request.
const askTimeout = 5 * time.Minute

// callWire is MCP's own state of one call that the endpoint hands the
// forwarder in pipeline.Relay.Wire.
type callWire struct {
	// progressToken is the caller's progress token (raw JSON), nil when
	// it asked for no progress.
	progressToken json.RawMessage
	// logLevel is the mcpwire.LogLevelRank of the level the caller asked
	// for (logging/setLevel in its session, or its 2026-07-28 request's
	// _meta); 0 passes no log message.
	logLevel int
	// subscriber names the caller's end of a resources/subscribe (its
	// session) or subscriptions/listen (the stream).
	subscriber string
}

// wireOf is the relay's callWire, nil when there is none.
func wireOf(relay *pipeline.Relay) *callWire {
	if relay == nil {
		return nil
	}
	w, _ := relay.Wire.(*callWire)
	return w
}

// relayFor prepares one call's relay: params with the gateway's progress
// token in _meta (when the caller asked for progress), and the relay whose
// handle passes the upstream's messages on (nil when relay is: then
// messages are dropped). Its end must be called when the call ends; it
// stops waiting for answers nobody needs any more.
func (p *Pool) relayFor(ctx context.Context, cn *conn, params json.RawMessage, relay *pipeline.Relay) (json.RawMessage, *upstreamRelay, error) {
	if relay == nil {
		return params, nil, nil
	}
	cr := &upstreamRelay{p: p, ctx: ctx, cn: cn, relay: relay}
	if callerProgressToken(relay) != nil {
		cr.token = `"pcg-` + strconv.FormatInt(progressTokens.Add(1), 10) + `"`
		var err error
		if params, err = mcpwire.SetPath(params, []string{"_meta"}, []byte(`{"progressToken":`+cr.token+`}`)); err != nil {
			return nil, nil, fmt.Errorf("set progress token: %w", err)
		}
	}
	return params, cr, nil
}

// upstreamRelay relays one call's messages from the upstream to its caller.
// Its handler runs on the call's goroutine, one message at a time, and
// end after the call, so it needs no lock.
type upstreamRelay struct {
	p     *Pool
	ctx   context.Context
	cn    *conn
	relay *pipeline.Relay
	// token is the gateway's progress token sent upstream ("" for none).
	token string
	// ask bounds the caller's answers to the upstream's requests; its
	// context is made with the first such request (most calls have none).
	ask askScope
	// asked are the upstream's requests relayed to the caller, by their
	// raw ids.
	asked map[string]pendingRelay
}

// handler is the mcpclient.Handler of the call (nil without a relay).
func (r *upstreamRelay) handler() mcpclient.Handler {
	if r == nil {
		return nil
	}
	return r.handle
}

// handle passes one upstream message on to the caller.
func (r *upstreamRelay) handle(m *mcpwire.Message) {
	switch m.Kind() {
	case mcpwire.KindNotification:
		if m.Method == "notifications/cancelled" {
			r.p.relayCancelled(r.ctx, m, r.asked, r.relay)
			return
		}
		r.p.relayNotification(r.ctx, m, r.token, r.relay)
	case mcpwire.KindRequest:
		if pr, ok := r.p.relayRequest(r.ask.context(r.ctx), r.cn, m, r.relay); ok {
			if r.asked == nil {
				r.asked = map[string]pendingRelay{}
			}
			r.asked[string(m.ID)] = pr
		}
	}
}

// end is called when the call ended (nothing to do without a relay): a
// question the caller has not answered is withdrawn, and the caller told
// so before the result (an upstream's own notifications/cancelled may
// come after it, or never).
func (r *upstreamRelay) end() {
	if r == nil {
		return
	}
	for id, pr := range r.asked {
		if pr.ctx.Err() != nil {
			continue // answered or withdrawn
		}
		pr.withdraw()
		r.p.tellCancelled(r.ctx, json.RawMessage(id), "the call that asked it ended", r.relay)
	}
	r.ask.end()
}

// askScope is the context of one call's relayed requests, made on first
// use: it outlives the caller's cancellation (an answer still in flight is
// withdrawn explicitly) and ends with the call.
type askScope struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// context returns the scope's context, making it from parent on first use.
func (a *askScope) context(parent context.Context) context.Context {
	if a.ctx == nil {
		a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(parent))
	}
	return a.ctx
}

// end cancels the scope's context, if it was made.
func (a *askScope) end() {
	if a.cancel != nil {
		a.cancel()
	}
}

// pendingRelay is an upstream request relayed to the caller: its context
// ends when it was answered or withdrawn.
type pendingRelay struct {
	ctx      context.Context
	withdraw context.CancelFunc
}

// tellCancelled sends the caller notifications/cancelled for the
// upstream's request id (the endpoint gives it the id the caller saw).
func (p *Pool) tellCancelled(ctx context.Context, id json.RawMessage, reason string, relay *pipeline.Relay) {
	if relay.Notify == nil {
		return
	}
	params, err := json.Marshal(struct {
		RequestID json.RawMessage `json:"requestId"`
		Reason    string          `json:"reason"`
	}{id, reason})
	if err != nil {
		return
	}
	msg, err := mcpwire.NewNotification("notifications/cancelled", params)
	if err != nil {
		return
	}
	if err := relay.Notify(msg); err != nil {
		p.logger.DebugContext(ctx, "telling the caller of a withdrawn request failed", slog.Any("error", err))
	}
}

// relayCancelled passes the upstream's notifications/cancelled for one of
// its requests the caller was asked (the endpoint gives it the id the
// caller saw) and stops waiting for the caller's answer; a cancellation
// of anything else is not the caller's business.
func (p *Pool) relayCancelled(ctx context.Context, m *mcpwire.Message, asked map[string]pendingRelay, relay *pipeline.Relay) {
	id, err := mcpwire.Find(m.Params, "requestId")
	if err != nil || id == nil {
		return
	}
	pr, ok := asked[string(id)]
	if !ok || pr.ctx.Err() != nil {
		return // not asked, or answered already
	}
	pr.withdraw()
	if relay.Notify == nil {
		return
	}
	if err := relay.Notify(m.Raw); err != nil {
		p.logger.DebugContext(ctx, "relaying a cancellation to the caller failed", slog.Any("error", err))
	}
}

// relayNotification passes a notification to the caller; progress for
// this call gets the caller's own token back, progress for any other
// token is dropped.
func (p *Pool) relayNotification(ctx context.Context, m *mcpwire.Message, token string, relay *pipeline.Relay) {
	if relay.Notify == nil {
		return
	}
	raw := m.Raw
	if m.Method == "notifications/message" && !wantsLog(m, wireOf(relay)) {
		return
	}
	if m.Method == "notifications/progress" {
		got, err := mcpwire.Find(m.Params, "progressToken")
		if err != nil || token == "" || string(got) != token {
			return
		}
		params, err := mcpwire.Set(m.Params, "progressToken", callerProgressToken(relay))
		if err != nil {
			return
		}
		if raw, err = mcpwire.Set(m.Raw, "params", params); err != nil {
			return
		}
	}
	if err := relay.Notify(raw); err != nil {
		p.logger.DebugContext(ctx, "relaying a notification to the caller failed", slog.String("method", m.Method), slog.Any("error", err))
	}
}

// wantsLog reports whether the caller asked for log messages of m's
// level.
func wantsLog(m *mcpwire.Message, w *callWire) bool {
	if w == nil || w.logLevel == 0 {
		return false
	}
	raw, err := mcpwire.Find(m.Params, "level")
	var level string
	if err != nil || raw == nil || json.Unmarshal(raw, &level) != nil {
		return false
	}
	rank := mcpwire.LogLevelRank(level)
	return rank > 0 && rank >= w.logLevel
}

// relayRequest passes a server→client request to the caller and, in the
// background, the caller's answer back to the upstream. A caller that
// cannot answer gets the upstream an error response at once. It returns
// the request's pending state (its withdraw function stops waiting for
// the answer), and false when it was not relayed.
func (p *Pool) relayRequest(ctx context.Context, cn *conn, m *mcpwire.Message, relay *pipeline.Relay) (pendingRelay, bool) {
	refuse := func(why string) {
		resp := mcpwire.NewError(m.ID, &mcpwire.Error{Code: mcpwire.CodeMethodNotFound, Message: why})
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := cn.Session.Send(sctx, resp); err != nil {
			p.logger.DebugContext(ctx, "refusing a server request failed", slog.String("upstream", cn.Settings.Name), slog.Any("error", err))
		}
	}
	if relay.Ask == nil {
		refuse(fmt.Sprintf("the gateway's caller cannot answer %s requests (its protocol era or transport has no way to)", m.Method))
		return pendingRelay{}, false
	}
	actx, withdraw := context.WithCancel(ctx)
	answers, err := relay.Ask(actx, m.Raw)
	if err != nil {
		withdraw()
		refuse("the gateway could not pass " + m.Method + " to its caller: " + err.Error())
		return pendingRelay{}, false
	}
	p.bgGo(func() {
		defer withdraw()
		wctx, cancel := context.WithTimeout(actx, askTimeout)
		defer cancel()
		select {
		case answer := <-answers:
			if err := cn.Session.Send(wctx, answer); err != nil {
				p.logger.WarnContext(ctx, "passing the caller's answer upstream failed", slog.String("upstream", cn.Settings.Name), slog.String("method", m.Method), slog.Any("error", err))
			}
		case <-wctx.Done():
			if ctx.Err() == nil && actx.Err() != nil {
				return // the upstream withdrew the request
			}
			refuse("the caller did not answer " + m.Method + " in time")
		}
	})
	return pendingRelay{ctx: actx, withdraw: withdraw}, true
}

// callerProgressToken is the caller's progress token the endpoint put in
// the relay (raw JSON), nil when the caller asked for no progress.
func callerProgressToken(relay *pipeline.Relay) json.RawMessage {
	if w := wireOf(relay); w != nil {
		return w.progressToken
	}
	return nil
}
