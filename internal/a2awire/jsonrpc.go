package a2awire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// JSON-RPC and A2A error codes (A2A 1.0 §5.4 and §9.5; the A2A codes are
// the same in 0.3).
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603
	// CodeServerError is JSON-RPC's generic server error: the gateway
	// cannot serve now.
	CodeServerError = -32000

	CodeTaskNotFound                 = -32001
	CodeTaskNotCancelable            = -32002
	CodePushNotificationNotSupported = -32003
	CodeUnsupportedOperation         = -32004
	CodeContentTypeNotSupported      = -32005
	CodeInvalidAgentResponse         = -32006
	CodeExtendedCardNotConfigured    = -32007
	CodeExtensionSupportRequired     = -32008
	CodeVersionNotSupported          = -32009

	// CodeUnauthenticated and CodeUnauthorized are the custom codes the
	// official SDKs map to their authentication and authorization errors
	// (the spec leaves them to the binding: "JSON-RPC custom error").
	CodeUnauthenticated = -31401
	CodeUnauthorized    = -31403
)

// Request is one JSON-RPC request.
type Request struct {
	// ID is the request's id exactly as sent (a string or a number).
	ID     json.RawMessage
	Method string
	// Params is the params object (nil when absent).
	Params json.RawMessage
}

// Error is a JSON-RPC error object. Data is A2A 1.0's list of typed
// details (0.3 allowed any value).
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// ErrNotRequest and the like say why ParseRequest refused a message; the
// *Error it returns carries the code to answer with.
var errNoID = errors.New("a request needs an id (A2A has no notifications)")

// ParseRequest decodes one JSON-RPC request. On failure it returns the
// error to answer with; id is the request's id when it could be read
// (null otherwise), to answer to.
func ParseRequest(body []byte) (req *Request, id json.RawMessage, rpcErr *Error) {
	var env struct {
		JSONRPC *string         `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  *string         `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	id = json.RawMessage("null")
	if err := json.Unmarshal(body, &env); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || !json.Valid(body) {
			return nil, id, &Error{Code: CodeParseError, Message: "the request is not valid JSON"}
		}
		return nil, id, &Error{Code: CodeInvalidRequest, Message: "the request is not a JSON-RPC request object"}
	}
	if validID(env.ID) {
		id = compact(env.ID)
	}
	switch {
	case env.JSONRPC == nil || *env.JSONRPC != "2.0":
		return nil, id, &Error{Code: CodeInvalidRequest, Message: `the request must say "jsonrpc": "2.0"`}
	case env.ID == nil:
		return nil, id, &Error{Code: CodeInvalidRequest, Message: errNoID.Error()}
	case !validID(env.ID):
		return nil, id, &Error{Code: CodeInvalidRequest, Message: "the request id must be a string or a number"}
	case env.Method == nil || *env.Method == "":
		return nil, id, &Error{Code: CodeInvalidRequest, Message: "the request names no method"}
	}
	params := env.Params
	if len(params) > 0 && string(params) == "null" {
		params = nil
	}
	if params != nil && !IsObject(params) {
		return nil, id, &Error{Code: CodeInvalidParams, Message: "params must be an object"}
	}
	return &Request{ID: id, Method: *env.Method, Params: params}, id, nil
}

// validID reports whether raw is a string or a number.
func validID(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return false
	}
	switch t[0] {
	case '"':
		var s string
		return json.Unmarshal(t, &s) == nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		return json.Unmarshal(t, &n) == nil
	}
	return false
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// IsObject reports whether raw is a JSON object (by its first byte).
func IsObject(raw json.RawMessage) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// Response is one JSON-RPC response: exactly one of Result and Error is
// set.
type Response struct {
	ID     json.RawMessage
	Result json.RawMessage
	Error  *Error
}

// ParseResponse decodes one JSON-RPC response an agent sent.
func ParseResponse(body []byte) (*Response, error) {
	var env struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("not a JSON-RPC response: %w", err)
	}
	if env.JSONRPC != "2.0" {
		return nil, errors.New(`not a JSON-RPC 2.0 response (no "jsonrpc": "2.0")`)
	}
	hasResult := len(env.Result) > 0
	hasError := len(env.Error) > 0 && string(env.Error) != "null"
	switch {
	case hasError && !hasResult:
		var e Error
		if err := json.Unmarshal(env.Error, &e); err != nil {
			return nil, errors.New("the response's error is not a JSON-RPC error object")
		}
		return &Response{ID: env.ID, Error: &e}, nil
	case hasResult && !hasError:
		return &Response{ID: env.ID, Result: env.Result}, nil
	}
	return nil, errors.New("a JSON-RPC response needs exactly one of result and error")
}

// NewRequest encodes a request with id.
func NewRequest(id json.RawMessage, method string, params json.RawMessage) ([]byte, error) {
	return marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", id, method, params})
}

// NewResult encodes a response with result.
func NewResult(id, result json.RawMessage) ([]byte, error) {
	return marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
	}{"2.0", id, result})
}

// NewError encodes an error response.
func NewError(id json.RawMessage, e *Error) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	b, err := marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *Error          `json:"error"`
	}{"2.0", id, e})
	if err != nil {
		// Only values built by the gateway get here.
		return []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"the gateway failed to encode its answer"}}`)
	}
	return b
}

// ErrorInfo is the google.rpc.ErrorInfo detail A2A 1.0 errors carry in
// data: the machine-readable reason of a refusal.
func ErrorInfo(reason, domain string, metadata map[string]string) json.RawMessage {
	b, _ := marshal([]any{map[string]any{
		"@type":    "type.googleapis.com/google.rpc.ErrorInfo",
		"reason":   reason,
		"domain":   domain,
		"metadata": metadata,
	}})
	return b
}

// marshal encodes v compactly without escaping <, > and &, so that text
// keeps its bytes.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
