// Package oauthcc obtains access tokens with the OAuth 2.0 client
// credentials grant (RFC 6749 §4.4) for calls to upstreams, on
// golang.org/x/oauth2: one implementation for the data planes (which call
// upstreams) and the control plane (which discovers their tools).
package oauthcc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis-gw/portcullis/internal/secretbind"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Config is an upstream's client-credentials grant.
type Config struct {
	TokenURL, ClientID, ClientSecret, Audience string
	Scopes                                     []string
	// Hosts are the hosts the client secret is bound to (see package
	// secretbind). The client secret goes to the token endpoint only when
	// the token URL's host is among them; an empty list sends it nowhere.
	Hosts []string
}

// tokenTimeout bounds one token request.
const tokenTimeout = 10 * time.Second

// ErrNoToken is returned when the token endpoint issues no usable token.
// Errors wrapping it name no secret.
var ErrNoToken = errors.New("the upstream's OAuth token endpoint did not issue a token")

// Source hands out access tokens, reusing one until shortly before it
// expires. It is safe for concurrent use.
type Source struct {
	ts       oauth2.TokenSource
	tokenURL string
	hosts    []string
}

// NewSource returns a token source for c whose token requests go over base
// (an egress-checked transport that adds no other credential), without
// following redirects, and only to a host the client secret is bound to
// (checked on each request as it is sent). The token endpoint gets the
// client credentials in a Basic header, or in the form when it refuses
// that.
func NewSource(c Config, base http.RoundTripper) *Source {
	cfg := clientcredentials.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		TokenURL:     c.TokenURL,
		Scopes:       c.Scopes,
	}
	if c.Audience != "" {
		cfg.EndpointParams = url.Values{"audience": {c.Audience}}
	}
	hc := &http.Client{
		Transport:     boundTransport{base: base, hosts: c.Hosts},
		Timeout:       tokenTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Source{ts: cfg.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc)),
		tokenURL: c.TokenURL, hosts: c.Hosts}
}

// ErrTokenURLNotBound is returned when the token URL's host is not one the
// client secret is bound to: the secret was not sent.
var ErrTokenURLNotBound = errors.New("the upstream's OAuth token URL is on a host its client secret is not bound to; nothing was sent")

// Authorization is the current token as an Authorization header value.
func (s *Source) Authorization() (string, error) {
	if !secretbind.AllowsURL(s.hosts, s.tokenURL) {
		return "", ErrTokenURLNotBound
	}
	tok, err := s.ts.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			return "", fmt.Errorf("%w (HTTP %d)", ErrNoToken, re.Response.StatusCode)
		}
		return "", ErrNoToken
	}
	if tok.AccessToken == "" || !printable(tok.AccessToken) {
		return "", ErrNoToken
	}
	return "Bearer " + tok.AccessToken, nil
}

// printable rejects control characters, so a token cannot split a header.
func printable(v string) bool {
	for _, c := range []byte(v) {
		if c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

// boundTransport refuses a request to a host outside the client secret's
// binding, whatever asked for it.
type boundTransport struct {
	base  http.RoundTripper
	hosts []string
}

func (t boundTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !secretbind.Allows(t.hosts, r.URL) {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, fmt.Errorf("%w: %s", secretbind.ErrNotBound, r.URL.Host)
	}
	return t.base.RoundTrip(r)
}
