// Package a2aclient is a raw A2A client over the JSON-RPC binding, for
// both protocol versions the gateway brokers: it sends one request and
// returns the agent's JSON-RPC response as the agent sent it, or hands a
// stream's events (each a JSON-RPC response) to a callback in order, and
// fetches agent cards. It never interprets results: the gateway reads and
// rewrites them itself (package a2awire). The HTTP client it is given
// attaches the agent's credential; errors never quote what the agent sent
// beyond a short, masked excerpt.
package a2aclient

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
	"sync/atomic"

	"github.com/portcullis-gw/portcullis/internal/a2awire"
	"github.com/portcullis-gw/portcullis/internal/excerpt"
)

// Config configures a Client.
type Config struct {
	// URL is the agent's JSON-RPC endpoint.
	URL string
	// HTTP sends the requests (the caller attaches credentials and
	// limits); nil means http.DefaultClient.
	HTTP *http.Client
	// MaxMessageBytes bounds one response or stream event (default 8 MiB).
	MaxMessageBytes int
	// Hide are values never to quote in an error (the credential), should
	// the agent echo them.
	Hide []string
}

// Client talks to one agent. It is safe for concurrent use.
type Client struct {
	cfg  Config
	next atomic.Int64
}

// DefaultMaxMessageBytes bounds a message when Config sets no limit.
const DefaultMaxMessageBytes = 8 << 20

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("a2aclient: no URL")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return &Client{cfg: cfg}, nil
}

// HTTPError is an answer with an HTTP status other than 200.
type HTTPError struct {
	Status int
	// Excerpt is a short, masked excerpt of the body, for logs only.
	Excerpt string
}

func (e *HTTPError) Error() string {
	if e.Excerpt == "" {
		return fmt.Sprintf("the agent answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("the agent answered HTTP %d: %s", e.Status, e.Excerpt)
}

// ErrNoResponse is returned when the agent's answer ended before a
// response (an empty body or a stream that ended without an event): the
// request may or may not have been processed.
var ErrNoResponse = errors.New("the agent's answer ended without a response")

// ErrMalformed wraps an answer that is not a JSON-RPC response.
var ErrMalformed = errors.New("the agent's answer is not a JSON-RPC response")

// NotDeliveredError wraps a failure before any byte of the request could
// reach the agent (the connection could not be made).
type NotDeliveredError struct{ Err error }

func (e *NotDeliveredError) Error() string { return "the request was not delivered: " + e.Err.Error() }
func (e *NotDeliveredError) Unwrap() error { return e.Err }

// NotDelivered reports whether err says the request never reached the
// agent, so that sending it again cannot do anything twice.
func NotDelivered(err error) bool {
	var nd *NotDeliveredError
	return errors.As(err, &nd)
}

// Call sends method with params in version v and returns the agent's
// response. A JSON-RPC error is a response (Response.Error), not an
// error. 1.0 requests carry A2A-Version: 1.0; 0.3 requests no version
// header (the spec's default).
func (c *Client) Call(ctx context.Context, v a2awire.Version, method string, params json.RawMessage) (*a2awire.Response, error) {
	res, err := c.post(ctx, v, method, params, "application/json")
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, int64(c.cfg.MaxMessageBytes)+1))
	if err != nil {
		return nil, err
	}
	if len(body) > c.cfg.MaxMessageBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, c.cfg.MaxMessageBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, ErrNoResponse
	}
	return c.parse(body)
}

// Stream sends method with params and calls on with each event of the
// agent's stream, in order, until the stream ends (nil), on returns an
// error (returned as is) or reading fails. An agent that answers with a
// single JSON body (a refusal, typically) is one event. A stream that
// ends before its first event is ErrNoResponse; one cut off within an
// event is io.ErrUnexpectedEOF.
func (c *Client) Stream(ctx context.Context, v a2awire.Version, method string, params json.RawMessage, on func(*a2awire.Response) error) error {
	res, err := c.post(ctx, v, method, params, a2awire.ContentTypeEventStream+", application/json")
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != a2awire.ContentTypeEventStream {
		body, err := io.ReadAll(io.LimitReader(res.Body, int64(c.cfg.MaxMessageBytes)+1))
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return ErrNoResponse
		}
		resp, err := c.parse(body)
		if err != nil {
			return err
		}
		return on(resp)
	}
	r := a2awire.NewEventReader(res.Body, c.cfg.MaxMessageBytes)
	for n := 0; ; n++ {
		data, err := r.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return ErrNoResponse
			}
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := c.parse(data)
		if err != nil {
			return err
		}
		if err := on(resp); err != nil {
			return err
		}
	}
}

// Card GETs the agent card at url (at most MaxMessageBytes).
func (c *Client) Card(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("agent card request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, int64(c.cfg.MaxMessageBytes)+1))
	if err != nil {
		return nil, err
	}
	if len(body) > c.cfg.MaxMessageBytes {
		return nil, fmt.Errorf("the agent card is larger than %d bytes", c.cfg.MaxMessageBytes)
	}
	return body, nil
}

// post sends one JSON-RPC request.
func (c *Client) post(ctx context.Context, v a2awire.Version, method string, params json.RawMessage, accept string) (*http.Response, error) {
	id := json.RawMessage(strconv.Quote("pcg-" + strconv.FormatInt(c.next.Add(1), 10)))
	body, err := a2awire.NewRequest(id, method, params)
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	if v == a2awire.V10 {
		req.Header.Set(a2awire.HeaderVersion, a2awire.V10.String())
	}
	return c.do(req)
}

// do sends req and returns a 200 answer.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	res, err := c.cfg.HTTP.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &NotDeliveredError{Err: err}
		}
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		_ = res.Body.Close()
		return nil, &HTTPError{Status: res.StatusCode, Excerpt: excerpt.Text(string(b), 200, c.cfg.Hide...)}
	}
	return res, nil
}

func (c *Client) parse(body []byte) (*a2awire.Response, error) {
	resp, err := a2awire.ParseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return resp, nil
}
