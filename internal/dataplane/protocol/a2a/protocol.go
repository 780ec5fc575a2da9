// Package a2a is the data plane's Agent2Agent endpoint and forwarder:
// agents call the remote agents (A2A upstreams) behind the gateway at
// /a2a/{upstream}, in the protocol version each remote agent speaks (1.0
// or 0.3, JSON-RPC with SSE streams; the gateway does not translate
// between versions), under the same identity, policy and audit as MCP
// tools. Each request becomes one pipeline.Call on a remote agent (kind
// agent): SendMessage and SendStreamingMessage are calls, CancelTask a
// cancel, GetTask a get, ListTasks a query, SubscribeToTask a subscribe,
// and the card (GetExtendedAgentCard too) a list of the agent's skills.
// Task and context ids are the gateway's own, bound to the agent that got
// them (ids.go); the card a caller sees names only the gateway (card.go).
package a2a

import (
	"github.com/portcullis-gw/portcullis/internal/dataplane/protocol"
	"github.com/portcullis-gw/portcullis/internal/dataplane/upstream"
)

// Name is A2A's name in pipeline.Call.Protocol and the configuration.
const Name = "a2a"

// New returns A2A as the data plane registers it: the /a2a/ endpoint, the
// Forwarder over a Pool of agent clients, card listing for drift
// detection through that pool, and the pool's shutdown.
func New(d protocol.Deps) protocol.Protocol {
	pool := NewPool(d.Logger, upstream.WithObserver(d.Observer), upstream.WithHopID(d.HopID), upstream.WithHTTP1(d.UpstreamHTTP1))
	h := NewHandler(d.Backend, d.Logger, d.HopID, d.Anonymous)
	return protocol.Protocol{
		Name:       Name,
		Upstreams:  upstreamProtocols,
		Endpoints:  []protocol.Endpoint{{Pattern: PathPrefix, Handler: h}},
		Forward:    (&Forwarder{Pool: pool, Logger: d.Logger.With("component", "a2a")}).Forward,
		Tools:      pool,
		Configured: pool.Prune,
		Stop:       h.Stop,
		Close:      pool.Close,
	}
}
