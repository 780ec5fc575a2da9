package syncclient

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Timeouts for establishing a connection to a control-plane node.
const (
	dialTimeout      = 5 * time.Second
	handshakeTimeout = 5 * time.Second
	pingTimeout      = 5 * time.Second
)

// newTransport returns an HTTP/2 transport: over TLS with tlsCfg, or
// unencrypted HTTP/2 with prior knowledge (h2c) when tlsCfg is nil. A
// connection silent for idle is probed with an HTTP/2 ping and closed if
// the ping goes unanswered, so a dead connection is not reused for the
// next attempt.
func newTransport(tlsCfg *tls.Config, idle time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		TLSHandshakeTimeout: handshakeTimeout,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 1,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: idle, PingTimeout: pingTimeout},
	}
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg
		tr.ForceAttemptHTTP2 = true
		tr.Proxy = http.ProxyFromEnvironment
	} else {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = p
	}
	return tr
}
