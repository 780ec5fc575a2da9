package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
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
	body, err := readAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes), r.ContentLength)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errTooLarge
		}
	}
	return body, err
}

// readAll is io.ReadAll into one buffer sized for the declared length
// (when it is declared and at most MaxBodyBytes), which holds a body that
// keeps to it without growing.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	size := int64(512)
	if declared > 0 && declared <= MaxBodyBytes {
		size = declared + 1 // room for the read that reports the end
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF { //nolint:errorlint // as io.ReadAll: Read returns io.EOF itself
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
	}
}

// parse decodes one JSON-RPC message a client sent: a request, a
// notification, or a response to a server→client request. On failure it
// returns the error to answer with and the id to answer to (null when
// unknown).
func parse(body []byte) (*mcpwire.Message, json.RawMessage, *rpcError) {
	m, err := mcpwire.Parse(body)
	if err != nil {
		var we *mcpwire.Error
		if !errors.As(err, &we) {
			we = &mcpwire.Error{Code: codeInvalidRequest, Message: "invalid request"}
		}
		return nil, mcpwire.ParseID(body), &rpcError{Code: we.Code, Message: we.Message}
	}
	id := m.ID
	if id == nil {
		id = nullID
	}
	return m, id, nil
}

// request views a parsed request or notification.
type request struct {
	ID     json.RawMessage
	Method string
	Params json.RawMessage
}

func (r *request) isNotification() bool { return r.ID == nil }

func asRequest(m *mcpwire.Message) *request {
	return &request{ID: m.ID, Method: m.Method, Params: m.Params}
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
