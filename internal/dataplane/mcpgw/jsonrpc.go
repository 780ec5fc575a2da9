package mcpgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// JSON-RPC and MCP error codes.
const (
	codeParseError         = -32700
	codeInvalidRequest     = -32600
	codeMethodNotFound     = -32601
	codeInvalidParams      = -32602
	codeUnavailable        = -32000 // server error: the gateway cannot serve now
	codeUnauthenticated    = -32001 // server error: HTTP 401 accompanies it
	codeUnsupportedVersion = -32022 // MCP: unsupported protocol version
)

// request is one JSON-RPC message as a client sent it. ID stays raw so it
// is echoed byte for byte; it is nil for a notification.
type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

func (r *request) isNotification() bool { return r.ID == nil }

// rpcError is a JSON-RPC error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// response is a JSON-RPC response.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

var nullID = json.RawMessage("null")

// errTooLarge reports a body over MaxBodyBytes.
var errTooLarge = errors.New("request body too large")

// readBody reads at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errTooLarge
	}
	return body, err
}

// parse decodes one JSON-RPC request. On failure it returns the error to
// answer with and the id to answer to (null when unknown).
func parse(body []byte) (*request, json.RawMessage, *rpcError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if !json.Valid(trimmed) {
			return nil, nullID, &rpcError{Code: codeParseError, Message: "parse error: the body is not valid JSON"}
		}
		return nil, nullID, &rpcError{Code: codeInvalidRequest, Message: "batching is not supported: send one JSON-RPC message per request"}
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, nullID, &rpcError{Code: codeInvalidRequest, Message: "invalid request: the body must be a JSON-RPC request object"}
		}
		return nil, nullID, &rpcError{Code: codeParseError, Message: "parse error: the body is not valid JSON"}
	}
	id := req.ID
	if !validID(id) {
		return nil, nullID, &rpcError{Code: codeInvalidRequest, Message: "invalid request: id must be a string or a number"}
	}
	if id == nil {
		id = nullID
	}
	if req.JSONRPC != "2.0" {
		return nil, id, &rpcError{Code: codeInvalidRequest, Message: `invalid request: jsonrpc must be "2.0"`}
	}
	if req.Method == "" {
		return nil, id, &rpcError{Code: codeInvalidRequest, Message: "invalid request: method is required"}
	}
	if len(req.Params) > 0 && !isObject(req.Params) && !bytes.Equal(req.Params, nullID) {
		return nil, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: params must be an object"}
	}
	return &req, id, nil
}

// validID accepts an absent id (a notification), a string or a number.
// Unmarshal leaves an absent id nil and a JSON null id as "null", which
// requests may not use.
func validID(id json.RawMessage) bool {
	if id == nil {
		return true
	}
	switch id[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

func isObject(raw json.RawMessage) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// writeResult answers a request with a result.
func writeResult(w http.ResponseWriter, id json.RawMessage, result any) {
	writeJSON(w, http.StatusOK, response{JSONRPC: "2.0", ID: id, Result: result})
}

// writeError answers with a JSON-RPC error and HTTP status.
func writeError(w http.ResponseWriter, status int, id json.RawMessage, e *rpcError) {
	writeJSON(w, status, response{JSONRPC: "2.0", ID: id, Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only values built here are encoded; this cannot happen with valid
		// upstream JSON, which was checked before.
		status = http.StatusInternalServerError
		body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"the gateway failed to encode its response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
