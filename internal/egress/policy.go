// Package egress decides which network destinations Portcullis may connect
// to when it calls upstreams or fetches JWKS and token URLs, to refuse
// server-side request forgery (SSRF) targets. The same Policy is applied when
// a URL is registered (CheckURL) and again when a connection is dialed
// (DialControl), which defeats DNS rebinding.
//
// Loopback and private ranges are allowed by default because gateways
// commonly front internal services. Unspecified, link-local, multicast and
// broadcast addresses and cloud metadata endpoints are refused unless
// explicitly allowed.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrRefused is wrapped by every error that refuses a destination.
var ErrRefused = errors.New("egress refused")

// Policy is an egress policy. The zero value is the default policy.
//
// For an address a, the decision is made in this order:
//
//  1. If a is in a Deny or Allow prefix, the longest matching prefix of
//     either list decides (a tie goes to Deny).
//  2. Otherwise the built-in rules apply: unspecified, multicast,
//     broadcast and "this network" (0.0.0.0/8) addresses are refused;
//     link-local addresses and cloud metadata addresses are refused unless
//     AllowLinkLocal is set; everything else, including loopback and
//     private ranges, is allowed.
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) and addresses in the NAT64
// well-known prefix (64:ff9b::/96) are judged as the IPv4 address they
// embed, in addition to their own form.
type Policy struct {
	// AllowLinkLocal permits link-local addresses (169.254.0.0/16,
	// fe80::/10), cloud metadata addresses and metadata host names.
	AllowLinkLocal bool
	// Allow lists extra explicitly allowed ranges; they override the
	// built-in deny rules.
	Allow []netip.Prefix
	// Deny lists extra denied ranges.
	Deny []netip.Prefix
}

// Built-in ranges.
var (
	thisNetwork   = netip.MustParsePrefix("0.0.0.0/8")
	broadcast     = netip.MustParseAddr("255.255.255.255")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OCI, OpenStack, DigitalOcean
		netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata and credentials
		netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	}
)

// CheckAddr reports whether the policy permits connecting to a. A refusal
// wraps ErrRefused and says how to permit the address.
func (p Policy) CheckAddr(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid IP address", ErrRefused)
	}
	a = a.WithZone("")
	forms := []netip.Addr{a}
	if u := a.Unmap(); u != a {
		forms = append(forms, u)
	}
	if nat64.Contains(a) {
		b := a.As16()
		forms = append(forms, netip.AddrFrom4([4]byte(b[12:])))
	}

	// Explicit lists: the longest matching prefix over all forms decides.
	best, denied := -1, false
	for _, f := range forms {
		for _, pr := range p.Allow {
			if pr.Contains(f) && pr.Bits() > best {
				best, denied = pr.Bits(), false
			}
		}
		for _, pr := range p.Deny {
			if pr.Contains(f) && pr.Bits() >= best {
				best, denied = pr.Bits(), true
			}
		}
	}
	if best >= 0 {
		if denied {
			return fmt.Errorf("%w: %s is in a denied range", ErrRefused, a)
		}
		return nil
	}

	// Judge embedded IPv4 forms first so the message names the most
	// specific reason (for example "cloud metadata" rather than
	// "link-local" for ::ffff:169.254.169.254).
	for i := len(forms) - 1; i >= 0; i-- {
		f := forms[i]
		if reason := p.builtin(f); reason != "" {
			shown := a.String()
			if f != a {
				shown = fmt.Sprintf("%s (embedding %s)", a, f)
			}
			return fmt.Errorf("%w: %s is %s", ErrRefused, shown, reason)
		}
	}
	return nil
}

// builtin applies the built-in rules to a single address form and returns
// why it is refused, or "" if it is allowed.
func (p Policy) builtin(a netip.Addr) string {
	const allowHint = "add it to the allowed ranges to permit it"
	const linkLocalHint = "register with --allow-link-local to permit it"
	switch {
	case a.IsUnspecified() || (a.Is4() && thisNetwork.Contains(a)):
		return "an unspecified (\"this host\") address; " + allowHint
	case a == broadcast:
		return "the broadcast address; " + allowHint
	case a.IsMulticast():
		return "a multicast address; " + allowHint
	}
	if p.AllowLinkLocal {
		return ""
	}
	for _, m := range metadataAddrs {
		if a == m {
			return "a cloud metadata address; " + linkLocalHint
		}
	}
	if a.IsLinkLocalUnicast() {
		return "a link-local address; " + linkLocalHint
	}
	return ""
}
