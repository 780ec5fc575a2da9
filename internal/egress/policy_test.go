package egress_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/egress"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestCheckAddr(t *testing.T) {
	linkLocal := egress.Policy{AllowLinkLocal: true}
	tests := []struct {
		name    string
		policy  egress.Policy
		addr    string
		refused bool
		msg     string // substring expected in the refusal
	}{
		{name: "public v4", addr: "93.184.216.34"},
		{name: "public v6", addr: "2606:2800:220:1:248:1893:25c8:1946"},
		{name: "loopback v4", addr: "127.0.0.1"},
		{name: "loopback v6", addr: "::1"},
		{name: "private 10/8", addr: "10.1.2.3"},
		{name: "private 172.16/12", addr: "172.16.0.9"},
		{name: "private 192.168/16", addr: "192.168.1.1"},
		{name: "unique local v6", addr: "fd12:3456::1"},
		{name: "CGNAT", addr: "100.64.0.1"},
		{name: "unspecified v4", addr: "0.0.0.0", refused: true, msg: "unspecified"},
		{name: "this network", addr: "0.1.2.3", refused: true, msg: "unspecified"},
		{name: "unspecified v6", addr: "::", refused: true, msg: "unspecified"},
		{name: "link-local v4", addr: "169.254.1.1", refused: true, msg: "link-local address; register with --allow-link-local"},
		{name: "link-local v6", addr: "fe80::1", refused: true, msg: "link-local"},
		{name: "link-local v6 with zone", addr: "fe80::1%eth0", refused: true, msg: "link-local"},
		{name: "multicast v4", addr: "224.0.0.1", refused: true, msg: "multicast"},
		{name: "multicast v6", addr: "ff02::1", refused: true, msg: "multicast"},
		{name: "broadcast", addr: "255.255.255.255", refused: true, msg: "broadcast"},
		{name: "AWS/GCP/Azure metadata", addr: "169.254.169.254", refused: true, msg: "cloud metadata"},
		{name: "ECS metadata", addr: "169.254.170.2", refused: true, msg: "cloud metadata"},
		{name: "AWS IPv6 metadata", addr: "fd00:ec2::254", refused: true, msg: "cloud metadata"},
		{name: "Alibaba metadata", addr: "100.100.100.200", refused: true, msg: "cloud metadata"},
		{name: "mapped metadata", addr: "::ffff:169.254.169.254", refused: true, msg: "embedding 169.254.169.254"},
		{name: "mapped Alibaba metadata", addr: "::ffff:100.100.100.200", refused: true, msg: "cloud metadata"},
		{name: "mapped unspecified", addr: "::ffff:0.0.0.0", refused: true, msg: "unspecified"},
		{name: "mapped broadcast", addr: "::ffff:255.255.255.255", refused: true, msg: "broadcast"},
		{name: "NAT64 metadata", addr: "64:ff9b::a9fe:a9fe", refused: true, msg: "cloud metadata"},
		{name: "mapped loopback", addr: "::ffff:127.0.0.1"},
		{name: "allow link-local permits link-local", policy: linkLocal, addr: "169.254.1.1"},
		{name: "allow link-local permits metadata", policy: linkLocal, addr: "169.254.169.254"},
		{name: "allow link-local permits IPv6 metadata", policy: linkLocal, addr: "fd00:ec2::254"},
		{name: "allow link-local still refuses multicast", policy: linkLocal, addr: "224.0.0.1", refused: true},
		{name: "allow link-local still refuses unspecified", policy: linkLocal, addr: "0.0.0.0", refused: true},
		{name: "allow range overrides default", policy: egress.Policy{Allow: prefixes("169.254.10.0/24")}, addr: "169.254.10.7"},
		{name: "allow range does not leak", policy: egress.Policy{Allow: prefixes("169.254.10.0/24")}, addr: "169.254.169.254", refused: true},
		{name: "allow range covers mapped form", policy: egress.Policy{Allow: prefixes("169.254.169.254/32")}, addr: "::ffff:169.254.169.254"},
		{name: "deny range", policy: egress.Policy{Deny: prefixes("10.0.0.0/8")}, addr: "10.1.2.3", refused: true, msg: "denied range"},
		{name: "deny range covers mapped form", policy: egress.Policy{Deny: prefixes("10.0.0.0/8")}, addr: "::ffff:10.1.2.3", refused: true, msg: "denied range"},
		{name: "deny loopback", policy: egress.Policy{Deny: prefixes("127.0.0.0/8", "::1/128")}, addr: "::1", refused: true},
		{name: "more specific allow beats deny", policy: egress.Policy{Deny: prefixes("10.0.0.0/8"), Allow: prefixes("10.9.0.0/16")}, addr: "10.9.1.1"},
		{name: "more specific deny beats allow", policy: egress.Policy{Allow: prefixes("10.0.0.0/8"), Deny: prefixes("10.9.0.0/16")}, addr: "10.9.1.1", refused: true},
		{name: "equal allow and deny: deny wins", policy: egress.Policy{Allow: prefixes("10.0.0.0/8"), Deny: prefixes("10.0.0.0/8")}, addr: "10.9.1.1", refused: true},
		{name: "deny beats allow link-local", policy: egress.Policy{AllowLinkLocal: true, Deny: prefixes("169.254.169.254/32")}, addr: "169.254.169.254", refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.CheckAddr(netip.MustParseAddr(tt.addr))
			if !tt.refused {
				if err != nil {
					t.Fatalf("CheckAddr(%s) = %v, want allowed", tt.addr, err)
				}
				return
			}
			if !errors.Is(err, egress.ErrRefused) {
				t.Fatalf("CheckAddr(%s) = %v, want ErrRefused", tt.addr, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestCheckAddrInvalid(t *testing.T) {
	if err := (egress.Policy{}).CheckAddr(netip.Addr{}); !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("CheckAddr(zero) = %v, want ErrRefused", err)
	}
}
