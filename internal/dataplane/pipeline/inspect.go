package pipeline

import "github.com/portcullis-gw/portcullis/internal/dataplane/inspect"

// Payload says which of a call's messages some content comes from.
type Payload uint8

// Payloads.
const (
	// PayloadArguments is Call.Arguments.
	PayloadArguments Payload = iota + 1
	// PayloadResult is Result.Body.
	PayloadResult
	// PayloadFrame is a message relayed to the caller before the result
	// (through Relay.Notify or Relay.Ask).
	PayloadFrame
)

// Content is how a protocol shows runtime inspection what its messages
// carry, and applies what inspection changes: stages never parse a
// protocol's encoding. A protocol's adapter sets Call.Content; a call
// without one is inspected as one JSON document per message. Methods must
// be safe for concurrent use.
type Content interface {
	// Parts returns the inspectable parts of msg, a message of kind p in
	// the protocol's own encoding: its texts, and JSON documents whose
	// string values are texts. None when it carries nothing to inspect.
	// For PayloadArguments msg is Call.Arguments; a protocol whose
	// request is not tool arguments (an A2A message, a model's prompt)
	// shows its request instead, whatever msg is.
	Parts(p Payload, msg []byte) ([]inspect.Part, error)
	// Rewrite returns msg with parts replaced as edits say (Edit.Part
	// indexes what Parts returns for the same msg).
	Rewrite(p Payload, msg []byte, edits []inspect.Edit) ([]byte, error)
}

// Finding is one thing runtime inspection found in a call, as its audit
// record keeps it: never what was found, only where.
type Finding struct {
	// Detector and Kind: "pii" and "payment_card".
	Detector, Kind string
	// Rule is the inspection rule's name; Mode "enforce" or "shadow".
	Rule, Mode string
	// Side is "request", "response" or "stream".
	Side string
	// Location is where in the payload.
	Location string
	// Action is what the rule did ("flag", "redact", "mask", "block"), or
	// for a shadow rule would have done.
	Action string
}

// MaxFindings bounds the findings a call records; Call.FindingsOmitted
// counts the rest.
const MaxFindings = 64
