package mcp

import (
	"net/netip"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
)

// Name is MCP's name in pipeline.Call.Protocol and the configuration.
const Name = "mcp"

// New returns MCP as the data plane registers it: the /mcp endpoint and
// its protected-resource metadata, the Forwarder over a Pool of upstream
// sessions, drift listing through that pool, tools/list_changed
// notifications on every new configuration, and the pool's shutdown.
func New(d protocol.Deps) protocol.Protocol {
	pool := NewPool(d.Logger, upstream.WithObserver(d.Observer), upstream.WithHopID(d.HopID), upstream.WithHTTP1(d.UpstreamHTTP1))
	changed := &notifier{ch: make(chan struct{}, 1)}
	opts := []Option{WithToolsChanged(changed.ch), WithHopID(d.HopID), WithSubscriptions(pool)}
	if d.Anonymous != nil {
		opts = append(opts, WithAnonymousRefusals(anonymous{d.Anonymous}))
	}
	meta := NewMetadataHandler(authorizationServers(d.AuthorizationServers))
	return protocol.Protocol{
		Name:      Name,
		Upstreams: upstreamProtocols,
		Endpoints: []protocol.Endpoint{
			{Pattern: "/mcp", Handler: NewHandler(d.Backend, d.Logger, opts...)},
			{Pattern: MetadataPath, Handler: meta},
			{Pattern: MetadataPath + "/", Handler: meta},
		},
		Forward: (&Forwarder{Pool: pool, Logger: d.Logger.With("component", "mcp")}).Forward,
		Tools:   pool,
		Configured: func(r upstream.Resolver) {
			pool.Prune(r)
			changed.signal()
		},
		Stop:  changed.stop,
		Close: pool.Close,
	}
}

// notifier tells the endpoint a new configuration is serving (its
// sessions' GET streams get notifications/tools/list_changed); stop ends
// those streams. Safe for concurrent use.
type notifier struct {
	mu      sync.Mutex
	ch      chan struct{}
	stopped bool
}

func (n *notifier) signal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	select {
	case n.ch <- struct{}{}:
	default: // one pending signal is enough
	}
}

func (n *notifier) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.stopped {
		n.stopped = true
		close(n.ch)
	}
}

// anonymous labels the endpoint's anonymous refusals with the protocol.
type anonymous struct{ rec protocol.AnonymousRecorder }

func (a anonymous) Refused(src netip.Addr, reason string) { a.rec.Refused(Name, src, reason) }

// authorizationServers adapts a function to AuthorizationServers (nil: none).
type authorizationServers func() []string

func (f authorizationServers) AuthorizationServers() []string {
	if f == nil {
		return nil
	}
	return f()
}
