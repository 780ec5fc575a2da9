// Package mcpwire reads and rewrites MCP's wire format without
// re-serializing it: JSON-RPC 2.0 envelopes (message.go), in-place edits of
// single members that keep every other byte (edit.go), Server-Sent Events
// framing (sse.go), and the transport's constants (protocol versions,
// headers, _meta keys) that the gateway's client and its endpoint share
// (protocol.go). A gateway forwards what it received; it parses only the
// envelope and rewrites only what federation must (ids, names, progress
// tokens), so fields it does not know survive the trip.
package mcpwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// JSON-RPC and MCP error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeHeaderMismatch: a mirrored header disagrees with the body
	// (2026-07-28).
	CodeHeaderMismatch = -32020
	// CodeUnsupportedVersion: the requested protocol version is not
	// supported (2026-07-28; answered with HTTP 400).
	CodeUnsupportedVersion = -32022
)

// MaxMessageBytes bounds one message this package parses.
const MaxMessageBytes = 8 << 20

// Kind is what a message is.
type Kind int

// Message kinds.
const (
	KindRequest Kind = iota + 1
	KindNotification
	KindResult
	KindError
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResult:
		return "result"
	case KindError:
		return "error"
	}
	return "invalid"
}

// Message is one JSON-RPC message: its raw bytes and the envelope members,
// each a slice of Raw (nil when absent).
type Message struct {
	Raw []byte
	// ID is the raw id (a JSON string or number; "null" only in an error
	// response to an unreadable request); nil for a notification.
	ID     json.RawMessage
	Method string
	Params json.RawMessage
	Result json.RawMessage
	Error  json.RawMessage
}

// Kind classifies the message.
func (m *Message) Kind() Kind {
	switch {
	case m.Method != "" && m.ID != nil:
		return KindRequest
	case m.Method != "":
		return KindNotification
	case m.Error != nil:
		return KindError
	default:
		return KindResult
	}
}

// Error is a JSON-RPC error object; it is also the parse failure this
// package reports, ready to be answered.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// ErrBatch is returned for a JSON array: batching was removed from MCP in
// 2025-06-18.
var ErrBatch = &Error{Code: CodeInvalidRequest, Message: "batching is not supported: send one JSON-RPC message per request"}

// Parse reads one JSON-RPC message strictly: a JSON object with
// "jsonrpc": "2.0", no duplicate envelope members, an id that is a string
// or a number, params that are an object (or absent), and exactly one of
// method, result or error. The returned Message's slices alias b. On
// failure the error is an *Error to answer with; ParseID recovers the id to
// answer to when there is one.
func Parse(b []byte) (*Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("the message exceeds %d bytes", MaxMessageBytes)}
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) > 0 && t[0] == '[' {
		if !json.Valid(t) {
			return nil, &Error{Code: CodeParseError, Message: "parse error: the body is not valid JSON"}
		}
		return nil, ErrBatch
	}
	var scratch [memberScratch]Member
	members, err := appendMembers(scratch[:0], b)
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, errNotJSON) {
			return nil, &Error{Code: CodeParseError, Message: "parse error: the body is not valid JSON"}
		}
		return nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: " + err.Error()}
	}
	m := &Message{Raw: b}
	var version json.RawMessage
	for _, mem := range members {
		v := b[mem.Start:mem.End]
		switch mem.Key {
		case "jsonrpc":
			version = v
		case "id":
			m.ID = v
		case "method":
			if m.Method = knownMethod(v); m.Method != "" {
				break
			}
			if err := Unquote(v, &m.Method); err != nil || m.Method == "" {
				return nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: method must be a non-empty string"}
			}
		case "params":
			m.Params = v
		case "result":
			m.Result = v
		case "error":
			m.Error = v
		}
	}
	if string(version) != `"2.0"` {
		return nil, &Error{Code: CodeInvalidRequest, Message: `invalid request: jsonrpc must be "2.0"`}
	}
	if m.ID != nil && !validID(m.ID, m.Error != nil) {
		return nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: id must be a string or a number"}
	}
	n := 0
	for _, present := range []bool{m.Method != "", m.Result != nil, m.Error != nil} {
		if present {
			n++
		}
	}
	switch {
	case n == 0 && m.ID != nil:
		return nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: method is required"}
	case n != 1:
		return nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: a message has exactly one of method, result and error"}
	case m.Method == "" && m.ID == nil:
		return nil, &Error{Code: CodeInvalidRequest, Message: "invalid response: id is required"}
	case m.Params != nil && !IsObject(m.Params) && string(m.Params) != "null":
		return nil, &Error{Code: CodeInvalidParams, Message: "invalid params: params must be an object"}
	case m.Error != nil && !IsObject(m.Error):
		return nil, &Error{Code: CodeInvalidRequest, Message: "invalid response: error must be an object"}
	}
	return m, nil
}

// knownMethod returns the method whose JSON string is exactly v, without
// allocating, for the methods most messages carry; "" for others.
func knownMethod(v []byte) string {
	switch string(v) { // no allocation: the compiler compares in place
	case `"tools/call"`:
		return "tools/call"
	case `"tools/list"`:
		return "tools/list"
	case `"notifications/progress"`:
		return "notifications/progress"
	case `"notifications/message"`:
		return "notifications/message"
	case `"notifications/cancelled"`:
		return "notifications/cancelled"
	case `"notifications/initialized"`:
		return "notifications/initialized"
	case `"initialize"`:
		return "initialize"
	case `"ping"`:
		return "ping"
	}
	return ""
}

// Unquote decodes the JSON value v into the string s, as json.Unmarshal
// does (null leaves s as it is; a value that is not a string is an
// error), without its reflection for a plain ASCII string.
func Unquote(v []byte, s *string) error {
	if len(v) >= 2 && v[0] == '"' {
		inner := v[1 : len(v)-1]
		plain := true
		for _, c := range inner {
			if c == '\\' || c == '"' || c < 0x20 || c >= utf8.RuneSelf {
				plain = false
				break
			}
		}
		if plain && v[len(v)-1] == '"' {
			*s = string(inner)
			return nil
		}
	}
	// Decoded into a string of its own, so that s does not escape (and
	// with its caller's value in it, which null keeps).
	out := *s
	if err := json.Unmarshal(v, &out); err != nil {
		return err
	}
	*s = out
	return nil
}

// ParseID returns the id of a message that failed to parse, when its
// top-level object has a usable one, else null: what an error answer to it
// carries.
func ParseID(b []byte) json.RawMessage {
	var scratch [memberScratch]Member
	members, err := appendMembers(scratch[:0], b)
	if err != nil {
		return json.RawMessage("null")
	}
	for _, m := range members {
		if m.Key == "id" && validID(b[m.Start:m.End], false) {
			return json.RawMessage(b[m.Start:m.End])
		}
	}
	return json.RawMessage("null")
}

// validID accepts a string or a number; null only when allowNull (an
// error response to a request whose id could not be read).
func validID(id json.RawMessage, allowNull bool) bool {
	if len(id) == 0 {
		return false
	}
	switch id[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	case 'n':
		return allowNull && string(id) == "null"
	}
	return false
}

// IsObject reports whether raw is a JSON object (by its first byte; raw
// is assumed valid JSON).
func IsObject(raw []byte) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// ErrorObject decodes an error response's error member.
func (m *Message) ErrorObject() (*Error, error) {
	var e Error
	if err := json.Unmarshal(m.Error, &e); err != nil {
		return nil, fmt.Errorf("decode JSON-RPC error: %w", err)
	}
	return &e, nil
}

// NewRequest encodes a request; params (nil: none) must be valid JSON.
func NewRequest(id json.RawMessage, method string, params json.RawMessage) ([]byte, error) {
	b := make([]byte, 0, envelopeSize+len(id)+len(method)+len(params))
	b = append(b, `{"id":`...)
	b, err := appendRaw(b, id)
	if err == nil {
		b = append(b, `,"jsonrpc":"2.0","method":`...)
		b = appendString(b, method)
		b, err = appendMember(b, "params", params)
	}
	return b, err
}

// NewNotification encodes a notification.
func NewNotification(method string, params json.RawMessage) ([]byte, error) {
	b := make([]byte, 0, envelopeSize+len(method)+len(params))
	b = append(b, `{"jsonrpc":"2.0","method":`...)
	b = appendString(b, method)
	return appendMember(b, "params", params)
}

// NewResult encodes a result response.
func NewResult(id json.RawMessage, result json.RawMessage) ([]byte, error) {
	b := make([]byte, 0, envelopeSize+len(id)+len(result))
	b = append(b, `{"id":`...)
	b, err := appendRaw(b, id)
	if err == nil {
		b = append(b, `,"jsonrpc":"2.0"`...)
		b, err = appendMember(b, "result", result)
	}
	return b, err
}

// NewError encodes an error response (id nil: null). Data that cannot be
// encoded is left out.
func NewError(id json.RawMessage, e *Error) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": e})
	if err != nil {
		b, _ = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": &Error{Code: e.Code, Message: e.Message}})
	}
	return b
}

// NewToolCallParams encodes the params of a tools/call, as json.Marshal
// encodes a struct of the two members in this order.
func NewToolCallParams(name string, arguments json.RawMessage) ([]byte, error) {
	b := make([]byte, 0, envelopeSize+len(name)+len(arguments))
	b = append(b, `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"arguments":`...)
	b, err := appendRaw(b, arguments)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// The envelope encoders write what json.Marshal writes for a
// map[string]any of the same members (keys in sorted order, every raw
// member validated, compacted and HTML-escaped, a nil id as null, a nil
// params or result left out), without the map, its sorting and reflection
// on every message.

// envelopeSize is room for an envelope's keys and punctuation.
const envelopeSize = 64

// appendMember appends `,"key":raw}` (only `}` when raw is nil).
func appendMember(b []byte, key string, raw json.RawMessage) ([]byte, error) {
	if raw != nil {
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		var err error
		if b, err = appendRaw(b, raw); err != nil {
			return nil, fmt.Errorf("encode JSON-RPC %s: %w", key, err)
		}
	}
	return append(b, '}'), nil
}

// appendRaw appends raw as json.Marshal encodes a json.RawMessage: null
// when nil, else validated, compacted and HTML-escaped.
func appendRaw(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	start := len(b)
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return nil, fmt.Errorf("encode JSON-RPC message: %w", err)
	}
	b = buf.Bytes()
	if bytes.ContainsAny(b[start:], "<>&\u2028\u2029") {
		var esc bytes.Buffer
		json.HTMLEscape(&esc, b[start:])
		b = append(b[:start], esc.Bytes()...)
	}
	return b, nil
}

// appendString appends s as json.Marshal encodes a string; a method name
// of plain characters is quoted as it is.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
