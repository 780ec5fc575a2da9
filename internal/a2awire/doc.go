// Package a2awire is the Agent2Agent protocol's wire format as the gateway
// needs it, for both protocol versions it brokers: 1.0 (PascalCase
// JSON-RPC methods, ProtoJSON enums, results wrapped as
// {"task": …} / {"message": …}) and 0.3 (slash-separated methods, kind
// discriminators, lower-case enums). It knows the methods and what each
// means, the JSON-RPC envelope, the error codes, Server-Sent Events
// framing, the members of agent cards, and where task and context ids sit
// in requests, results and stream events, so that the gateway can read and
// rewrite them without decoding (and re-encoding) anything else. It holds
// no policy: what the gateway does with these is package
// dataplane/protocol/a2a's.
package a2awire
