// Package secretbind decides where an upstream credential may be sent.
//
// The trust model: an operator manages upstreams and may replace a secret's
// value, but must not be able to read a secret someone else stored. Were a
// secret sendable anywhere, an operator could point an upstream at a
// listener of their own and have the gateway deliver it. So every secret is
// bound to the hosts it may be sent to, and the gateway never sends it (nor
// an OAuth access token obtained with it) to another host. The binding is
// checked when an upstream that references the secret is written, and
// again by every sender at the moment of sending (the data plane's upstream
// pool, the OAuth token source, the control plane's discovery), against the
// host of the request actually being sent; redirects are never followed
// with a credential. Only an admin changes a binding.
//
// A binding is a list of entries, each "host" (any port) or "host:port".
// A host is a lower-case DNS name or an IP address; an IPv6 address with a
// port is written "[addr]:port". There are no wildcards: a binding names
// each host it trusts.
//
// This package is shared by both planes and holds no state.
package secretbind

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// Limits on a binding.
const (
	MaxHosts     = 32
	maxEntryLen  = 260
	maxLabelLen  = 63
	maxHostBytes = 253
)

// ErrNotBound is the error of a sender that refused to attach a secret to a
// request for a host outside the secret's binding. Errors wrapping it name
// the host, never the secret's value.
var ErrNotBound = errors.New("the credential is not bound to this host")

// Canonical returns the canonical form of one binding entry, or an error
// that says what is wrong with it.
func Canonical(entry string) (string, error) {
	if entry == "" {
		return "", errors.New("empty host")
	}
	if len(entry) > maxEntryLen {
		return "", fmt.Errorf("host %.40q… is longer than %d characters", entry, maxEntryLen)
	}
	if strings.Contains(entry, "://") || strings.ContainsAny(entry, "/?#@ ") {
		return "", fmt.Errorf("host %q: give a host name or IP address, optionally with :port, not a URL", entry)
	}
	if strings.Contains(entry, "*") {
		return "", fmt.Errorf("host %q: wildcards are not supported; list each host", entry)
	}
	// A bare IPv6 address (several colons, no brackets), or one in
	// brackets without a port.
	if a, err := netip.ParseAddr(entry); err == nil {
		return canonicalAddr(entry, a)
	}
	if strings.HasPrefix(entry, "[") && strings.HasSuffix(entry, "]") {
		if a, err := netip.ParseAddr(entry[1 : len(entry)-1]); err == nil && a.Is6() {
			return canonicalAddr(entry, a)
		}
	}
	host, port := entry, ""
	if strings.HasPrefix(entry, "[") || strings.Count(entry, ":") == 1 {
		h, p, err := net.SplitHostPort(entry)
		if err != nil {
			return "", fmt.Errorf("host %q: %w", entry, unwrapAddrErr(err))
		}
		host, port = h, p
		if _, err := parsePort(port); err != nil {
			return "", fmt.Errorf("host %q: %w", entry, err)
		}
	}
	h, err := canonicalHost(host)
	if err != nil {
		return "", fmt.Errorf("host %q: %w", entry, err)
	}
	if strings.HasPrefix(entry, "[") && !strings.Contains(h, ":") {
		return "", fmt.Errorf("host %q: brackets are only for IPv6 addresses", entry)
	}
	if port == "" {
		return h, nil
	}
	return net.JoinHostPort(h, port), nil
}

func canonicalAddr(entry string, a netip.Addr) (string, error) {
	if a.Zone() != "" {
		return "", fmt.Errorf("host %q: an address with a zone cannot be bound", entry)
	}
	return a.Unmap().String(), nil
}

func unwrapAddrErr(err error) error {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return errors.New(ae.Err)
	}
	return err
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || strings.HasPrefix(p, "0") {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return n, nil
}

// canonicalHost returns a host name or address in canonical form: an IP
// address as netip prints it (IPv4-mapped IPv6 as IPv4), a DNS name in
// lower case without a trailing dot.
func canonicalHost(h string) (string, error) {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "", errors.New("an address with a zone cannot be bound")
		}
		return a.Unmap().String(), nil
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "" || len(h) > maxHostBytes {
		return "", fmt.Errorf("a host name is 1 to %d characters", maxHostBytes)
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > maxLabelLen {
			return "", fmt.Errorf("%q is not a valid host name (each dot-separated label is 1 to %d characters)", h, maxLabelLen)
		}
		for _, c := range []byte(label) {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return "", fmt.Errorf("%q is not a valid host name (letters, digits, '-' and '_' only; write an international name in its xn-- form)", h)
			}
		}
	}
	return h, nil
}

// Normalize returns entries in canonical form, sorted and without
// duplicates, or the first problem found. An empty list stays empty.
func Normalize(entries []string) ([]string, error) {
	if len(entries) > MaxHosts {
		return nil, fmt.Errorf("at most %d hosts may be bound, not %d", MaxHosts, len(entries))
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		c, err := Canonical(strings.TrimSpace(e))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// IsCanonical reports whether entries is already what Normalize returns.
func IsCanonical(entries []string) bool {
	n, err := Normalize(entries)
	return err == nil && slices.Equal(n, entries)
}

// target is where a URL sends a request: its canonical host and its port
// (explicit, else the scheme's default).
type target struct {
	host string
	port string
}

func targetOf(u *url.URL) (target, bool) {
	if u == nil || u.User != nil {
		return target{}, false
	}
	h, err := canonicalHost(u.Hostname())
	if err != nil {
		return target{}, false
	}
	t := target{host: h, port: u.Port()}
	if t.port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			t.port = "443"
		case "http":
			t.port = "80"
		default:
			return target{}, false
		}
	}
	return t, true
}

// Allows reports whether a secret bound to hosts may be sent in a request
// to u. An empty binding allows nothing; so does a URL with user
// information or a host that is not a valid name or address.
func Allows(hosts []string, u *url.URL) bool {
	t, ok := targetOf(u)
	if !ok {
		return false
	}
	for _, e := range hosts {
		h, p := splitEntry(e)
		if h == t.host && (p == "" || p == t.port) {
			return true
		}
	}
	return false
}

// AllowsURL is Allows for a URL in text form.
func AllowsURL(hosts []string, raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && Allows(hosts, u)
}

// splitEntry splits a canonical entry into host and port ("" for any).
func splitEntry(e string) (host, port string) {
	if _, err := netip.ParseAddr(e); err == nil {
		return e, ""
	}
	if h, p, err := net.SplitHostPort(e); err == nil {
		return h, p
	}
	return e, ""
}

// Entry returns the binding entry that allows exactly the destination of
// raw: its host and port (the scheme's default when the URL names none).
// An implicit binding is made of these, so it never extends to another
// port of the same host, where someone else may listen.
func Entry(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %w", err)
	}
	t, ok := targetOf(u)
	if !ok {
		return "", fmt.Errorf("%q is not an http(s) URL with a valid host and no user information", raw)
	}
	return net.JoinHostPort(t.host, t.port), nil
}

// Use is where one upstream sends one secret.
type Use struct {
	// Secret is the name of the secret.
	Secret string
	// URLs are the URLs the secret, or a token obtained with it, is sent
	// to: the upstream's URL, and for an OAuth client secret also the token
	// URL.
	URLs []string
}

// UseOf returns where u's credential sends its secret; ok is false when u
// has no credential.
func UseOf(u *configv1.Upstream) (Use, bool) {
	switch k := u.GetCredential().GetKind().(type) {
	case *configv1.UpstreamCredential_Header:
		return Use{Secret: k.Header.GetSecret(), URLs: []string{u.GetUrl()}}, true
	case *configv1.UpstreamCredential_Bearer:
		return Use{Secret: k.Bearer.GetSecret(), URLs: []string{u.GetUrl()}}, true
	case *configv1.UpstreamCredential_OauthClientCredentials:
		return Use{Secret: k.OauthClientCredentials.GetClientSecret(),
			URLs: []string{k.OauthClientCredentials.GetTokenUrl(), u.GetUrl()}}, true
	default:
		return Use{}, false
	}
}

// Outside returns the first URL of use that hosts does not allow, or ""
// when it allows them all.
func Outside(hosts []string, use Use) string {
	for _, raw := range use.URLs {
		if !AllowsURL(hosts, raw) {
			return raw
		}
	}
	return ""
}

// Implicit is the binding of a secret that has no hosts of its own (one
// written before bindings existed): the destinations of the upstreams that
// reference it, as visited by each. The result is canonical (sorted, no
// duplicates), so every replica and every data plane computes the same.
func Implicit(secret string, each func(yield func(*configv1.Upstream) bool)) []string {
	return ImplicitAll(func(yield func(*configv1.Upstream) bool) {
		each(func(u *configv1.Upstream) bool {
			if use, ok := UseOf(u); ok && use.Secret != secret {
				return true
			}
			return yield(u)
		})
	})[secret]
}

// ImplicitAll is Implicit for every secret the visited upstreams
// reference, in one pass.
func ImplicitAll(each func(yield func(*configv1.Upstream) bool)) map[string][]string {
	out := map[string][]string{}
	each(func(u *configv1.Upstream) bool {
		use, ok := UseOf(u)
		if !ok {
			return true
		}
		for _, raw := range use.URLs {
			if e, err := Entry(raw); err == nil {
				out[use.Secret] = append(out[use.Secret], e)
			}
		}
		return true
	})
	for k, v := range out {
		slices.Sort(v)
		out[k] = slices.Compact(v)
	}
	return out
}

// Describe renders a binding for messages: "a, b" or "no host".
func Describe(hosts []string) string {
	if len(hosts) == 0 {
		return "no host"
	}
	return strings.Join(hosts, ", ")
}

// HostOf renders the destination of raw for messages: host:port.
func HostOf(raw string) string {
	if e, err := Entry(raw); err == nil {
		return e
	}
	return "an invalid URL"
}
