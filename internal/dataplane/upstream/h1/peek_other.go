//go:build !unix

package h1

import "net"

// idlePeek cannot look at the socket here: an idle connection the server
// closed fails its next request instead.
type idlePeek struct{}

func newIdlePeek(net.Conn) *idlePeek { return &idlePeek{} }

func (*idlePeek) idle() bool { return true }
