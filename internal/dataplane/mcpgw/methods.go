package mcpgw

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
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

// capabilities are what the endpoint offers: tools, plus resources and
// prompts when the backend federates them.
func (h *Handler) capabilities() map[string]any {
	caps := map[string]any{"tools": map[string]any{}}
	if _, ok := h.backend.(ContentBackend); ok {
		caps["resources"] = map[string]any{}
		caps["prompts"] = map[string]any{}
	}
	return caps
}

// initialize negotiates the version and mints a session bound to agent.
func (h *Handler) initialize(w http.ResponseWriter, req *request, id json.RawMessage, agent string) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if !decodeParams(w, req, id, &p) {
		return
	}
	version := protocolVersions[0]
	if slices.Contains(protocolVersions, p.ProtocolVersion) {
		version = p.ProtocolVersion
	}
	session, err := h.sessions.create(agent)
	if err != nil {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, id, &rpcError{Code: codeUnavailable, Message: err.Error()})
		return
	}
	w.Header().Set("Mcp-Session-Id", session)
	writeResult(w, id, initializeResult{
		ProtocolVersion: version,
		Capabilities:    h.capabilities(),
		ServerInfo:      serverInfo{Name: "portcullis", Version: h.version},
	})
}

// healthReporter is optionally implemented by a Backend: an upstream that
// is not healthy (its circuit breaker is open) has its tools left out of
// tools/list. It must be safe for concurrent use.
type healthReporter interface {
	UpstreamHealthy(name string) (ok bool, why string)
}

// toolsList lists the tools the data plane would serve right now, by the
// pipeline gate's rules: none without fresh-enough configuration (starting,
// stale), only operator-classified read-only tools when degraded or frozen,
// never a quarantined tool (its upstream changed it after approval).
// When the configuration is a pipeline.ToolLister, only the tools some call
// by this agent (on behalf of the user of a verified user token) could be
// permitted to make are listed; a user token it cannot verify is refused
// as tools/call would refuse it. Tools of an upstream the backend reports
// unhealthy are left out.
func (h *Handler) toolsList(w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, agent *configv1.Agent) {
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
	c.Protocol, c.Method, c.Agent = "mcp", "tools/list", agent
	lister, filter := c.Config.(pipeline.ToolLister)
	if filter && c.UserToken != "" {
		user, refusal := stages.ResolveUser(r.Context(), c.Config, c.UserToken, c.Start)
		if refusal != nil {
			h.unauthorized(w, r, id, true, refusal.Message)
			return
		}
		c.User = user
	}
	tools := []toolJSON{}
	readOnlyOnly := c.Mode == configsyncv1.Mode_MODE_DEGRADED
	if frozen, _ := c.Config.Frozen(); frozen {
		readOnlyOnly = true
	}
	if c.Mode == configsyncv1.Mode_MODE_NORMAL || c.Mode == configsyncv1.Mode_MODE_DEGRADED {
		var candidates []pipeline.Tool
		if filter {
			candidates = lister.Listable(r.Context(), c)
		} else {
			candidates = c.Config.Tools()
		}
		candidates = h.unquarantined(r.Context(), c.Quarantine, candidates)
		health, _ := h.backend.(healthReporter)
		for _, t := range candidates {
			if readOnlyOnly && !t.ReadOnly() {
				continue
			}
			if health != nil {
				if ok, _ := health.UpstreamHealthy(t.Upstream); !ok {
					continue // the backend warns once per upstream state change
				}
			}
			tj, err := presentTool(t)
			if err != nil {
				h.logger.Warn("pinned tool definition is not valid JSON; not listed", slog.String("action", t.Action), slog.Any("error", err))
				continue
			}
			tools = append(tools, tj)
		}
	}
	writeResult(w, id, map[string]any{"tools": tools})
}

// toolsCall runs a tools/call through the backend. What the upstream
// sends before its result (progress, logging, server→client requests)
// reaches the caller on an event stream when it accepts one; the result
// is written only after the pipeline returned, so after its audit record.
func (h *Handler) toolsCall(w http.ResponseWriter, r *http.Request, req *request, id json.RawMessage, c *pipeline.Call, token, agent, session string, modern bool) {
	var p struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		Meta      struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	if !decodeParams(w, req, id, &p) {
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
	c.Protocol, c.Method, c.Action, c.Arguments, c.Credential = "mcp", "tools/call", p.Name, args, token
	stream := newResponseStream(w, r)
	stream.now = h.now
	ctx := r.Context()
	if agent != "" {
		if modern {
			session = "" // a modern caller cannot answer server requests
		}
		c.Relay = h.relay(stream, validToken(p.Meta.ProgressToken), agent, session)
		if session != "" && stream.canStream {
			// Resumable: the call outlives a broken connection (a
			// disconnection is not a cancellation; notifications/cancelled
			// is), and its events wait for the caller to resume.
			stream.newLog = func() *eventLog { return h.streams.create(session, agent) }
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(context.WithoutCancel(r.Context()))
			defer cancel()
			defer h.calls.add(session, id, cancel)()
		}
	}

	res, err := h.backend.Handle(ctx, c)
	if err != nil {
		h.writeRefusal(stream, r, id, err)
		return
	}
	if res == nil || !isObject(res.Body) || !json.Valid(res.Body) {
		h.logger.ErrorContext(r.Context(), "backend returned no valid tools/call result", slog.String("action", c.Action))
		h.writeRefusal(stream, r, id, errors.New("invalid backend result"))
		return
	}
	body := res.Body
	if !modern && inputRequired(body) {
		// A 2026-07-28 upstream asks for input by a multi-round-trip
		// result a legacy caller cannot continue.
		h.writeRefusal(stream, r, id, pipeline.Refuse(pipeline.ReasonUpstreamUnavailable,
			"the tool asked for more input (a 2026-07-28 multi-round-trip result), which a legacy-era client cannot give; call it from a 2026-07-28 client"))
		return
	}
	out, err := mcpwire.NewResult(id, body)
	if err != nil {
		h.writeRefusal(stream, r, id, err)
		return
	}
	stream.finish(http.StatusOK, out)
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
	ref := pipeline.AsRefusal(err)
	var typed *pipeline.Refusal
	if !errors.As(err, &typed) {
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the caller left
		}
		h.logger.Log(r.Context(), level, "tools/call failed", slog.Any("error", err))
	}
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
			"_meta":   map[string]any{refusalMetaKey: reasonData(ref.Reason)},
		}
	}
	b, _ := json.Marshal(response{JSONRPC: "2.0", ID: id, Result: body})
	stream.finish(http.StatusOK, b)
}

func reasonData(r pipeline.Reason) map[string]string { return map[string]string{"reason": string(r)} }

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
