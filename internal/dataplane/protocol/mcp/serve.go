package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	"github.com/portcullis-gw/portcullis/internal/jsontext"
	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// servePost handles a POST: one JSON-RPC message, or a batch of them from
// a 2025-03-26 caller (serveBatch). The order matters: no credential
// (neither a bearer token nor a client certificate) means 401 before the
// body is read; envelope errors come next; then the era's header rules,
// configuration, authentication and the session, then the method.
func (h *Handler) servePost(w http.ResponseWriter, r *http.Request) {
	token := bearer(r)
	if !presented(r, token) {
		h.anonymous(w, r, nil, false)
		return
	}
	body, err := readBody(w, r)
	if errors.Is(err, errTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, nullID, &rpcError{
			Code: codeInvalidRequest, Message: "request body exceeds 1 MiB",
		})
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, nullID, &rpcError{Code: codeParseError, Message: "could not read the request body"})
		return
	}
	if err := jsontext.Check(body, jsontext.DefaultMaxDepth); err != nil {
		// Judged and forwarded must be the same bytes: Go's decoder would
		// turn these into U+FFFD for validation and Cedar while the raw
		// bytes went upstream.
		writeError(w, http.StatusBadRequest, mcpwire.ParseID(body), &rpcError{Code: codeParseError, Message: err.Error()})
		return
	}
	if isBatch(body) {
		h.serveBatch(w, r, token, body)
		return
	}
	h.serveMessage(w, r, token, body)
}

// serveMessage handles one JSON-RPC message, body, checked already for
// size and text; w gets its answer (a batch gives each message its own).
func (h *Handler) serveMessage(w http.ResponseWriter, r *http.Request, token string, body []byte) {
	msg, id, perr := parse(body)
	if perr != nil {
		writeError(w, http.StatusBadRequest, id, perr)
		return
	}
	modern, eerr := h.era(r, msg)
	if eerr != nil {
		writeError(w, http.StatusBadRequest, id, eerr)
		return
	}

	call := h.backend.Begin(r)
	if call.Trace != nil { // the data plane traces: params._meta wins (SEP-414)
		call.Trace.Set(mcpwire.TraceContext(msg.Params))
	}
	// checkEdge refused a malformed or looping chain.
	call.Hops, _ = hop.Parse(r.Header)
	if call.Start.IsZero() {
		call.Start = h.now()
	}
	if !call.SourceIP.IsValid() {
		call.SourceIP = sourceAddr(r)
	}
	call.Protocol, call.Method, call.Credential = "mcp", msg.Method, token
	call.Content = content{method: msg.Method}
	session := ""
	if !modern {
		session = r.Header.Get("Mcp-Session-Id")
	}
	ctx := r.Context()
	if call.Config == nil {
		if msg.Method == "tools/call" && msg.Kind() == mcpwire.KindRequest {
			// Refused by the pipeline (no_config), as a tool result.
			version := modernVersion
			if !modern {
				version = h.legacyVersion(r, "", "")
			}
			h.toolsCall(w, r, asRequest(msg), id, call, caller{version: version})
			return
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, id, &rpcError{
			Code: codeUnavailable, Message: "the data plane has no configuration yet; retry shortly",
			Data: reasonData(pipeline.ReasonNoConfig),
		})
		return
	}
	// The agent is resolved once, here, by the pipeline's own rule; the
	// Authenticate stage then finds it set.
	agent, refusal := stages.ResolveAgent(ctx, call.Config, token, call.PeerCertificates, call.Start)
	if refusal != nil {
		h.anonymous(w, r, id, true)
		return
	}
	call.Agent = agent
	agentName := agent.GetMeta().GetName()

	if k := msg.Kind(); k == mcpwire.KindResult || k == mcpwire.KindError {
		h.clientAnswer(w, msg, agentName, session)
		return
	}
	req := asRequest(msg)
	// One look at the session: whether it is the agent's, the version it
	// negotiated and the log level its caller set.
	cl := caller{session: session}
	if session != "" && req.Method != "initialize" {
		v, level, ok := h.sessions.useInfo(session, agentName)
		if !ok {
			sessionNotFound(w)
			return
		}
		cl.version, cl.logLevel = v, level
	}
	// The version the caller speaks decides the shape of the answers.
	if modern {
		cl.version = modernVersion
	} else {
		cl.version = requestVersion(r, cl.version)
	}
	if req.isNotification() {
		if req.Method == "notifications/cancelled" && session != "" {
			var p struct {
				RequestID json.RawMessage `json:"requestId"`
			}
			if len(req.Params) > 0 && json.Unmarshal(req.Params, &p) == nil && p.RequestID != nil {
				h.calls.cancel(session, p.RequestID)
			}
		}
		// notifications/initialized and the others belong to the session
		// or call they name: nothing to do, and no record of their own.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if session != "" && req.Method != "tools/call" && req.Method != "initialize" {
		// Any request of a session may be cancelled (tools/call sees to
		// its own, which may outlive its connection).
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer h.calls.add(session, id, cancel)()
	}
	switch {
	case req.Method == "tools/call":
		h.toolsCall(w, r, req, id, call, cl)
	case req.Method == "initialize" && !modern:
		h.initialize(ctx, w, r, req, id, call)
	case req.Method == "server/discover" && modern:
		h.discover(ctx, w, r, id, call)
	case req.Method == "ping":
		h.session(ctx, w, r, id, call, struct{}{})
	case req.Method == "tools/list":
		h.toolsList(ctx, w, r, req, id, call, cl.version)
	case contentListKinds[req.Method] != "":
		h.contentListing(ctx, w, r, req, id, call)
	case contentGets[req.Method].key != "":
		h.contentGet(ctx, w, r, req, id, call)
	case req.Method == "completion/complete":
		h.complete(ctx, w, r, req, id, call)
	case req.Method == "logging/setLevel" && !modern:
		h.setLevel(ctx, w, r, req, id, call, cl)
	case (req.Method == "resources/subscribe" || req.Method == "resources/unsubscribe") && !modern:
		h.subscribe(ctx, w, r, req, id, call, cl)
	case req.Method == "subscriptions/listen" && modern:
		h.listen(w, r, req, id, call)
	default:
		writeError(w, http.StatusOK, id, &rpcError{
			Code: codeMethodNotFound, Message: "method not found: " + truncate(req.Method, 64),
		})
	}
}

// era tells a 2026-07-28 request from a legacy one and applies the modern
// era's rules: the version in _meta (and the header, which must agree),
// and mirrored headers that match the body. A request that names the
// modern version only in its header is held to the same rules.
func (h *Handler) era(r *http.Request, m *mcpwire.Message) (bool, *rpcError) {
	header := r.Header.Get("Mcp-Protocol-Version")
	metaVersion := metaVersion(m)
	modern := header == modernVersion || metaVersion != ""
	if !modern {
		if !supportedHeader(header) {
			return false, unsupportedVersion(header)
		}
		return false, nil
	}
	if m.Kind() != mcpwire.KindRequest && m.Kind() != mcpwire.KindNotification {
		return true, nil // answers carry no _meta
	}
	if m.Kind() == mcpwire.KindNotification && metaVersion == "" {
		// A notification (the SDKs' notifications/cancelled after a
		// stream was closed) need not carry the request metadata; it is
		// acknowledged and changes nothing.
		return true, nil
	}
	if metaVersion != modernVersion {
		return true, unsupportedVersion(metaVersion)
	}
	if header != "" && header != metaVersion {
		return true, mismatch("Mcp-Protocol-Version", header, metaVersion)
	}
	if got := r.Header.Get("Mcp-Method"); got != m.Method {
		return true, mismatch("Mcp-Method", got, m.Method)
	}
	if name, ok := mcpwire.MirroredName(m.Method, m.Params); ok {
		got, valid := mcpwire.DecodeHeaderValue(r.Header.Get("Mcp-Name"))
		if !valid || got != name {
			return true, mismatch("Mcp-Name", r.Header.Get("Mcp-Name"), name)
		}
	}
	return true, nil
}

// unsupportedVersion is the error answering a protocol version this
// endpoint does not speak (with HTTP 400).
func unsupportedVersion(requested string) *rpcError {
	return &rpcError{
		Code: codeUnsupportedVersion, Message: "unsupported protocol version",
		Data: map[string]any{"supported": supportedVersions(), "requested": truncate(requested, 32)},
	}
}

// metaVersion is the protocol version a message names in its params'
// _meta (the 2026-07-28 era), "" when it names none.
func metaVersion(m *mcpwire.Message) string {
	var v string
	if m.Params != nil && mcpwire.IsObject(m.Params) {
		if meta, err := mcpwire.Find(m.Params, "_meta"); err == nil && meta != nil && mcpwire.IsObject(meta) {
			if raw, err := mcpwire.Find(meta, mcpwire.MetaProtocolVersion); err == nil && raw != nil {
				_ = json.Unmarshal(raw, &v)
			}
		}
	}
	return v
}

func mismatch(header, got, body string) *rpcError {
	return &rpcError{
		Code:    mcpwire.CodeHeaderMismatch,
		Message: "header " + header + " does not match the request body",
		Data:    map[string]string{"header": header, "headerValue": truncate(got, 128), "bodyValue": truncate(body, 128)},
	}
}

// caller is what the endpoint knows of a request's caller beyond the
// call.
type caller struct {
	// session is the legacy session ("" without one, and in the modern
	// era).
	session string
	// version is the protocol version the request speaks.
	version string
	// logLevel is the LogLevelRank of the level the session's caller set
	// (logging/setLevel), 0 for none.
	logLevel int
}

// clientAnswer takes a caller's response to a server→client request the
// gateway relayed (sampling, elicitation): it goes back to the upstream
// that asked. Only the agent and session the request went to may answer;
// the answer belongs to the call that asked and has no record of its own.
func (h *Handler) clientAnswer(w http.ResponseWriter, m *mcpwire.Message, agent, session string) {
	if session == "" {
		writeError(w, http.StatusBadRequest, nullID, &rpcError{Code: codeInvalidRequest,
			Message: "an answer to a server request needs the Mcp-Session-Id of the session that was asked"})
		return
	}
	if !h.sessionOK(session, agent) {
		sessionNotFound(w)
		return
	}
	if !h.asks.answer(m, agent, session) {
		if h.asks.ended(m.ID) {
			// An answer to a request that ended meanwhile: the upstream
			// withdrew it (notifications/cancelled, which some clients
			// answer anyway) or stopped waiting. Nobody needs it.
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeError(w, http.StatusBadRequest, nullID, &rpcError{
			Code: codeInvalidRequest, Message: "no server request with this id is waiting for an answer from this session",
		})
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// serveDelete ends the caller's session: a session request through the
// pipeline (authenticated and audited), then the session is gone.
func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request) {
	call, ok := h.beginBare(w, r, "DELETE")
	if !ok {
		return
	}
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		http.Error(w, "Mcp-Session-Id header is required", http.StatusBadRequest)
		return
	}
	if !h.sessions.use(id, call.Agent.GetMeta().GetName()) {
		sessionNotFound(w)
		return
	}
	call.Op = pipeline.OpSession
	if _, err := h.backend.Run(r.Context(), call); err != nil {
		http.Error(w, h.logged(r, err).Message, http.StatusServiceUnavailable)
		return
	}
	if !h.sessions.end(id, call.Agent.GetMeta().GetName()) {
		sessionNotFound(w)
		return
	}
	// Its running calls end with it. A resumable call outlives its
	// connection, and only notifications/cancelled would stop it; a client
	// that cancels and then ends the session at once (the TypeScript SDK
	// does not wait for the notification to be sent) may have its DELETE
	// arrive first, and the notification then names no session.
	h.calls.cancelSession(id)
	w.WriteHeader(http.StatusNoContent)
}

// beginBare begins the call of a request without a JSON-RPC body (GET,
// DELETE) named method, and resolves its agent once; false when it
// answered already (no configuration, no or a bad credential).
func (h *Handler) beginBare(w http.ResponseWriter, r *http.Request, method string) (*pipeline.Call, bool) {
	token := bearer(r)
	if !presented(r, token) {
		h.anonymous(w, r, nil, false)
		return nil, false
	}
	call := h.backend.Begin(r)
	if call.Config == nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the data plane has no configuration yet; retry shortly", http.StatusServiceUnavailable)
		return nil, false
	}
	call.Hops, _ = hop.Parse(r.Header)
	if call.Start.IsZero() {
		call.Start = h.now()
	}
	if !call.SourceIP.IsValid() {
		call.SourceIP = sourceAddr(r)
	}
	call.Protocol, call.Method, call.Credential = "mcp", method, token
	agent, refusal := stages.ResolveAgent(r.Context(), call.Config, token, call.PeerCertificates, call.Start)
	if refusal != nil {
		h.anonymous(w, r, nil, true)
		return nil, false
	}
	call.Agent = agent
	return call, true
}

// sessionOK accepts a request without a session id (sessions are optional
// here) or with a live one of agent.
func (h *Handler) sessionOK(id, agent string) bool {
	return id == "" || h.sessions.use(id, agent)
}

// sessionNotFound answers 404 with a plain-text body: clients (the Go SDK
// among them) recognize an expired session by a 404 that carries no
// JSON-RPC error, and then re-initialize.
func sessionNotFound(w http.ResponseWriter) {
	http.Error(w, "session not found: initialize a new session", http.StatusNotFound)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
