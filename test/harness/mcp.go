package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// MCPTimeout bounds one /mcp request made by the harness.
const MCPTimeout = 10 * time.Second

// refusalMetaKey is the _meta key under which the gateway puts a refused
// call's machine-readable reason.
const refusalMetaKey = "io.portcullis/refusal"

var rpcID atomic.Int64

// RPCError is a JSON-RPC error object.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// MCPResponse is one JSON-RPC answer from an MCP endpoint.
type MCPResponse struct {
	HTTPStatus int
	// Header holds the HTTP response headers.
	Header http.Header
	// Result is the JSON-RPC result, nil when the answer is an error.
	Result json.RawMessage
	// Error is the JSON-RPC error, nil when the answer is a result.
	Error *RPCError
	Start time.Time
	// Elapsed is the time from sending the request to reading the whole
	// answer.
	Elapsed time.Duration
}

// MCPCall posts one JSON-RPC request for method with params to endpoint
// (a data plane's http://…/mcp) as an agent would: Content-Type
// application/json, Accept application/json and text/event-stream, and
// Authorization: Bearer apiKey. It uses a fresh keep-alive-free client, so
// it is safe on any goroutine and leaves no connection behind. An error
// means no JSON-RPC answer came back (transport failure, or a body that is
// not a JSON-RPC response); a JSON-RPC error is an answer.
func MCPCall(ctx context.Context, endpoint, apiKey, method string, params any) (MCPResponse, error) {
	return MCPCallWith(ctx, endpoint, CallOptions{Bearer: apiKey}, method, params)
}

// CallOptions are how MCPCallWith presents the caller.
type CallOptions struct {
	// Bearer is sent as Authorization: Bearer (none when empty).
	Bearer string
	// Header holds extra request headers (e.g. Portcullis-User-Token).
	Header map[string]string
	// TLS is the client TLS configuration for https endpoints (client
	// certificate, trusted roots); nil for plain HTTP.
	TLS *tls.Config
}

// MCPCallWith is MCPCall with the caller's credentials and transport given
// by opts.
func MCPCallWith(ctx context.Context, endpoint string, opts CallOptions, method string, params any) (MCPResponse, error) {
	resp := MCPResponse{Start: time.Now()}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": rpcID.Add(1), "method": method, "params": params})
	if err != nil {
		return resp, err
	}
	ctx, cancel := context.WithTimeout(ctx, MCPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return resp, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if opts.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+opts.Bearer)
	}
	for k, v := range opts.Header {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: opts.TLS}
	defer tr.CloseIdleConnections()
	hr, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		resp.Elapsed = time.Since(resp.Start)
		return resp, fmt.Errorf("POST %s %s: %w", endpoint, method, err)
	}
	defer hr.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hr.Body, 4<<20))
	resp.Elapsed = time.Since(resp.Start)
	resp.HTTPStatus, resp.Header = hr.StatusCode, hr.Header
	if err != nil {
		return resp, fmt.Errorf("POST %s %s: status %d, read body: %w", endpoint, method, hr.StatusCode, err)
	}
	if ct := hr.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return resp, fmt.Errorf("POST %s %s: status %d, Content-Type %q, body %q", endpoint, method, hr.StatusCode, ct, raw)
	}
	var env struct {
		JSONRPC string          `json:"jsonrpc"`
		Result  json.RawMessage `json:"result"`
		Error   *RPCError       `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.JSONRPC != "2.0" || (env.Result == nil) == (env.Error == nil) {
		return resp, fmt.Errorf("POST %s %s: status %d, not a JSON-RPC response: %q", endpoint, method, hr.StatusCode, raw)
	}
	resp.Result, resp.Error = env.Result, env.Error
	return resp, nil
}

// ToolCall is the outcome of one tools/call through a data plane.
type ToolCall struct {
	Tool string
	MCPResponse
	// IsError is the result's isError: the gateway refused the call (then
	// Reason is set) or the tool failed.
	IsError bool
	// Reason is the machine-readable refusal reason: the result's
	// _meta["io.portcullis/refusal"].reason, or a JSON-RPC error's
	// data.reason.
	Reason string
	// Text joins the result's text content (or is the error message).
	Text string
}

// Err is nil when the tool ran and reported success, and otherwise says
// what happened instead.
func (c ToolCall) Err() error {
	switch {
	case c.Error != nil:
		return fmt.Errorf("%s: HTTP %d, JSON-RPC error %d %q (reason %q)", c.Tool, c.HTTPStatus, c.Error.Code, c.Error.Message, c.Reason)
	case c.HTTPStatus != http.StatusOK:
		return fmt.Errorf("%s: HTTP %d", c.Tool, c.HTTPStatus)
	case c.IsError:
		return fmt.Errorf("%s: isError, reason %q: %s", c.Tool, c.Reason, c.Text)
	}
	return nil
}

// CallTool calls tool (an action name, "<prefix>__<tool>") with args
// through the data plane's /mcp as the agent holding apiKey, without a
// session (the gateway makes them optional), and decodes the outcome. An
// error means no JSON-RPC answer came back.
func (dp *Dataplane) CallTool(ctx context.Context, apiKey, tool string, args any) (ToolCall, error) {
	return CallToolAt(ctx, dp.Name, dp.URL+"/mcp", CallOptions{Bearer: apiKey}, tool, args)
}

// CallToolAt calls tool with args at an /mcp endpoint as opts present the
// caller, and decodes the outcome like CallTool; name labels errors.
func CallToolAt(ctx context.Context, name, endpoint string, opts CallOptions, tool string, args any) (ToolCall, error) {
	resp, err := MCPCallWith(ctx, endpoint, opts, "tools/call", map[string]any{"name": tool, "arguments": args})
	c := ToolCall{Tool: tool, MCPResponse: resp}
	if err != nil {
		return c, fmt.Errorf("dataplane %s: %w", name, err)
	}
	if resp.Error != nil {
		c.Text = resp.Error.Message
		var data struct {
			Reason string `json:"reason"`
		}
		if len(resp.Error.Data) > 0 && json.Unmarshal(resp.Error.Data, &data) == nil {
			c.Reason = data.Reason
		}
		return c, nil
	}
	var res struct {
		IsError bool `json:"isError"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		Meta map[string]struct {
			Reason string `json:"reason"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		return c, fmt.Errorf("dataplane %s: tools/call result %q: %w", name, resp.Result, err)
	}
	c.IsError = res.IsError
	c.Reason = res.Meta[refusalMetaKey].Reason
	var texts []string
	for _, ct := range res.Content {
		if ct.Type == "text" {
			texts = append(texts, ct.Text)
		}
	}
	c.Text = strings.Join(texts, "\n")
	return c, nil
}
