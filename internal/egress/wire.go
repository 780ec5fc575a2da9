package egress

import (
	"fmt"
	"net/netip"

	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// MaxPrefixes bounds the allow and deny lists a snapshot may carry, so a
// data plane never judges an address against an unbounded list.
const MaxPrefixes = 1024

// Proto is p as the snapshot carries it to data planes.
func (p Policy) Proto() *snapshotv1.EgressPolicy {
	out := &snapshotv1.EgressPolicy{AllowLinkLocal: p.AllowLinkLocal}
	for _, a := range p.Allow {
		out.Allow = append(out.Allow, a.String())
	}
	for _, d := range p.Deny {
		out.Deny = append(out.Deny, d.String())
	}
	return out
}

// FromProto is the policy a snapshot carries: nil (a control plane that
// sends none) is the default policy. A prefix that does not parse, or more
// than MaxPrefixes in a list, is an error: a data plane must refuse such a
// snapshot rather than dial under a policy it misread.
func FromProto(m *snapshotv1.EgressPolicy) (Policy, error) {
	p := Policy{AllowLinkLocal: m.GetAllowLinkLocal()}
	var err error
	if p.Allow, err = parsePrefixes("allow", m.GetAllow()); err != nil {
		return Policy{}, err
	}
	if p.Deny, err = parsePrefixes("deny", m.GetDeny()); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func parsePrefixes(list string, in []string) ([]netip.Prefix, error) {
	if len(in) > MaxPrefixes {
		return nil, fmt.Errorf("egress policy: %d %s prefixes, at most %d", len(in), list, MaxPrefixes)
	}
	var out []netip.Prefix
	for _, s := range in {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("egress policy: %s prefix %q: %w", list, truncate(s), err)
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}

// truncate keeps an error message about bad input short.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
