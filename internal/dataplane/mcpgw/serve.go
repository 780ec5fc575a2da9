package mcpgw

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// Protocol versions this endpoint negotiates; the first is the default.
var protocolVersions = []string{"2025-06-18", "2025-11-25"}

// servePost handles one JSON-RPC message. The order matters: no credential
// (neither a bearer token nor a client certificate) means 401 before the
// body is read; envelope errors come next; then
// configuration, authentication and the session, then the method.
func (h *Handler) servePost(w http.ResponseWriter, r *http.Request) {
	token := bearer(r)
	if !presented(r, token) {
		h.unauthorized(w, r, nil, false, msgUnauthenticated)
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
	req, id, perr := parse(body)
	if perr != nil {
		writeError(w, http.StatusBadRequest, id, perr)
		return
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !slices.Contains(protocolVersions, v) {
		writeError(w, http.StatusBadRequest, id, &rpcError{
			Code: codeUnsupportedVersion, Message: "unsupported protocol version",
			Data: map[string]any{"supported": protocolVersions, "requested": truncate(v, 32)},
		})
		return
	}

	call := h.backend.Begin(r)
	if call.Start.IsZero() {
		call.Start = h.now()
	}
	if !call.SourceIP.IsValid() {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			call.SourceIP = ap.Addr()
		}
	}
	agent, authenticated := agentFor(r.Context(), call.Config, token, call.PeerCertificates, call.Start)

	if req.Method == "tools/call" && !req.isNotification() {
		// The pipeline authenticates tools/call itself (and audits the
		// refusal); the session is checked here only for a known agent.
		if authenticated && !h.sessionOK(r, agent.GetMeta().GetName()) {
			sessionNotFound(w)
			return
		}
		h.toolsCall(w, r, req, id, call, token)
		return
	}
	if call.Config == nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, id, &rpcError{
			Code: codeUnavailable, Message: "the data plane has no configuration yet; retry shortly",
			Data: reasonData(pipeline.ReasonNoConfig),
		})
		return
	}
	if !authenticated {
		h.unauthorized(w, r, id, true, msgUnauthenticated)
		return
	}
	agentName := agent.GetMeta().GetName()
	if req.Method != "initialize" && !h.sessionOK(r, agentName) {
		sessionNotFound(w)
		return
	}
	if req.isNotification() {
		// notifications/initialized, notifications/cancelled, …: nothing
		// to do in a JSON-only endpoint without server-side work.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	switch req.Method {
	case "initialize":
		h.initialize(w, req, id, agentName)
	case "ping":
		writeResult(w, id, struct{}{})
	case "tools/list":
		h.toolsList(w, r, req, id, call, agent)
	default:
		writeError(w, http.StatusOK, id, &rpcError{
			Code: codeMethodNotFound, Message: "method not found: " + truncate(req.Method, 64),
		})
	}
}

// serveDelete ends the caller's session.
func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request) {
	token := bearer(r)
	if !presented(r, token) {
		h.unauthorized(w, r, nil, false, msgUnauthenticated)
		return
	}
	call := h.backend.Begin(r)
	if call.Config == nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the data plane has no configuration yet; retry shortly", http.StatusServiceUnavailable)
		return
	}
	agent, ok := agentFor(r.Context(), call.Config, token, call.PeerCertificates, h.now())
	if !ok {
		h.unauthorized(w, r, nil, true, msgUnauthenticated)
		return
	}
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		http.Error(w, "Mcp-Session-Id header is required", http.StatusBadRequest)
		return
	}
	if !h.sessions.end(id, agent.GetMeta().GetName()) {
		sessionNotFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sessionOK accepts a request without a session id (sessions are optional
// here) or with a live one of agent.
func (h *Handler) sessionOK(r *http.Request, agent string) bool {
	id := r.Header.Get("Mcp-Session-Id")
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
