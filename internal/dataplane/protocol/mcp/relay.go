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

// relayFor prepares one call's relay: params with the gateway's progress
// token in _meta (when the caller asked for progress), and the handler that
// passes the upstream's messages on. done must be called when the call
// ends; it stops waiting for answers nobody needs any more.
func (p *Pool) relayFor(ctx context.Context, cn *conn, params json.RawMessage, relay *pipeline.Relay) (json.RawMessage, mcpclient.Handler, func(), error) {
	if relay == nil {
		return params, nil, func() {}, nil
	}
	var token string
	if callerProgressToken(relay) != nil {
		token = `"pcg-` + strconv.FormatInt(progressTokens.Add(1), 10) + `"`
		var err error
		if params, err = mcpwire.SetPath(params, []string{"_meta"}, []byte(`{"progressToken":`+token+`}`)); err != nil {
			return nil, nil, nil, fmt.Errorf("set progress token: %w", err)
		}
	}
	askCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	on := func(m *mcpwire.Message) {
		switch m.Kind() {
		case mcpwire.KindNotification:
			p.relayNotification(ctx, m, token, relay)
		case mcpwire.KindRequest:
			p.relayRequest(askCtx, cn, m, relay)
		}
	}
	return params, on, cancel, nil
}

// relayNotification passes a notification to the caller; progress for
// this call gets the caller's own token back, progress for any other
// token is dropped.
func (p *Pool) relayNotification(ctx context.Context, m *mcpwire.Message, token string, relay *pipeline.Relay) {
	if relay.Notify == nil {
		return
	}
	raw := m.Raw
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

// relayRequest passes a server→client request to the caller and, in the
// background, the caller's answer back to the upstream. A caller that
// cannot answer gets the upstream an error response at once.
func (p *Pool) relayRequest(ctx context.Context, cn *conn, m *mcpwire.Message, relay *pipeline.Relay) {
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
		return
	}
	answers, err := relay.Ask(ctx, m.Raw)
	if err != nil {
		refuse("the gateway could not pass " + m.Method + " to its caller: " + err.Error())
		return
	}
	p.bg.Go(func() {
		wctx, cancel := context.WithTimeout(ctx, askTimeout)
		defer cancel()
		select {
		case answer := <-answers:
			if err := cn.Session.Send(wctx, answer); err != nil {
				p.logger.WarnContext(ctx, "passing the caller's answer upstream failed", slog.String("upstream", cn.Settings.Name), slog.String("method", m.Method), slog.Any("error", err))
			}
		case <-wctx.Done():
			refuse("the caller did not answer " + m.Method + " in time")
		}
	})
}

// callerProgressToken is the caller's progress token the endpoint put in
// the relay (raw JSON), nil when the caller asked for no progress.
func callerProgressToken(relay *pipeline.Relay) json.RawMessage {
	t, _ := relay.Wire.(json.RawMessage)
	return t
}
