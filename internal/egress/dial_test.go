package egress_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/egress"
)

func TestDialControlRefusesMetadata(t *testing.T) {
	called := false
	p := egress.Policy{}
	d := net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(network, address string, c syscall.RawConn) error {
			called = true
			return p.DialControl(network, address, c)
		},
	}
	for _, addr := range []string{"169.254.169.254:80", "[::ffff:169.254.169.254]:80", "[fd00:ec2::254]:80"} {
		t.Run(addr, func(t *testing.T) {
			called = false
			conn, err := d.Dial("tcp", addr)
			if err == nil {
				conn.Close()
				t.Fatalf("dial %s succeeded", addr)
			}
			if !called {
				t.Skipf("socket for %s could not be created here (%v); control hook not reached", addr, err)
			}
			if !errors.Is(err, egress.ErrRefused) {
				t.Fatalf("dial %s error = %v, want ErrRefused", addr, err)
			}
		})
	}
}

func TestDialControlAllowsLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	p := egress.Policy{}
	d := net.Dialer{Timeout: 5 * time.Second, ControlContext: p.DialControlContext}
	conn, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	conn.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("accept: %v", err)
	}
}

func TestDialControlDenyLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := egress.Policy{Deny: prefixes("127.0.0.0/8")}
	d := net.Dialer{Timeout: 5 * time.Second, Control: p.DialControl}
	conn, err := d.Dial("tcp", ln.Addr().String())
	if err == nil {
		conn.Close()
		t.Fatal("dial to denied loopback succeeded")
	}
	if !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("error = %v, want ErrRefused", err)
	}
}

func TestDialControlAddresses(t *testing.T) {
	tests := []struct {
		name    string
		network string
		address string
		refused bool
	}{
		{name: "tcp4 public", network: "tcp4", address: "93.184.216.34:443"},
		{name: "tcp6 loopback", network: "tcp6", address: "[::1]:443"},
		{name: "udp private", network: "udp4", address: "10.0.0.1:53"},
		{name: "tcp4 metadata", network: "tcp4", address: "169.254.169.254:80", refused: true},
		{name: "tcp6 link-local zone", network: "tcp6", address: "[fe80::1%eth0]:80", refused: true},
		{name: "tcp6 mapped metadata", network: "tcp6", address: "[::ffff:169.254.169.254]:80", refused: true},
		{name: "unix socket", network: "unix", address: "/run/x.sock", refused: true},
		{name: "host name not resolved", network: "tcp", address: "example.com:80", refused: true},
		{name: "missing port", network: "tcp", address: "10.0.0.1", refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := egress.Policy{}.DialControl(tt.network, tt.address, nil)
			if tt.refused != (err != nil) {
				t.Fatalf("DialControl(%s, %s) = %v, refused want %v", tt.network, tt.address, err, tt.refused)
			}
			if err != nil && !errors.Is(err, egress.ErrRefused) {
				t.Fatalf("error %v does not wrap ErrRefused", err)
			}
		})
	}
}
