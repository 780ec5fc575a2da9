//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
)

// idlePeek looks at an idle connection's socket without reading from it.
// It is made once per connection, so a peek allocates nothing.
type idlePeek struct {
	rc   syscall.RawConn // nil: the connection is not a socket
	open bool
	buf  [1]byte
	fn   func(fd uintptr) bool
}

func newIdlePeek(nc net.Conn) *idlePeek {
	p := &idlePeek{}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.fn = func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		p.open = errors.Is(err, syscall.EAGAIN)
		return true // never wait
	}
	return p
}

// idle reports whether an idle connection is still open with nothing to
// read: one non-blocking peek at its socket (an idle HTTP/1.1 connection
// has nothing to read until the next request, so data or an end of
// stream both mean it cannot be reused).
func (p *idlePeek) idle() bool {
	if p.rc == nil {
		return true
	}
	p.open = false
	return p.rc.Read(p.fn) == nil && p.open
}
