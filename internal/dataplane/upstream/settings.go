package upstream

import (
	"cmp"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/resilience"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// Settings is what reaching an upstream takes, resolved from the serving
// configuration with defaults applied. Resolve it once per call: Timeout
// and MaxRetries are read per call, everything else is what a connection
// depends on.
type Settings struct {
	// Name is the upstream's name.
	Name string
	// URL is the upstream's endpoint (http or https).
	URL string
	// Config is the upstream as configured, for the protocol's own fields
	// (shared: never modify it).
	Config *configv1.Upstream
	// Timeout bounds one call, its retries and its wait for a slot.
	Timeout time.Duration
	// MaxRetries bounds the retries of a call that may be repeated.
	MaxRetries int
	// MaxRequest and MaxResponse bound a request and a response body (the
	// connection's HTTP client enforces them).
	MaxRequest, MaxResponse int64
	// Limits shape the upstream's resilience.Guard.
	Limits resilience.Limits

	header         string   // credential header (canonical), "" for none
	value          string   // credential header value
	hosts          []string // where the credential's secret may be sent (the transport checks each request)
	allowLinkLocal bool
	// egress is the snapshot's egress policy with the upstream's
	// allow_link_local added; egressKey names it (set by Conns when it
	// makes a connection).
	egress    egress.Policy
	egressKey string
	// oauth is set for an OAuth client-credentials grant; header is then
	// Authorization and value only tells grants apart (sameConnection).
	oauth *oauthcc.Config
	// own is the protocol driver's key for the upstream (Driver.Key).
	own string
}

// resolve reads upstream name from r for driver d. Its errors are
// unusableError values that name no secret.
func resolve[S any](r Resolver, name string, d *Driver[S]) (Settings, error) {
	u, ok := r.Upstream(name)
	if !ok {
		return Settings{}, unusable("it is not in the data plane's configuration")
	}
	if !slices.Contains(d.Protocols, u.GetProtocol()) {
		return Settings{}, unusable("it does not speak " + d.Name)
	}
	pu, err := url.Parse(u.GetUrl())
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil {
		return Settings{}, unusable("its URL is not a valid http(s) URL without user information")
	}
	s := Settings{
		Name:        name,
		URL:         pu.String(),
		Config:      u,
		Timeout:     u.GetResilience().GetTimeout().AsDuration(),
		MaxRequest:  u.GetLimits().GetMaxRequestBytes(),
		MaxResponse: u.GetLimits().GetMaxResponseBytes(),
		MaxRetries:  DefaultMaxRetries,
		Limits: resilience.Limits{
			BreakerFailures: int(u.GetResilience().GetBreakerFailures()),
			BreakerOpen:     u.GetResilience().GetBreakerOpen().AsDuration(),
			MaxConcurrency:  int(u.GetLimits().GetMaxConcurrency()),
		},
		allowLinkLocal: u.GetAllowLinkLocal(),
	}
	if r := u.GetResilience(); r != nil && r.MaxRetries != nil {
		s.MaxRetries = max(0, int(r.GetMaxRetries()))
	}
	if s.Limits.BreakerFailures <= 0 {
		s.Limits.BreakerFailures = DefaultBreakerFailures
	}
	if s.Limits.BreakerOpen <= 0 {
		s.Limits.BreakerOpen = DefaultBreakerOpen
	}
	if s.Limits.MaxConcurrency <= 0 {
		s.Limits.MaxConcurrency = cmp.Or(d.Defaults.MaxConcurrency, DefaultMaxConcurrency)
	}
	if s.Timeout <= 0 {
		s.Timeout = cmp.Or(d.Defaults.Timeout, DefaultTimeout)
	}
	if s.MaxRequest <= 0 {
		s.MaxRequest = cmp.Or(d.Defaults.MaxRequest, DefaultMaxRequestBytes)
	}
	if s.MaxResponse <= 0 {
		s.MaxResponse = cmp.Or(d.Defaults.MaxResponse, DefaultMaxResponseBytes)
	}
	if err := s.setCredential(r, u.GetCredential(), d.Headers); err != nil {
		return Settings{}, err
	}
	s.egress = r.Egress()
	s.egress.AllowLinkLocal = s.egress.AllowLinkLocal || s.allowLinkLocal
	if d.Key != nil {
		s.own = d.Key(u)
	}
	return s, nil
}

// sameConnection reports whether a connection made under a serves b
// unchanged: everything a connection depends on but Timeout and
// MaxRetries, which are read per call. It runs on every call, so it
// compares the fields instead of building and hashing a fingerprint; the
// credential values are compared in constant time.
func sameConnection(a, b *Settings) bool {
	return a.URL == b.URL && a.header == b.header &&
		subtle.ConstantTimeCompare([]byte(a.value), []byte(b.value)) == 1 &&
		slices.Equal(a.hosts, b.hosts) && a.allowLinkLocal == b.allowLinkLocal &&
		a.egress.AllowLinkLocal == b.egress.AllowLinkLocal &&
		slices.Equal(a.egress.Allow, b.egress.Allow) && slices.Equal(a.egress.Deny, b.egress.Deny) &&
		a.MaxRequest == b.MaxRequest && a.MaxResponse == b.MaxResponse && a.own == b.own &&
		a.Limits == b.Limits
}

// egressKey names p: two policies with the same key judge every address
// the same way.
func egressKey(p egress.Policy) string {
	var b strings.Builder
	b.WriteString(strconv.FormatBool(p.AllowLinkLocal))
	for _, a := range p.Allow {
		b.WriteString(" +" + a.String())
	}
	for _, d := range p.Deny {
		b.WriteString(" -" + d.String())
	}
	return b.String()
}

// setCredential reads the upstream's credential; protocolHeaders are the
// headers its protocol sets itself.
func (s *Settings) setCredential(r Resolver, c *configv1.UpstreamCredential, protocolHeaders []string) error {
	var header, secretName string
	switch k := c.GetKind().(type) {
	case nil:
		return nil
	case *configv1.UpstreamCredential_Bearer:
		header, secretName = "Authorization", k.Bearer.GetSecret()
	case *configv1.UpstreamCredential_Header:
		header, secretName = http.CanonicalHeaderKey(k.Header.GetHeader()), k.Header.GetSecret()
		if !validHeaderName(header) || forbiddenHeader(header, protocolHeaders) {
			return unusable("its credential header name is not allowed")
		}
	case *configv1.UpstreamCredential_OauthClientCredentials:
		o := k.OauthClientCredentials
		secret, hosts, ok := r.Secret(o.GetClientSecret())
		if !ok {
			return unusable("its OAuth client secret is missing from the configuration")
		}
		tu, err := url.Parse(o.GetTokenUrl())
		if err != nil || (tu.Scheme != "https" && tu.Scheme != "http") || tu.Host == "" || tu.User != nil {
			return unusable("its OAuth token URL is not a valid http(s) URL without user information")
		}
		// The client secret goes to the token URL, the token it buys to
		// the upstream: the secret's binding must allow both.
		if !secretbind.Allows(hosts, tu) || !secretbind.AllowsURL(hosts, s.URL) {
			return unusable(notBound)
		}
		s.hosts = hosts
		s.oauth = &oauthcc.Config{TokenURL: tu.String(), ClientID: o.GetClientId(), ClientSecret: string(secret),
			Scopes: o.GetScopes(), Audience: o.GetAudience(), Hosts: hosts}
		// The token is the credential; value stands for the grant.
		s.header, s.value = "Authorization", strings.Join(append([]string{"oauth", s.oauth.TokenURL, s.oauth.ClientID,
			s.oauth.ClientSecret, s.oauth.Audience}, s.oauth.Scopes...), "\x00")
		return nil
	default:
		return unusable("its credential kind is unknown to this data plane")
	}
	secret, hosts, ok := r.Secret(secretName)
	if !ok {
		return unusable("its credential secret is missing from the configuration")
	}
	if !secretbind.AllowsURL(hosts, s.URL) {
		return unusable(notBound)
	}
	s.hosts = hosts
	value := string(secret)
	if header == "Authorization" {
		value = "Bearer " + value
	}
	if !validHeaderValue(value) {
		return unusable("its credential secret is not a valid header value")
	}
	s.header, s.value = header, value
	return nil
}

// CredentialValues are the secret values s sends, never to be quoted in
// an error should the upstream echo them.
func (s *Settings) CredentialValues() []string {
	if s.oauth != nil {
		return []string{s.oauth.ClientSecret}
	}
	if s.header == "" {
		return nil
	}
	return []string{s.value, strings.TrimPrefix(s.value, "Bearer ")}
}

// notBound is why an upstream whose credential's secret is not bound to
// its host cannot be called (the gateway sends a secret to no other host).
const notBound = "its credential's secret is not bound to the host it would be sent to; an admin must bind it (gwctl secret bind) or an operator must fix the upstream"

// forbiddenHeader reports the headers a header credential may not use:
// Authorization (use bearer), cookies, hop-by-hop or framing headers, and
// the headers the protocol sets itself (own, canonical).
func forbiddenHeader(h string, own []string) bool {
	switch h {
	case "Authorization", "Cookie", "Set-Cookie", "Host", "Connection", "Keep-Alive", "Proxy-Authorization",
		"Proxy-Authenticate", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Content-Length", "Content-Type", "Last-Event-Id":
		return true
	}
	return slices.Contains(own, h)
}

// validHeaderName reports whether h is an RFC 9110 token.
func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range []byte(h) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters (CR, LF, NUL, …) so a secret
// can never split a header.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// unusableError says why an upstream cannot be called; the text is safe
// for callers.
type unusableError struct{ why string }

func (e *unusableError) Error() string { return e.why }

func unusable(why string) error { return &unusableError{why: why} }

// errClosed refuses calls once Conns is closed.
var errClosed = errors.New("the data plane is shutting down")
