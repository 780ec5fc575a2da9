package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Resolver resolves host names to IP addresses. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrResolve wraps failures to resolve a URL's host name. It does not wrap
// ErrRefused: the destination was not judged.
var ErrResolve = errors.New("resolve egress host")

// metadataHosts are host names that reach cloud instance metadata services.
var metadataHosts = map[string]string{
	"metadata.google.internal":   "GCP",
	"metadata.goog":              "GCP",
	"metadata":                   "GCP",
	"instance-data":              "AWS",
	"instance-data.ec2.internal": "AWS",
	"metadata.azure.com":         "Azure",
	"metadata.azure.internal":    "Azure",
}

// CheckURL reports whether the policy permits requests to raw. The URL must
// use http or https, have a host and no user information. A host name that
// is a known cloud metadata name is refused unless AllowLinkLocal is set;
// any other name is resolved with r (net.DefaultResolver when nil) and every
// address it resolves to must pass CheckAddr. Host names written as
// non-canonical numeric IPv4 forms (for example "2852039166" or
// "0xa9fea9fe") are refused because resolvers disagree on their meaning.
func (p Policy) CheckURL(ctx context.Context, raw string, r Resolver) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: parse URL: %w", ErrRefused, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return fmt.Errorf("%w: URL has no scheme; use http:// or https://", ErrRefused)
	default:
		return fmt.Errorf("%w: scheme %q is not allowed; use http or https", ErrRefused, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL contains user information; pass credentials separately, not in the URL", ErrRefused)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: URL has no host", ErrRefused)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := p.CheckAddr(a); err != nil {
			return fmt.Errorf("URL %s: %w", redact(u), err)
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if looksNumeric(name) {
		return fmt.Errorf("%w: host %q is not a canonical IP address; write IPv4 addresses in dotted-decimal form", ErrRefused, host)
	}
	if provider, ok := metadataHosts[name]; ok && !p.AllowLinkLocal {
		return fmt.Errorf("%w: %s is a %s cloud metadata host name; register with --allow-link-local to permit it", ErrRefused, host, provider)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrResolve, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w %s: no addresses", ErrResolve, host)
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return fmt.Errorf("host %s resolves to a refused address: %w", host, err)
		}
	}
	return nil
}

// looksNumeric reports whether name would be read as an IPv4 address by a
// WHATWG URL parser or inet_aton: its last label is all decimal digits or a
// 0x-prefixed hex number. No real DNS top-level domain has that form.
func looksNumeric(name string) bool {
	last := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		last = name[i+1:]
	}
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		for _, c := range h {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// redact returns u as a string without query or fragment, which may carry
// secrets.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.RawFragment = "", "", ""
	return c.String()
}
