//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
)

// peekIdle reports whether an idle connection is still open with nothing
// to read: one non-blocking peek at its socket (an idle HTTP/1.1
// connection has nothing to read until the next request, so data or an
// end of stream both mean it cannot be reused).
func peekIdle(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN)
		return true // never wait
	})
	return err == nil && open
}
