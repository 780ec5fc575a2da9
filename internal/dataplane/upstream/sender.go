package upstream

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Sender sends requests to one upstream exactly as the HTTP client Conns
// made for it does (the upstream's credential and nothing else, the hop
// header, the trace context, byte limits, no redirect followed, the same
// errors), for a client that hands each request over: it sets the
// headers on the request itself instead of on a copy, and skips the
// parts of http.Client that a client following no redirect, with no
// cookie jar and no timeout of its own, does not need. The caller must
// not use a request after handing it to Do (mcpclient.Doer's contract);
// its headers then hold the upstream's credential.
type Sender struct {
	hc *http.Client
	t  *credentialTransport // nil: not one of Conns' clients
}

// SenderFor returns the Sender of hc, the HTTP client Conns gave a
// Driver's Open. Any other client's requests it sends with hc.Do.
func SenderFor(hc *http.Client) *Sender {
	t, _ := hc.Transport.(*credentialTransport)
	if hc.Jar != nil || hc.Timeout != 0 {
		t = nil // not as Conns made it: http.Client has work to do
	}
	return &Sender{hc: hc, t: t}
}

// Do sends req, which it takes over, and returns the upstream's answer,
// as (*http.Client).Do does. A request http.Client would change before
// sending it (no header map, a URL with user information) or refuse is
// sent by hc.Do itself.
func (s *Sender) Do(req *http.Request) (*http.Response, error) {
	if s.t == nil || req.URL == nil || req.URL.User != nil || req.RequestURI != "" || req.Header == nil {
		return s.hc.Do(req) //nolint:gosec // an upstream's configured URL; the client's transport applies the egress policy and the secret's bound hosts
	}
	resp, err := s.t.send(req, true)
	if err != nil {
		var tlsErr tls.RecordHeaderError
		if errors.As(err, &tlsErr) && string(tlsErr.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch // as http.Client says it
		}
		return nil, urlError(req, err)
	}
	if err := unfollowedRedirect(req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// unfollowedRedirect is the error http.Client returns for a redirect it
// is told not to follow (Conns' clients answer http.ErrUseLastResponse):
// before it asks, it resolves the Location (failing on one that does not
// parse) and, for a 307 or 308, gets the body to send again; nil when
// the response is returned as it is.
func unfollowedRedirect(req *http.Request, resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if req.GetBody == nil && req.Body != nil && req.Body != http.NoBody {
			return nil // it cannot send the body again: it returns the response
		}
	default:
		return nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil
	}
	if _, err := req.URL.Parse(loc); err != nil {
		_ = resp.Body.Close()
		return urlError(req, fmt.Errorf("failed to parse Location header %q: %w", loc, err))
	}
	if (resp.StatusCode == http.StatusTemporaryRedirect || resp.StatusCode == http.StatusPermanentRedirect) && req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			_ = resp.Body.Close()
			return urlError(req, err)
		}
		_ = b.Close()
	}
	return nil
}

// urlError wraps err as http.Client does: the method and the request's
// URL (which has no password here: see Do).
func urlError(req *http.Request, err error) error {
	return &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.String(), Err: err}
}

// urlErrorOp is net/http's (*url.Error).Op for a method: "Post" for POST.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	for i := 0; i < len(method); i++ {
		if method[i] < ' ' || method[i] > '~' {
			return method
		}
	}
	return method[:1] + strings.ToLower(method[1:])
}
