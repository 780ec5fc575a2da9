package upstream

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// Errors the transport returns; Refusal says what they mean to callers.
var (
	errCredentialRejected = errors.New("upstream refused the gateway's credential")
	errRequestTooLarge    = errors.New("request exceeds the upstream's max_request_bytes")
	errResponseTooLarge   = errors.New("response exceeds the upstream's max_response_bytes")
)

// credentialTransport attaches the upstream's own credential to every
// request, the hop chain and the call's W3C trace context, and bounds
// request and response sizes. It first removes any
// Authorization and Cookie header, so nothing but the configured
// credential can reach the upstream, and it refuses a request for a host
// the credential's secret is not bound to (checked on the request as it is
// sent, whatever built it). Safe for concurrent use.
type credentialTransport struct {
	base   http.RoundTripper
	header string // "" for no credential
	value  string
	hosts  []string // where the credential may go
	// dynamic, when set, gives the header's value per request (an OAuth
	// access token, fetched and cached by the token source).
	dynamic     func() (string, error)
	maxRequest  int64
	maxResponse int64
	// hopID, when set, names this data plane in the hop header.
	hopID string
	// valueHeader and hopHeader, when set, are value and hopID as header
	// values, made once: most requests send exactly these (a request
	// never changes a header value in place, so they can be shared).
	valueHeader, hopHeader []string
	// allowed is the last host (URL.Host) hosts allowed, so that the
	// check of every request to the upstream's one host is a comparison.
	allowed atomic.Pointer[string]
}

// allows reports whether the credential may go to u.
func (t *credentialTransport) allows(u *url.URL) bool {
	if h := t.allowed.Load(); h != nil && *h == u.Host {
		return true
	}
	if !secretbind.Allows(t.hosts, u) {
		return false
	}
	h := u.Host
	t.allowed.Store(&h)
	return true
}

// newCredentialTransport returns t ready for use: its shared header
// values made.
func newCredentialTransport(t *credentialTransport) *credentialTransport {
	if t.header != "" && t.dynamic == nil {
		t.valueHeader = []string{t.value}
	}
	if t.hopID != "" {
		t.hopHeader = []string{t.hopID}
	}
	return t
}

// RoundTrip implements http.RoundTripper.
func (t *credentialTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.send(req, false)
}

// send sends req with the upstream's credential. When owned, the caller
// handed req over (see Sender), and its headers are set in place;
// otherwise, as a RoundTripper must, on a copy.
func (t *credentialTransport) send(req *http.Request, owned bool) (*http.Response, error) {
	if req.ContentLength > t.maxRequest {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w (%d bytes)", errRequestTooLarge, req.ContentLength)
	}
	if t.header != "" && !t.allows(req.URL) {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w: %s", secretbind.ErrNotBound, req.URL.Host)
	}
	if !owned || req.Header == nil {
		// A RoundTripper may not change its caller's request: send a copy
		// with its own headers (the rest is not changed, so it is shared).
		out := *req
		out.Header = req.Header.Clone()
		if out.Header == nil {
			out.Header = http.Header{}
		}
		req = &out
	}
	req.Header.Del("Authorization")
	req.Header.Del("Cookie")
	if t.hopID != "" {
		if v := hop.Value(req.Context(), t.hopID); v == t.hopID && t.hopHeader != nil {
			req.Header[hop.Header] = t.hopHeader
		} else {
			req.Header.Set(hop.Header, v)
		}
	}
	// The call's trace context (its client span, when the data plane
	// traces), for every protocol: the upstream's span becomes its child.
	if trace.SpanContextFromContext(req.Context()).IsValid() {
		propagation.TraceContext{}.Inject(req.Context(), propagation.HeaderCarrier(req.Header))
	}
	switch {
	case t.dynamic != nil:
		v, err := t.dynamic()
		if err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, err
		}
		req.Header.Set(t.header, v)
	case t.valueHeader != nil:
		req.Header[t.header] = t.valueHeader // canonical (see Settings)
	case t.header != "":
		req.Header.Set(t.header, t.value)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w (HTTP %d)", errCredentialRejected, resp.StatusCode)
	}
	if resp.ContentLength > t.maxResponse {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w (%d bytes)", errResponseTooLarge, resp.ContentLength)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.maxResponse}
	return resp, nil
}

// limitedBody fails a read once more than its limit has been read.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errResponseTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errResponseTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
