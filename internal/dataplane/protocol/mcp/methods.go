package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// refusalMetaKey is the _meta key of a refused call's machine-readable
// reason.
const refusalMetaKey = "io.portcullis/refusal"

type initializeResult struct {
	ProtocolVersion string         `json:"protocolVersion"`
	Capabilities    map[string]any `json:"capabilities"`
	ServerInfo      serverInfo     `json:"serverInfo"`
}

type serverInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// initialize negotiates the version and, once the pipeline admitted the
// session request, mints a session bound to the agent.
func (h *Handler) initialize(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if !decodeParams(w, req, id, &p) {
		return
	}
	res, err := h.handshake(ctx, c)
	if err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	version := negotiate(p.ProtocolVersion)
	session, err := h.sessions.create(c.Agent.GetMeta().GetName(), version)
	if err != nil {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, id, &rpcError{Code: codeUnavailable, Message: err.Error()})
		return
	}
	w.Header().Set("Mcp-Session-Id", session)
	writeResult(w, id, initializeResult{
		ProtocolVersion: version,
		Capabilities:    capabilities(version, upstreamOffers(res)),
		ServerInfo:      serverInfo{Name: "portcullis", Version: h.version},
	})
}

// handshake runs initialize or server/discover through the pipeline as a
// session request about the upstreams the caller may use (their content
// targets, by the content rule): Authorize lists them, the forwarder asks
// them what they offer.
func (h *Handler) handshake(ctx context.Context, c *pipeline.Call) (*pipeline.Result, error) {
	c.Op, c.Target = pipeline.OpSession, pipeline.Target{Kind: pipeline.KindResource}
	return h.backend.Run(ctx, c)
}

// upstreamOffers reads the forwarder's answer to a handshake (nothing
// offered when it has none).
func upstreamOffers(res *pipeline.Result) offers {
	var o offers
	if res != nil && len(res.Body) > 0 {
		_ = json.Unmarshal(res.Body, &o)
	}
	return o
}

// discover answers server/discover (2026-07-28) once the pipeline
// admitted it.
func (h *Handler) discover(ctx context.Context, w http.ResponseWriter, r *http.Request, id json.RawMessage, c *pipeline.Call) {
	res, err := h.handshake(ctx, c)
	if err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	writeResult(w, id, map[string]any{
		"supportedVersions": supportedVersions(),
		"capabilities":      capabilities(modernVersion, upstreamOffers(res)),
		"_meta":             map[string]any{mcpwire.MetaServerInfo: serverInfo{Name: "portcullis", Version: h.version}},
	})
}

// session runs a session request the gateway answers itself (ping,
// server/discover) through the pipeline, so that it is authenticated,
// gated and audited like everything else, and answers result when the
// pipeline admits it.
func (h *Handler) session(ctx context.Context, w http.ResponseWriter, r *http.Request, id json.RawMessage, c *pipeline.Call, result any) {
	c.Op = pipeline.OpSession
	if _, err := h.backend.Run(ctx, c); err != nil {
		h.writeFailure(w, r, id, err)
		return
	}
	writeResult(w, id, result)
}

// toolsList lists, through the pipeline, the tools the caller may see:
// Gate's rules (mode, brake, quarantine) and the policies' partial
// evaluation decide them (stages.Authorize), and the forwarder leaves out
// the tools of upstreams whose breaker is open.
//
// A 2025-03-26 caller gets the tools in its shape: without outputSchema
// and title, which that version does not have.
func (h *Handler) toolsList(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, version string) {
	var p struct {
		Cursor string `json:"cursor"`
	}
	if !decodeParams(w, req, id, &p) {
		return
	}
	if p.Cursor != "" {
		// Every tool fits one page; no cursor was ever handed out.
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: unknown cursor"})
		return
	}
	c.Op, c.Target = pipeline.OpList, pipeline.Target{Kind: pipeline.KindTool}
	if _, err := h.backend.Run(ctx, c); err != nil {
		if ref := pipeline.AsRefusal(err); ref.Reason == pipeline.ReasonStale || ref.Reason == pipeline.ReasonNoConfig {
			// Nothing is served: an empty list, as a call would be refused.
			writeResult(w, id, map[string]any{"tools": []toolJSON{}})
			return
		}
		h.writeFailure(w, r, id, err)
		return
	}
	tools := []toolJSON{}
	for _, t := range c.Visible {
		tj, err := presentTool(t.Tool)
		if err != nil {
			h.logger.Warn("pinned tool definition is not valid JSON; not listed", slog.String("action", t.Name), slog.Any("error", err))
			continue
		}
		if version == version20250326 {
			tj.OutputSchema, tj.Title = nil, nil
		}
		tools = append(tools, tj)
	}
	writeResult(w, id, map[string]any{"tools": tools})
}

// toolsCall runs a tools/call through the backend. What the upstream
// sends before its result (progress, logging, server→client requests)
// reaches the caller on an event stream when it accepts one; the result
// is written only after the pipeline returned, so after its audit record.
// version is the protocol version the caller speaks: the result is given
// in its shape.
func (h *Handler) toolsCall(w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, cl caller) {
	session, version := cl.session, cl.version
	modern := version == modernVersion
	var p toolsCallParams
	if len(req.Params) > 0 && string(req.Params) != "null" && p.decode(req.Params) != nil {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params for " + req.Method})
		return
	}
	if p.Name == "" {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: name is required"})
		return
	}
	args := p.Arguments
	switch {
	case len(args) == 0 || string(args) == "null":
		args = json.RawMessage(`{}`)
	case !isObject(args):
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params: arguments must be an object"})
		return
	}
	c.Op, c.Target, c.Arguments = pipeline.OpCall, pipeline.Target{Kind: pipeline.KindTool, Name: p.Name}, args
	stream := newResponseStream(w, r)
	stream.now = h.now
	ctx := r.Context()
	if c.Agent != nil {
		agent := c.Agent.GetMeta().GetName()
		logLevel := cl.logLevel
		if modern {
			session = "" // a modern caller cannot answer server requests
			logLevel = mcpwire.LogLevelRank(p.Meta.LogLevel)
		}
		c.Relay = h.relay(stream, validToken(p.Meta.ProgressToken), logLevel, agent, session, version)
		switch {
		case session != "" && stream.canStream:
			// Resumable: the call outlives a broken connection (a
			// disconnection is not a cancellation; notifications/cancelled
			// is), and its events wait for the caller to resume.
			stream.newLog = func() *eventLog { return h.streams.create(session, agent) }
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(context.WithoutCancel(r.Context()))
			defer cancel()
			defer h.calls.add(session, id, cancel)()
		case session != "":
			// Answered in one JSON body: cancelled by notifications/cancelled
			// or by the connection.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			defer h.calls.add(session, id, cancel)()
		}
	}

	res, err := h.backend.Run(ctx, c)
	if err != nil {
		h.writeRefusal(stream, r, id, err)
		return
	}
	if res == nil || !isObject(res.Body) || !json.Valid(res.Body) {
		h.logger.ErrorContext(r.Context(), "backend returned no valid tools/call result", slog.String("action", c.Target.Name))
		h.writeRefusal(stream, r, id, errors.New("invalid backend result"))
		return
	}
	body := res.Body
	if version == version20250326 {
		body = toolResult20250326(body)
	}
	if !modern && inputRequired(body) {
		// A 2026-07-28 upstream asks for input by a multi-round-trip
		// result a legacy caller cannot continue.
		h.writeRefusal(stream, r, id, pipeline.Refuse(pipeline.ReasonUpstreamUnavailable,
			"the tool asked for more input (a 2026-07-28 multi-round-trip result), which a legacy-era client cannot give; call it from a 2026-07-28 client"))
		return
	}
	if d := deprecated(c.Target.Tool, c.Start); d != nil {
		// The caller's version is deprecated: the notice rides in the
		// result, and in headers while the answer is not a stream yet.
		if body, err = withDeprecation(body, c.Target.Tool, d); err != nil {
			h.writeRefusal(stream, r, id, err)
			return
		}
		stream.header(func(h http.Header) { setDeprecationHeaders(h, d) })
	}
	out, err := mcpwire.NewResult(id, body)
	if err != nil {
		h.writeRefusal(stream, r, id, err)
		return
	}
	stream.finish(http.StatusOK, out)
}

// toolsCallParams are what a tools/call's params say.
type toolsCallParams struct {
	Name      string
	Arguments json.RawMessage
	Meta      struct {
		ProgressToken json.RawMessage
		LogLevel      string
	}
}

// decode reads params exactly as json.Unmarshal reads them into
//
//	struct {
//		Name      string          `json:"name"`
//		Arguments json.RawMessage `json:"arguments"`
//		Meta      struct {
//			ProgressToken json.RawMessage `json:"progressToken"`
//			LogLevel      string          `json:"io.modelcontextprotocol/logLevel"`
//		} `json:"_meta"`
//	}
//
// — members matched by name case-insensitively, the last of several
// winning, null leaving a string as it is, any other mismatched type an
// error — without the decoder's reflection and copies: the raw values
// alias params.
func (p *toolsCallParams) decode(params []byte) error {
	return mcpwire.EachMember(params, func(key string, v []byte) error {
		switch {
		case fieldName(key, "name"):
			return mcpwire.Unquote(v, &p.Name)
		case fieldName(key, "arguments"):
			p.Arguments = v
		case fieldName(key, "_meta"):
			if string(v) == "null" {
				return nil
			}
			return mcpwire.EachMember(v, func(key string, v []byte) error {
				switch {
				case fieldName(key, "progressToken"):
					p.Meta.ProgressToken = v
				case fieldName(key, "io.modelcontextprotocol/logLevel"):
					return mcpwire.Unquote(v, &p.Meta.LogLevel)
				}
				return nil
			})
		}
		return nil
	})
}

// fieldName reports whether encoding/json decodes a member named key
// into the struct field named name (of fields whose names do not fold
// alike): the same name, or the same under Unicode case folding.
func fieldName(key, name string) bool {
	return key == name || strings.EqualFold(key, name)
}

// validToken keeps a progress token that is a string or a number.
func validToken(t json.RawMessage) json.RawMessage {
	if len(t) == 0 {
		return nil
	}
	switch t[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return t
	}
	return nil
}

// inputRequired reports a 2026-07-28 result asking the client for input.
func inputRequired(result []byte) bool {
	v, err := mcpwire.Find(result, "resultType")
	return err == nil && string(v) == `"input_required"`
}

// writeRefusal answers a refused tools/call in MCP's shape, as the
// stream's last event when the answer is already streaming.
func (h *Handler) writeRefusal(stream *responseStream, r *http.Request, id json.RawMessage, err error) {
	ref := h.logged(r, err)
	if ref.Reason == pipeline.ReasonUnauthenticated && !stream.streamed() {
		h.unauthorized(stream.w, r, id, true, ref.Message)
		return
	}
	var body any
	switch ref.Reason {
	case pipeline.ReasonUnauthenticated, pipeline.ReasonUnknownTool:
		code := codeInvalidParams
		if ref.Reason == pipeline.ReasonUnauthenticated {
			code = codeUnauthenticated
		}
		stream.finish(http.StatusOK, mcpwire.NewError(id, &mcpwire.Error{Code: code, Message: ref.Message, Data: reasonData(ref.Reason)}))
		return
	default:
		// Input validation failures are tool results by the spec; so are
		// policy, mode and upstream refusals, so that the model sees them.
		body = map[string]any{
			"content": []map[string]string{{"type": "text", "text": ref.Message}},
			"isError": true,
			"_meta":   map[string]any{refusalMetaKey: refusalMeta(ref)},
		}
	}
	b, _ := json.Marshal(response{JSONRPC: "2.0", ID: id, Result: body})
	stream.finish(http.StatusOK, b)
}

// logged returns err as a refusal, logging an error that is not one (an
// internal failure the caller only hears about in general terms).
func (h *Handler) logged(r *http.Request, err error) *pipeline.Refusal {
	var typed *pipeline.Refusal
	if !errors.As(err, &typed) {
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the caller left
		}
		h.logger.Log(r.Context(), level, "request failed", slog.Any("error", err))
	}
	return pipeline.AsRefusal(err)
}

func reasonData(r pipeline.Reason) map[string]string { return map[string]string{"reason": string(r)} }

// refusalMeta is a refused call's _meta entry: its reason, and when it
// says so, how many seconds to wait before the call could be admitted.
func refusalMeta(r *pipeline.Refusal) map[string]any {
	m := map[string]any{"reason": string(r.Reason)}
	if r.RetryAfter > 0 {
		m["retryAfterSeconds"] = int64((r.RetryAfter + time.Second - 1) / time.Second)
	}
	if q := r.Quota; q != nil {
		m["limit"] = q.Policy
	}
	return m
}

// decodeParams decodes req.Params (absent or null means no fields) and
// answers -32602 when they do not fit v.
func decodeParams(w http.ResponseWriter, req *request, id json.RawMessage, v any) bool {
	if len(req.Params) == 0 || string(req.Params) == "null" {
		return true
	}
	if err := json.Unmarshal(req.Params, v); err != nil {
		writeError(w, http.StatusOK, id, &rpcError{Code: codeInvalidParams, Message: "invalid params for " + req.Method})
		return false
	}
	return true
}
