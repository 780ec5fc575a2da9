package upstream

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/mcpclient"
	"github.com/portcullis-gw/portcullis/internal/oauthcc"
	"github.com/portcullis-gw/portcullis/internal/secretbind"
)

// settings is what the pool needs of an upstream's configuration, resolved
// once per call.
type settings struct {
	name           string
	url            string
	header         string   // credential header (canonical), "" for none
	value          string   // credential header value
	hosts          []string // where the credential's secret may be sent (the transport checks each request)
	timeout        time.Duration
	maxRequest     int64
	maxResponse    int64
	allowLinkLocal bool
	// egress is the snapshot's egress policy with the upstream's
	// allow_link_local added; egressKey names it.
	egress    egress.Policy
	egressKey string
	era       mcpclient.Era
	// oauth is set for an OAuth client-credentials grant; header is then
	// Authorization and value only feeds the fingerprint.
	oauth *oauthcc.Config
	// Resilience (defaults applied). maxRetries and timeout are read per
	// call; the others shape the entry's guard, so they enter the
	// fingerprint.
	maxRetries      int
	breakerFailures int
	breakerOpen     time.Duration
	maxConcurrency  int
	// fingerprint identifies everything a session depends on; the secret
	// enters only as a digest.
	fingerprint string
}

// resolve reads upstream name from r. Its errors are unusableError values
// that name no secret.
func resolve(r Resolver, name string) (settings, error) {
	u, ok := r.Upstream(name)
	if !ok {
		return settings{}, unusable("it is not in the data plane's configuration")
	}
	switch u.GetProtocol() {
	case configv1.Protocol_PROTOCOL_MCP, configv1.Protocol_PROTOCOL_UNSPECIFIED:
	default:
		return settings{}, unusable("it does not speak MCP")
	}
	pu, err := url.Parse(u.GetUrl())
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil {
		return settings{}, unusable("its URL is not a valid http(s) URL without user information")
	}
	s := settings{
		name:            name,
		url:             pu.String(),
		timeout:         u.GetResilience().GetTimeout().AsDuration(),
		maxRequest:      u.GetLimits().GetMaxRequestBytes(),
		maxResponse:     u.GetLimits().GetMaxResponseBytes(),
		allowLinkLocal:  u.GetAllowLinkLocal(),
		maxRetries:      DefaultMaxRetries,
		breakerFailures: int(u.GetResilience().GetBreakerFailures()),
		breakerOpen:     u.GetResilience().GetBreakerOpen().AsDuration(),
		maxConcurrency:  int(u.GetLimits().GetMaxConcurrency()),
	}
	if r := u.GetResilience(); r != nil && r.MaxRetries != nil {
		s.maxRetries = max(0, int(r.GetMaxRetries()))
	}
	if s.breakerFailures <= 0 {
		s.breakerFailures = DefaultBreakerFailures
	}
	if s.breakerOpen <= 0 {
		s.breakerOpen = DefaultBreakerOpen
	}
	if s.maxConcurrency <= 0 {
		s.maxConcurrency = DefaultMaxConcurrency
	}
	switch u.GetMcpEra() {
	case configv1.McpEra_MCP_ERA_LEGACY:
		s.era = mcpclient.EraLegacy
	case configv1.McpEra_MCP_ERA_MODERN:
		s.era = mcpclient.EraModern
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.maxRequest <= 0 {
		s.maxRequest = DefaultMaxRequestBytes
	}
	if s.maxResponse <= 0 {
		s.maxResponse = DefaultMaxResponseBytes
	}
	if err := s.setCredential(r, u.GetCredential()); err != nil {
		return settings{}, err
	}
	s.egress = r.Egress()
	s.egress.AllowLinkLocal = s.egress.AllowLinkLocal || s.allowLinkLocal
	s.egressKey = egressKey(s.egress)
	sum := sha256.Sum256([]byte(s.value))
	s.fingerprint = strings.Join([]string{
		s.url, s.header, hex.EncodeToString(sum[:]), s.egressKey, strings.Join(s.hosts, ","),
		strconv.FormatInt(s.maxRequest, 10), strconv.FormatInt(s.maxResponse, 10), strconv.FormatBool(s.allowLinkLocal), s.era.String(),
		strconv.Itoa(s.breakerFailures), s.breakerOpen.String(), strconv.Itoa(s.maxConcurrency),
	}, "\x00")
	return s, nil
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

func (s *settings) setCredential(r Resolver, c *configv1.UpstreamCredential) error {
	var header, secretName string
	switch k := c.GetKind().(type) {
	case nil:
		return nil
	case *configv1.UpstreamCredential_Bearer:
		header, secretName = "Authorization", k.Bearer.GetSecret()
	case *configv1.UpstreamCredential_Header:
		header, secretName = http.CanonicalHeaderKey(k.Header.GetHeader()), k.Header.GetSecret()
		if !validHeaderName(header) || forbiddenHeader(header) {
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
		if !secretbind.Allows(hosts, tu) || !secretbind.AllowsURL(hosts, s.url) {
			return unusable(notBound)
		}
		s.hosts = hosts
		s.oauth = &oauthcc.Config{TokenURL: tu.String(), ClientID: o.GetClientId(), ClientSecret: string(secret),
			Scopes: o.GetScopes(), Audience: o.GetAudience(), Hosts: hosts}
		// The token is the credential; the fingerprint covers the grant.
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
	if !secretbind.AllowsURL(hosts, s.url) {
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

// credentialValues are the secret values s sends, never to be quoted in
// an error should the upstream echo them.
func (s *settings) credentialValues() []string {
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
// Authorization (use bearer), cookies, and hop-by-hop or framing headers.
func forbiddenHeader(h string) bool {
	switch h {
	case "Authorization", "Cookie", "Set-Cookie", "Host", "Connection", "Keep-Alive", "Proxy-Authorization",
		"Proxy-Authenticate", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Content-Length", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "Last-Event-Id":
		return true
	}
	return false
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

var errPoolClosed = errors.New("the data plane is shutting down")
