// Package mcpclient is a raw MCP client for Streamable HTTP in both
// protocol eras: the legacy stateful one (initialize, Mcp-Session-Id,
// 2025-06-18 and 2025-11-25) and the modern stateless one (2026-07-28:
// server/discover, per-request _meta, mirrored headers). It hands back the
// server's messages as received (mcpwire.Message, raw bytes), never
// re-encoding a payload, so a gateway can forward them and hash tool
// definitions exactly as the server sent them.
//
// The HTTP client given in Config carries everything about the connection
// (TLS, the upstream's credential, egress rules, byte limits); this package
// adds only MCP's own headers.
package mcpclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-gw/portcullis/internal/excerpt"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Era is the protocol era spoken with a server.
type Era int

// Eras. EraAuto asks server/discover first and falls back to initialize,
// as the 2026-07-28 specification says a client should.
const (
	EraAuto Era = iota
	EraLegacy
	EraModern
)

func (e Era) String() string {
	switch e {
	case EraLegacy:
		return "legacy"
	case EraModern:
		return "modern"
	}
	return "auto"
}

// DefaultMaxMessageBytes bounds one message read from a server.
const DefaultMaxMessageBytes = 8 << 20

// Config configures a Client.
type Config struct {
	// URL is the server's MCP endpoint.
	URL string
	// HTTP sends the requests (nil: http.DefaultClient). It should not
	// follow redirects (they would carry credentials elsewhere). The
	// client builds a new request for every send and does not use it
	// after handing it to Do, so Do may set the request's headers in
	// place (see Doer).
	HTTP Doer
	// Name and Version are the clientInfo sent to the server.
	Name, Version string
	// Era to speak; EraAuto detects it on first use.
	Era Era
	// MaxMessageBytes bounds one message (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Capabilities are the client capabilities announced (a JSON object;
	// default {}). A gateway that relays server→client requests announces
	// elicitation and sampling here and refuses those its caller cannot
	// answer.
	Capabilities json.RawMessage
	// Hide are values never quoted in an error, even in an excerpt: the
	// credential HTTP attaches, in case the server echoes it.
	Hide []string
	// LogLevel, when set, is the log level asked of the server: in the
	// legacy era with logging/setLevel right after each handshake (when
	// the server offers logging), in the modern era in every request's
	// _meta. Without it the server sends no log messages (the modern
	// era's rule, and what servers commonly do in the legacy era).
	LogLevel string
}

// Doer sends an HTTP request and returns the answer, as
// (*http.Client).Do does; *http.Client is one. Do receives each request
// the client sends to keep: unlike an http.RoundTripper, it may change
// the request's headers instead of copying it first.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// Client talks to one MCP server. It is safe for concurrent use; it
// connects (discovers or initializes) lazily on first use and, in the
// legacy era, re-initializes transparently when the server forgets the
// session.
type Client struct {
	cfg    Config
	nextID atomic.Int64

	mu      sync.Mutex
	conn    *conn         // nil until connected
	connect chan struct{} // closed when an in-flight connect ends; nil when none
	closed  bool          // Close ran: no more background work
	bg      sync.WaitGroup
}

// backgroundTimeout bounds a message the client sends on its own (an
// answer to a ping, a cancellation).
const backgroundTimeout = 10 * time.Second

// conn is the negotiated state of one connection (one legacy session).
// Its fields are set before it is shared and never change after.
type conn struct {
	era     Era
	version string
	session string
	// server is the initialize or server/discover result (raw).
	server json.RawMessage
	// versionHeader and sessionHeader are version and session as header
	// values (nil when empty), made once for every request on the
	// connection (see contentTypeJSON on sharing them).
	versionHeader, sessionHeader []string
}

// negotiated sets the protocol version and the session the server chose.
func (cn *conn) negotiated(version, session string) {
	cn.version, cn.session = version, session
	cn.versionHeader, cn.sessionHeader = headerValue(version), headerValue(session)
}

// headerValue is v as a header's values; nil when v is empty.
func headerValue(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// New returns a client for cfg.URL.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("mcpclient: no URL")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Name == "" {
		cfg.Name = "portcullis"
	}
	if len(cfg.Capabilities) == 0 {
		cfg.Capabilities = json.RawMessage(`{}`)
	} else if !json.Valid(cfg.Capabilities) || !mcpwire.IsObject(cfg.Capabilities) {
		return nil, errors.New("mcpclient: Capabilities must be a JSON object")
	}
	return &Client{cfg: cfg}, nil
}

// HTTPError is a non-success HTTP answer without a JSON-RPC message.
type HTTPError struct {
	Status int
	// Body is a short, sanitised excerpt of the answer's body (printable
	// ASCII, credential-looking values masked), for logs and messages.
	Body string
}

func (e *HTTPError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

// NotDeliveredError marks a failure before the server could have processed
// the request (it was never sent, or the server refused the session before
// reading it), so even a mutating call may be sent again.
type NotDeliveredError struct{ Err error }

func (e *NotDeliveredError) Error() string { return "not delivered: " + e.Err.Error() }
func (e *NotDeliveredError) Unwrap() error { return e.Err }

// NotDelivered reports whether err says the request never reached the
// server's handling.
func NotDelivered(err error) bool {
	var nd *NotDeliveredError
	return errors.As(err, &nd)
}

// ErrNoResponse is returned when a response stream ends before the
// response: the request may or may not have been processed.
var ErrNoResponse = errors.New("the server's stream ended without a response")

// Handler receives the messages a server sends on a request's stream
// before the response: notifications (progress, logging) and server→client
// requests (sampling, elicitation) in the legacy era. It runs on the
// calling goroutine; a slow handler slows the stream.
type Handler func(m *mcpwire.Message)

// Era connects if needed and reports the era in use.
func (c *Client) Era(ctx context.Context) (Era, error) {
	cn, err := c.ensure(ctx)
	if err != nil {
		return EraAuto, err
	}
	return cn.era, nil
}

// Server returns the server's initialize (or server/discover) result as
// it sent it, connecting if needed.
func (c *Client) Server(ctx context.Context) (json.RawMessage, error) {
	cn, err := c.ensure(ctx)
	if err != nil {
		return nil, err
	}
	return cn.server, nil
}

// Call sends one request and returns the server's response (a result or an
// error message; its id is this client's). Messages before the response go
// to on (nil: dropped). A legacy session the server forgot is re-created
// and the request sent once more: the server refused it unread, so this is
// safe for every method.
func (c *Client) Call(ctx context.Context, method string, params json.RawMessage, on Handler) (*mcpwire.Message, error) {
	for attempt := 0; ; attempt++ {
		cn, err := c.ensure(ctx)
		if err != nil {
			return nil, err
		}
		m, err := c.call(ctx, cn, method, params, on)
		if err != nil && attempt == 0 && cn.era == EraLegacy && cn.session != "" && isStatus(err, http.StatusNotFound) {
			c.drop(cn)
			continue
		}
		return m, err
	}
}

// isStatus reports whether err is an HTTPError with the status. It is
// its own function so that a call without an error allocates nothing for
// errors.As's target.
func isStatus(err error, status int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == status
}

// Send posts a notification or a response (to a server→client request) as
// raw bytes, with the connection's headers; the server answers 202.
func (c *Client) Send(ctx context.Context, msg []byte) error {
	cn, err := c.ensure(ctx)
	if err != nil {
		return err
	}
	return c.sendOn(ctx, cn, msg)
}

// Close ends a legacy session (HTTP DELETE, best effort) and forgets the
// connection; the next use connects again.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	cn := c.conn
	c.conn = nil
	c.closed = true
	c.mu.Unlock()
	defer c.bg.Wait()
	if cn == nil || cn.era != EraLegacy || cn.session == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.cfg.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set(mcpwire.HeaderSessionID, cn.session)
	req.Header.Set(mcpwire.HeaderProtocolVersion, cn.version)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// ensure returns the connection, connecting once for all concurrent
// callers.
func (c *Client) ensure(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if c.conn != nil {
			cn := c.conn
			c.mu.Unlock()
			return cn, nil
		}
		if wait := c.connect; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, &NotDeliveredError{Err: ctx.Err()}
			}
		}
		done := make(chan struct{})
		c.connect = done
		c.mu.Unlock()

		cn, err := c.dial(ctx)
		c.mu.Lock()
		c.connect = nil
		if err == nil {
			c.conn = cn
		}
		c.mu.Unlock()
		close(done)
		if err != nil {
			return nil, &NotDeliveredError{Err: err}
		}
		return cn, nil
	}
}

// drop forgets cn if it is still current.
func (c *Client) drop(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.mu.Unlock()
}

// dial negotiates a connection in the configured era.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	switch c.cfg.Era {
	case EraLegacy:
		return c.initialize(ctx)
	case EraModern:
		return c.discover(ctx)
	}
	cn, err := c.discover(ctx)
	if err == nil {
		return cn, nil
	}
	var (
		he *HTTPError
		te *transportError
	)
	if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
		return nil, err // the credential is wrong; initialize would fail alike
	}
	if errors.As(err, &te) || ctx.Err() != nil {
		return nil, err // no answer at all: initialize would not get one either
	}
	legacy, lerr := c.initialize(ctx)
	if lerr != nil {
		return nil, fmt.Errorf("server/discover: %w; initialize: %w", err, lerr)
	}
	return legacy, nil
}

// discover asks server/discover; success means the server speaks
// 2026-07-28.
func (c *Client) discover(ctx context.Context) (*conn, error) {
	cn := &conn{era: EraModern}
	cn.negotiated(mcpwire.VersionModern, "")
	m, err := c.call(ctx, cn, "server/discover", json.RawMessage(`{}`), nil)
	if err != nil {
		return nil, err
	}
	if m.Kind() == mcpwire.KindError {
		return nil, c.Refused("server/discover", m)
	}
	var res struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(m.Result, &res); err != nil {
		return nil, c.protocolError(m.Result, "its server/discover result is malformed (%v)", err)
	}
	found := false
	for _, v := range res.SupportedVersions {
		found = found || v == mcpwire.VersionModern
	}
	if !found {
		return nil, fmt.Errorf("server/discover: the server supports %s, not %s", excerpt.Text(fmt.Sprint(res.SupportedVersions), 0), mcpwire.VersionModern)
	}
	cn.server = m.Result
	return cn, nil
}

// initialize runs the legacy handshake: initialize, then
// notifications/initialized.
func (c *Client) initialize(ctx context.Context) (*conn, error) {
	params, err := json.Marshal(map[string]any{
		"protocolVersion": mcpwire.VersionLegacy,
		"capabilities":    c.cfg.Capabilities,
		"clientInfo":      map[string]string{"name": c.cfg.Name, "version": c.cfg.Version},
	})
	if err != nil {
		return nil, err
	}
	cn := &conn{era: EraLegacy}
	id := c.newID()
	body, err := mcpwire.NewRequest(id, "initialize", params)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, cn, body, "initialize", params)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	m, err := c.readResponse(resp, cn, id, nil)
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if m.Kind() == mcpwire.KindError {
		return nil, c.Refused("initialize", m)
	}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(m.Result, &res); err != nil {
		return nil, c.protocolError(m.Result, "its initialize result is malformed (%v)", err)
	}
	ok := false
	for _, v := range mcpwire.LegacyVersions {
		ok = ok || v == res.ProtocolVersion
	}
	if !ok {
		return nil, c.protocolError([]byte(res.ProtocolVersion), "it answered initialize with a protocol version this client does not speak (supported: %v)", mcpwire.LegacyVersions)
	}
	cn.server = m.Result
	cn.negotiated(res.ProtocolVersion, resp.Header.Get(mcpwire.HeaderSessionID))
	note, err := mcpwire.NewNotification("notifications/initialized", nil)
	if err != nil {
		return nil, err
	}
	nr, err := c.post(ctx, cn, note, "", nil)
	if err != nil {
		return nil, fmt.Errorf("notifications/initialized: %w", err)
	}
	defer drain(nr)
	if nr.StatusCode != http.StatusAccepted && nr.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("notifications/initialized: %w", c.httpError(nr))
	}
	if c.cfg.LogLevel != "" && offers(cn.server, "logging") {
		// Best effort: a server that declines only sends fewer logs.
		params, err := json.Marshal(map[string]string{"level": c.cfg.LogLevel})
		if err == nil {
			_, _ = c.call(ctx, cn, "logging/setLevel", params, nil)
		}
	}
	return cn, nil
}

// offers reports whether an initialize or server/discover result lists
// capability.
func offers(server json.RawMessage, capability string) bool {
	var res struct {
		Capabilities map[string]json.RawMessage `json:"capabilities"`
	}
	if json.Unmarshal(server, &res) != nil {
		return false
	}
	v, ok := res.Capabilities[capability]
	return ok && string(v) != "null"
}

// call sends one request on cn and reads its response.
func (c *Client) call(ctx context.Context, cn *conn, method string, params json.RawMessage, on Handler) (*mcpwire.Message, error) {
	if cn.era == EraModern {
		var err error
		if params, err = c.withMeta(params); err != nil {
			return nil, err
		}
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		// The caller's span is the server's parent (SEP-414): its W3C
		// trace context in params._meta, replacing any there.
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		var err error
		if params, err = mcpwire.WithTraceContext(params, carrier[mcpwire.MetaTraceParent], carrier[mcpwire.MetaTraceState]); err != nil {
			return nil, err
		}
	}
	id := c.newID()
	body, err := mcpwire.NewRequest(id, method, params)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, cn, body, method, params)
	if err != nil {
		if !NotDelivered(err) {
			c.abandoned(ctx, cn, id)
		}
		return nil, err
	}
	defer drain(resp)
	m, err := c.readResponse(resp, cn, id, on)
	if err != nil {
		c.abandoned(ctx, cn, id)
	}
	return m, err
}

// abandoned tells a legacy server that the request id will not be waited
// for any more, when ctx ended (the caller left, or its deadline passed):
// in that era a dropped connection is not a cancellation, so without
// notifications/cancelled the server would go on working for nobody. The
// modern era needs nothing: closing the stream is the cancellation.
func (c *Client) abandoned(ctx context.Context, cn *conn, id json.RawMessage) {
	if ctx.Err() == nil || cn.era != EraLegacy {
		return
	}
	params, err := json.Marshal(struct {
		RequestID json.RawMessage `json:"requestId"`
		Reason    string          `json:"reason"`
	}{id, "the client stopped waiting for the result"})
	if err != nil {
		return
	}
	note, err := mcpwire.NewNotification("notifications/cancelled", params)
	if err != nil {
		return
	}
	c.background(func(ctx context.Context) { _ = c.sendOn(ctx, cn, note) })
}

// background runs f in a goroutine Close waits for, with a bounded
// context; nothing runs once Close has begun.
func (c *Client) background(f func(ctx context.Context)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), backgroundTimeout)
		defer cancel()
		f(ctx)
	})
}

// sendOn posts a notification or a response on cn; the server answers
// 202 (or 200).
func (c *Client) sendOn(ctx context.Context, cn *conn, msg []byte) error {
	resp, err := c.post(ctx, cn, msg, "", nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return c.httpError(resp)
	}
	return nil
}

// answerPing answers a server's ping on cn (in the background, so that
// the stream it came on keeps being read).
func (c *Client) answerPing(cn *conn, id json.RawMessage) {
	res, err := mcpwire.NewResult(id, json.RawMessage(`{}`))
	if err != nil {
		return
	}
	c.background(func(ctx context.Context) { _ = c.sendOn(ctx, cn, res) })
}

// newID is a new request id, "pc-" and a sequence number (a JSON string),
// made in one allocation.
func (c *Client) newID() json.RawMessage {
	b := make([]byte, 0, len(`"pc-"`)+20)
	b = append(b, `"pc-`...)
	b = strconv.AppendInt(b, c.nextID.Add(1), 10)
	return append(b, '"')
}

// withMeta adds the modern era's per-request _meta keys to params, keeping
// any the caller set.
func (c *Client) withMeta(params json.RawMessage) (json.RawMessage, error) {
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage(`{}`)
	}
	meta := map[string]json.RawMessage{}
	existing, err := mcpwire.Find(params, "_meta")
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if existing != nil && string(existing) != "null" {
		if err := json.Unmarshal(existing, &meta); err != nil {
			return nil, fmt.Errorf("params._meta must be an object: %w", err)
		}
	}
	info, _ := json.Marshal(map[string]string{"name": c.cfg.Name, "version": c.cfg.Version})
	defaults := map[string]json.RawMessage{
		mcpwire.MetaProtocolVersion:    json.RawMessage(`"` + mcpwire.VersionModern + `"`),
		mcpwire.MetaClientInfo:         info,
		mcpwire.MetaClientCapabilities: c.cfg.Capabilities,
	}
	if c.cfg.LogLevel != "" {
		level, err := json.Marshal(c.cfg.LogLevel)
		if err != nil {
			return nil, err
		}
		defaults[mcpwire.MetaLogLevel] = level
	}
	for k, v := range defaults {
		if _, ok := meta[k]; !ok {
			meta[k] = v
		}
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	return mcpwire.Set(params, "_meta", b)
}

// Header values every request carries, made once. Sharing them is safe:
// nothing sets an element in place, and an append to a slice whose
// capacity is its length copies it.
var (
	contentTypeJSON = []string{"application/json"}
	acceptBoth      = []string{"application/json, text/event-stream"}
	methodToolsCall = []string{"tools/call"}
)

// post sends one message with the connection's headers. A transport
// failure is a NotDeliveredError only when no connection carried the
// request (the dial failed).
func (c *Client) post(ctx context.Context, cn *conn, body []byte, method string, params json.RawMessage) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Content-Type"] = contentTypeJSON
	req.Header["Accept"] = acceptBoth
	if cn.versionHeader != nil {
		req.Header[mcpwire.HeaderProtocolVersion] = cn.versionHeader
	}
	if cn.sessionHeader != nil {
		req.Header[mcpwire.HeaderSessionID] = cn.sessionHeader
	}
	if cn.era == EraModern && method != "" {
		if method == "tools/call" {
			req.Header[http.CanonicalHeaderKey(mcpwire.HeaderMethod)] = methodToolsCall
		} else {
			req.Header.Set(mcpwire.HeaderMethod, method)
		}
		if name, ok := mcpwire.MirroredName(method, params); ok {
			req.Header.Set(mcpwire.HeaderName, mcpwire.EncodeHeaderValue(name))
		}
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		if isDialError(err) {
			return nil, &NotDeliveredError{Err: &transportError{err}}
		}
		return nil, &transportError{err}
	}
	return resp, nil
}

// transportError is a request that got no HTTP answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// readResponse reads the answer to the request sent with id sentID: a
// JSON message, or an event stream that ends with it. The caller closes
// the body.
func (c *Client) readResponse(resp *http.Response, cn *conn, sentID json.RawMessage, on Handler) (*mcpwire.Message, error) {
	ct := mediaType(resp.Header.Get("Content-Type"))
	success := resp.StatusCode >= 200 && resp.StatusCode < 300
	switch {
	case ct == "text/event-stream" && resp.StatusCode == http.StatusOK:
		return c.readStream(resp.Body, cn, sentID, on)
	case ct == "application/json":
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxMessageBytes)+1))
		if err != nil {
			return nil, fmt.Errorf("read response: %w", err)
		}
		if len(b) > c.cfg.MaxMessageBytes {
			return nil, fmt.Errorf("the response exceeds %d bytes", c.cfg.MaxMessageBytes)
		}
		m, err := mcpwire.Parse(b)
		if err != nil {
			if !success {
				return nil, &HTTPError{Status: resp.StatusCode, Body: c.snippet(b)}
			}
			return nil, c.protocolError(b, "its response is not a JSON-RPC message")
		}
		if m.Kind() == mcpwire.KindError || (m.Kind() == mcpwire.KindResult && success) {
			if m.Kind() == mcpwire.KindResult && !bytes.Equal(m.ID, sentID) {
				return nil, c.protocolError(m.ID, "it answered request %s with another request's id", sentID)
			}
			return m, nil
		}
		if success {
			return nil, c.protocolError(b, "it answered a request with a %v, not a response", m.Kind())
		}
		return nil, &HTTPError{Status: resp.StatusCode, Body: c.snippet(b)}
	case success:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if ct == "" {
			ct = "none"
		}
		return nil, c.protocolError(b, "it answered a request with HTTP %d and content type %s (a response must be application/json or text/event-stream)",
			resp.StatusCode, excerpt.Text(ct, 64))
	}
	return nil, c.httpError(resp)
}

// mediaType is the media type of a Content-Type value, lower-cased and
// without parameters ("" when it does not parse); the two the transport
// uses, as servers send them, without mime.ParseMediaType's allocations.
func mediaType(v string) string {
	switch v {
	case "text/event-stream", "application/json":
		return v
	}
	mt, _, _ := mime.ParseMediaType(v)
	return mt
}

// readStream reads events until the response to sentID. The server's
// pings are answered; its other messages go to on.
func (c *Client) readStream(body io.Reader, cn *conn, sentID json.RawMessage, on Handler) (*mcpwire.Message, error) {
	er := mcpwire.NewEventReader(body, c.cfg.MaxMessageBytes)
	defer er.Release()
	for {
		ev, err := er.Next()
		if errors.Is(err, io.EOF) {
			return nil, ErrNoResponse
		}
		if err != nil {
			return nil, fmt.Errorf("read event stream: %w", err)
		}
		m, err := mcpwire.Parse(ev.Data)
		if err != nil {
			return nil, c.protocolError(ev.Data, "it sent a malformed message on its stream")
		}
		switch m.Kind() {
		case mcpwire.KindResult, mcpwire.KindError:
			if bytes.Equal(m.ID, sentID) {
				return m, nil
			}
			// A response to something else on this stream: not ours.
		default:
			c.dispatch(cn, m, on)
		}
	}
}

// dispatch hands a server's request or notification to on, answering a
// ping itself: a ping asks after the connection, not the caller.
func (c *Client) dispatch(cn *conn, m *mcpwire.Message, on Handler) {
	if m.Kind() == mcpwire.KindRequest && m.Method == "ping" {
		c.answerPing(cn, m.ID)
		return
	}
	if on != nil {
		on(m)
	}
}

func (c *Client) httpError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &HTTPError{Status: resp.StatusCode, Body: c.snippet(b)}
}

// snippet is what an error quotes of a body: a short, sanitised excerpt
// (see package excerpt) without the hidden values, never the body itself.
func (c *Client) snippet(b []byte) string {
	return excerpt.Text(string(b), excerpt.Max, c.cfg.Hide...)
}

// drainMax bounds what drain reads of a body's rest.
const drainMax = 64 << 10

// drainBufs are drain's read buffers.
var drainBufs = sync.Pool{New: func() any { return new([4 << 10]byte) }}

// drain reads a little of what is left (at most drainMax bytes, so the
// connection can be reused) and closes the body. It reads into a pooled
// buffer: io.CopyN would allocate its io.LimitedReader on every call.
func drain(resp *http.Response) {
	buf := drainBufs.Get().(*[4 << 10]byte)
	for left := drainMax; left > 0; {
		n, err := resp.Body.Read(buf[:min(left, len(buf))])
		left -= n
		if err != nil {
			break
		}
	}
	drainBufs.Put(buf)
	_ = resp.Body.Close()
}

// isDialError reports whether err came from establishing the connection,
// before any byte of the request was written.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
