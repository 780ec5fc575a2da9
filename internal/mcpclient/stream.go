package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// ErrNoStream is returned by Stream when the server offers no standalone
// stream: it answered GET with 405 (or another refusal that says the
// stream is not there), or it speaks the modern era, which has none.
var ErrNoStream = errors.New("the server offers no standalone stream")

// Session connects if needed and returns the legacy session's id ("" in
// the modern era, or for a legacy server without sessions). A new id
// after a call means the server forgot the old session and the client
// made a new one: whatever the server kept per session (resource
// subscriptions, its log level) is gone with it.
func (c *Client) Session(ctx context.Context) (string, error) {
	cn, err := c.ensure(ctx)
	if err != nil {
		return "", err
	}
	return cn.session, nil
}

// Stream opens the legacy session's standalone stream (HTTP GET), on which
// the server sends what belongs to no request (resource updates, log
// messages, its own pings and requests), and hands every message to on
// until the stream ends (nil), ctx ends, or it fails; opened, when not
// nil, is called once the server accepted the stream (before any
// message). The server's pings are answered. It returns ErrNoStream when the server offers no stream;
// an HTTPError with status 404 when the server forgot the session, which
// the client then drops (the next use makes a new one).
func (c *Client) Stream(ctx context.Context, on Handler, opened func()) error {
	cn, err := c.ensure(ctx)
	if err != nil {
		return err
	}
	if cn.era != EraLegacy || cn.session == "" {
		return ErrNoStream
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(mcpwire.HeaderSessionID, cn.session)
	req.Header.Set(mcpwire.HeaderProtocolVersion, cn.version)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		c.drop(cn)
		return c.httpError(resp)
	case resp.StatusCode == http.StatusMethodNotAllowed, resp.StatusCode == http.StatusNotAcceptable,
		resp.StatusCode == http.StatusBadRequest:
		return ErrNoStream
	case resp.StatusCode != http.StatusOK:
		return c.httpError(resp)
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "text/event-stream" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return c.protocolError(b, "it answered GET with content type %q, not an event stream", ct)
	}
	if opened != nil {
		opened()
	}
	er := mcpwire.NewEventReader(resp.Body, c.cfg.MaxMessageBytes)
	defer er.Release()
	for {
		ev, err := er.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read the standalone stream: %w", err)
		}
		m, err := mcpwire.Parse(ev.Data)
		if err != nil {
			return c.protocolError(ev.Data, "it sent a malformed message on its standalone stream")
		}
		if k := m.Kind(); k == mcpwire.KindRequest || k == mcpwire.KindNotification {
			c.dispatch(cn, m, on)
		}
	}
}
