package mcp

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
)

// WithHopID names this data plane for loop detection: a request whose
// Portcullis-Hop chain already names it is refused (see package hop).
func WithHopID(id string) Option { return func(h *Handler) { h.hopID = id } }

// singleHeaders are the headers the endpoint decides on. Each may appear
// at most once: with two Authorization headers carrying different agents'
// keys, or two Mcp-Name values, which one "wins" would depend on the code
// reading it, and a proxy in front may have judged the other.
var singleHeaders = []string{
	"Authorization", "Portcullis-User-Token", "Mcp-Session-Id", "Mcp-Protocol-Version",
	"Mcp-Method", "Mcp-Name", "Last-Event-Id", "Content-Type", "Origin", "Host",
}

// edgeError is a request refused before its body is read.
type edgeError struct {
	status int
	err    *rpcError
}

// checkEdge applies the rules every request to the endpoint must meet
// before anything else looks at it: no duplicated decision header, a
// protocol version this endpoint speaks (the spec: an unsupported
// MCP-Protocol-Version is a 400), no forwarding loop, and, for a POST, a
// JSON body.
func (h *Handler) checkEdge(r *http.Request) *edgeError {
	for _, name := range singleHeaders {
		if len(r.Header.Values(name)) > 1 {
			return &edgeError{http.StatusBadRequest, &rpcError{Code: codeInvalidRequest,
				Message: "header " + name + " appears more than once; send it once"}}
		}
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); !supportedHeader(v) {
		return &edgeError{http.StatusBadRequest, unsupportedVersion(v)}
	}
	if h.hopID != "" {
		chain, err := hop.Parse(r.Header)
		if err == nil {
			err = hop.Check(chain, h.hopID)
		}
		if errors.Is(err, hop.ErrLoop) {
			return &edgeError{http.StatusLoopDetected, &rpcError{Code: codeInvalidRequest, Message: err.Error()}}
		}
		if err != nil {
			return &edgeError{http.StatusBadRequest, &rpcError{Code: codeInvalidRequest, Message: err.Error()}}
		}
	}
	if r.Method == http.MethodPost {
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		charset := strings.ToLower(params["charset"])
		if err != nil || mt != "application/json" || (charset != "" && charset != "utf-8") {
			return &edgeError{http.StatusUnsupportedMediaType, &rpcError{Code: codeInvalidRequest,
				Message: "send JSON-RPC messages as Content-Type: application/json (UTF-8)"}}
		}
	}
	return nil
}
