// Package h1 is an HTTP/1.1 client transport that writes each request and
// reads its response on the calling goroutine.
//
// net/http's Transport runs a read and a write goroutine per connection,
// so every request is handed from the caller to the writer and the
// response from the reader back to the caller: several goroutine
// hand-offs, and thread wake-ups, per call, which at a fixed call rate
// cost more CPU than the call's own work (see docs/performance.md). This
// transport keeps idle connections in a pool and, for a request, takes
// one, writes the request and reads the response on the caller's
// goroutine. The bytes are written as (*http.Request).Write writes them
// and read as http.ReadResponse reads them, as the Transport does: by the
// standard library itself, except for the plain requests the data plane
// sends and the plain answers upstreams give, which this package writes
// and reads without the standard library's per-message allocations, byte
// for byte and field for field the same (see writeRequest and
// readResponseHead, and FuzzWriteRequest and FuzzReadResponseHead, which
// hold them to it); only the connection handling is this package's.
//
// It serves plain http:// requests only. Everything else (https, where
// ALPN may choose HTTP/2; protocol upgrades; CONNECT; Expect:
// 100-continue, which must wait for the server) goes to Fallback.
//
// A connection is reused only when its response was read to the end and
// neither side asked to close it; a response body closed early closes
// its connection (as net/http does). An idle connection the server has
// closed is noticed before it is reused (a non-blocking peek), since no
// goroutine reads idle connections. The request's context bounds the
// dial, the write and every read of the response, its body included.
package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for unset Transport fields.
const (
	DefaultMaxIdlePerHost = 64
	DefaultIdleTimeout    = 90 * time.Second
)

// bufSize is the size of a connection's read and write buffers: a
// tools/call and its answer fit, as does a header block.
const bufSize = 4 << 10

// Transport is an http.RoundTripper for HTTP/1.1 over plain TCP. Its
// zero value is not usable: set Dial and Fallback. Safe for concurrent
// use; fields must not change after first use.
type Transport struct {
	// Dial makes a TCP connection to addr (host:port).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Fallback carries the requests this transport does not serve.
	Fallback http.RoundTripper
	// MaxIdlePerHost bounds the idle connections kept per host
	// (default DefaultMaxIdlePerHost).
	MaxIdlePerHost int
	// IdleTimeout is how long an idle connection may be kept
	// (default DefaultIdleTimeout).
	IdleTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]*conn // by host:port, most recently used last
}

var _ http.RoundTripper = (*Transport)(nil)

// serves reports whether t sends req itself.
func serves(req *http.Request) bool {
	return req.URL != nil && req.URL.Scheme == "http" && req.URL.Host != "" &&
		req.Method != http.MethodConnect && req.Header.Get("Upgrade") == "" && req.Header.Get("Expect") == ""
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !serves(req) {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	addr := hostPort(req.URL.Host)
	c, err := t.get(ctx, addr)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, c.expire)
	resp, err := c.roundTrip(req)
	if err != nil {
		stop()
		_ = c.nc.Close()
		return nil, contextError(ctx, err)
	}
	resp.Body = &body{rc: resp.Body, t: t, c: c, ctx: ctx, stop: stop,
		reusable: resp.StatusCode >= 200 && !resp.Close && !req.Close}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of t and of its
// Fallback; connections in use are closed when their response ends.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			_ = c.nc.Close()
		}
	}
	if f, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// get returns an idle connection to addr that is still open, or dials a
// new one.
func (t *Transport) get(ctx context.Context, addr string) (*conn, error) {
	for {
		t.mu.Lock()
		cs := t.idle[addr]
		if len(cs) == 0 {
			t.mu.Unlock()
			break
		}
		c := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		t.idle[addr] = cs[:len(cs)-1]
		t.mu.Unlock()
		if time.Since(c.idleSince) < t.idleTimeout() && c.alive() {
			return c, nil
		}
		_ = c.nc.Close()
	}
	nc, err := t.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, addr: addr, br: bufio.NewReaderSize(nc, bufSize), bw: bufio.NewWriterSize(nc, bufSize), peek: newIdlePeek(nc)}
	c.expire = func() { _ = nc.SetDeadline(aLongTimeAgo) }
	return c, nil
}

// put keeps c for reuse, or closes it when the host has enough idle ones.
func (t *Transport) put(c *conn) {
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		_ = c.nc.Close()
		return
	}
	c.idleSince = time.Now()
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	cs := t.idle[c.addr]
	if len(cs) >= t.maxIdle() {
		t.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	t.idle[c.addr] = append(cs, c)
	t.mu.Unlock()
}

func (t *Transport) maxIdle() int {
	if t.MaxIdlePerHost > 0 {
		return t.MaxIdlePerHost
	}
	return DefaultMaxIdlePerHost
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return DefaultIdleTimeout
}

// conn is one connection with its buffers; one request uses it at a time.
type conn struct {
	nc        net.Conn
	addr      string
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	peek      *idlePeek
	// expire fails the connection's blocked reads and writes (the
	// request's context ended); made once per connection.
	expire func()
	// body is writeRequest's reader of a request body, reused.
	body io.LimitedReader
}

// maxInterim bounds the 1xx interim responses skipped before the final
// one (net/http allows as many).
const maxInterim = 5

// errInterim refuses a server that sends interim responses without end.
var errInterim = errors.New("the server sent too many 1xx responses")

// roundTrip writes req and reads the head of its final response (1xx
// interim responses are skipped, as net/http does).
func (c *conn) roundTrip(req *http.Request) (*http.Response, error) {
	werr := writeRequest(c.bw, &c.body, req) // closes req.Body
	if werr == nil {
		werr = c.bw.Flush()
	}
	if werr != nil {
		// A server may answer before it has read the whole request (a
		// refusal) and stop reading: its answer, when it sent one, says
		// more than the failed write. The connection is not reused.
		resp, err := c.readResponse(req)
		if err != nil {
			return nil, werr
		}
		resp.Close = true
		return resp, nil
	}
	return c.readResponse(req)
}

// readResponse reads the head of req's final response.
func (c *conn) readResponse(req *http.Request) (*http.Response, error) {
	for range maxInterim + 1 {
		resp, err := readResponseHead(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return resp, nil
	}
	return nil, errInterim
}

// alive reports whether an idle connection may be reused: nothing is
// buffered and the server has neither closed it nor sent anything.
func (c *conn) alive() bool {
	return c.br.Buffered() == 0 && c.peek.idle()
}

// body is a response body on a connection: the connection goes back to
// the pool when the body was read to its end, and is closed when the
// body is closed before, fails or outlives the request's context.
type body struct {
	rc       io.ReadCloser
	t        *Transport
	c        *conn
	ctx      context.Context
	stop     func() bool // stops the context's watch; false once it fired
	reusable bool

	done atomic.Bool
	eof  atomic.Bool
}

// errBodyClosed is a read after Close, as net/http words it.
var errBodyClosed = errors.New("http: read on closed response body")

func (b *body) Read(p []byte) (int, error) {
	if b.done.Load() {
		if b.eof.Load() {
			return 0, io.EOF
		}
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		b.eof.Store(true)
		b.finish(b.reusable)
	case err != nil:
		err = contextError(b.ctx, err)
		b.finish(false)
	}
	return n, err
}

// Close implements io.Closer; it never blocks on the network.
func (b *body) Close() error {
	b.finish(false)
	return nil
}

// finish ends the body's hold on its connection once: back to the pool
// when reuse is true and the context's watch had not fired, else closed.
func (b *body) finish(reuse bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	watched := b.stop()
	if reuse && watched {
		_ = b.rc.Close() // at EOF: reads nothing
		b.t.put(b.c)
		return
	}
	// Closing the connection first makes the body's Close, which would
	// otherwise read the rest of it, return at once.
	_ = b.c.nc.Close()
	_ = b.rc.Close()
}

// aLongTimeAgo is a deadline in the past: it fails blocked reads and
// writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// contextError is err, or the context's error when the context is why
// the operation failed (its deadline or cancellation set the
// connection's deadline).
func contextError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
	}
	return err
}

// hostPort is host with the http default port when it has none.
func hostPort(host string) string {
	if _, port, err := net.SplitHostPort(host); err == nil && port != "" {
		return host
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		return host + ":80"
	}
	return net.JoinHostPort(host, "80")
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
