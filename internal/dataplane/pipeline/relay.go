package pipeline

import (
	"context"
	"encoding/json"
)

// Relay carries messages between the upstream and the caller while a call
// runs, before its result: notifications (progress, logging) towards the
// caller, and server→client requests (sampling, elicitation) with the
// caller's answers back. The protocol adapter sets it; nil means the
// caller cannot receive anything before the result (then notifications
// are dropped and server→client requests refused).
type Relay struct {
	// ProgressToken is the caller's progress token (raw JSON), nil when
	// the caller asked for no progress.
	ProgressToken json.RawMessage
	// Notify sends a notification (raw JSON-RPC) to the caller.
	Notify func(msg []byte) error
	// Ask sends a server→client request (raw JSON-RPC, carrying the
	// upstream's id) to the caller and returns a channel that receives
	// the caller's response with that id restored. Nil when the caller
	// cannot answer requests (a 2026-07-28 client, or one without a
	// stream). The channel is never closed; ctx bounds the wait.
	Ask func(ctx context.Context, msg []byte) (<-chan []byte, error)
}
