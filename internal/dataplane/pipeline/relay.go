package pipeline

import "context"

// Relay carries messages between the upstream and the caller while a call
// runs, before its result: notifications (progress, logging, status
// updates) towards the caller, and upstream→caller requests (sampling,
// elicitation) with the caller's answers back. Messages are in the
// protocol's own encoding; only the protocol's adapter and forwarder read
// them. The adapter sets it; nil means the caller cannot receive anything
// before the result (then notifications are dropped and upstream requests
// refused).
type Relay struct {
	// Notify sends a notification to the caller.
	Notify func(msg []byte) error
	// Ask sends an upstream→caller request (carrying the upstream's id)
	// to the caller and returns a channel that receives the caller's
	// answer with that id restored. Nil when the caller cannot answer
	// requests. The channel is never closed; ctx bounds the wait.
	Ask func(ctx context.Context, msg []byte) (<-chan []byte, error)
	// Wire is the protocol's own per-call state that its adapter hands
	// its forwarder (for MCP, the caller's progress token); stages never
	// read it.
	Wire any
}
