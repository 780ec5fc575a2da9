package egress

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
)

// DialControl checks the address a socket is about to connect to. Use it as
// net.Dialer.Control so that the address actually dialed, after DNS
// resolution, is re-checked against the policy; this defeats DNS rebinding
// between CheckURL and the request. Only IP networks (tcp, tcp4, tcp6, udp,
// udp4, udp6) are permitted; anything else is refused.
func (p Policy) DialControl(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return fmt.Errorf("%w: network %q is not an IP network", ErrRefused, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: dial address %q is not an IP address and port: %w", ErrRefused, address, err)
	}
	if err := p.CheckAddr(ap.Addr()); err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, err)
	}
	return nil
}

// DialControlContext is DialControl with the signature of
// net.Dialer.ControlContext.
func (p Policy) DialControlContext(_ context.Context, network, address string, c syscall.RawConn) error {
	return p.DialControl(network, address, c)
}
