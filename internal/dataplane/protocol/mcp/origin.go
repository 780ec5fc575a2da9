package mcp

import (
	"net/http"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/dataplane/hop"
	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	"github.com/portcullis-gw/portcullis/internal/dataplane/stages"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

// codeForbidden is the JSON-RPC error of a request refused with HTTP 403.
const codeForbidden = -32003

// checkOrigin applies the Streamable HTTP transport's DNS-rebinding rule
// to every request (POST, GET and DELETE), before any other check: a
// request without an Origin
// header (agents that are not browsers) goes on; one whose Origin is not
// in the replicated setting mcp.allowed-origins (default: none) is refused
// with 403 and a JSON-RPC error before its body is read, and nothing of it
// reaches an upstream. The Host header plays no part: a rebinding page's
// Origin matches the Host it sends. It reports whether the request may go
// on. A request without Origin that a browser marked as coming from
// another site (Sec-Fetch-Site cross-site or same-site) is refused the same
// way: only browsers send that header.
//
// The refusal is on the record: a caller that presented a credential of an
// agent gets its audit record (reason origin_not_allowed) through the
// pipeline; an anonymous one is counted in the refusal summary.
func (h *Handler) checkOrigin(w http.ResponseWriter, r *http.Request) bool {
	values := r.Header.Values("Origin")
	if len(values) > 1 {
		return true // refused by checkEdge: a decision header given twice
	}
	if len(values) == 0 {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "cross-site", "same-site":
			h.refuseOrigin(w, r, h.backend.Begin(r))
			return false
		}
		return true
	}
	call := h.backend.Begin(r)
	if originAllowed(call.Config, values[0]) {
		return true
	}
	h.refuseOrigin(w, r, call)
	return false
}

// originAllowed reports whether origin, in its canonical form, is one the
// configuration allows. Without a configuration none is.
func originAllowed(cfg pipeline.Config, origin string) bool {
	if cfg == nil {
		return false
	}
	o, err := setting.CanonicalOrigin(origin)
	return err == nil && slices.Contains(cfg.Setting(setting.MCPAllowedOrigins), o)
}

const msgOriginRefused = "requests from browser pages of this origin are not accepted; " +
	"an operator allows an origin with 'gwctl settings set mcp.allowed-origins <scheme://host[:port]>,…'"

// refuseOrigin answers 403 to a request with an Origin the configuration
// does not allow, recording it first: through the pipeline when the
// credential resolves to an agent (Call.Refused makes Gate refuse it after
// Audit recorded it), else in the anonymous refusal summary.
func (h *Handler) refuseOrigin(w http.ResponseWriter, r *http.Request, call *pipeline.Call) {
	refusal := pipeline.Refuse(pipeline.ReasonOriginNotAllowed, msgOriginRefused)
	defer writeError(w, http.StatusForbidden, nullID, &rpcError{Code: codeForbidden, Message: refusal.Message, Data: reasonData(refusal.Reason)})
	token := bearer(r)
	// The caller is identified only from one Authorization header (or the
	// client certificate), as every other request is.
	if call.Config != nil && presented(r, token) && len(r.Header.Values("Authorization")) <= 1 {
		if call.Start.IsZero() {
			call.Start = h.now()
		}
		if !call.SourceIP.IsValid() {
			call.SourceIP = sourceAddr(r)
		}
		agent, unknown := stages.ResolveAgent(r.Context(), call.Config, token, call.PeerCertificates, call.Start)
		if unknown == nil {
			call.Hops, _ = hop.Parse(r.Header)
			call.Protocol, call.Method, call.Credential = "mcp", r.Method, token
			call.Agent, call.Op, call.Refused = agent, pipeline.OpSession, refusal
			// The user token of a refused request is not looked at.
			call.UserToken = ""
			_, _ = h.backend.Run(r.Context(), call)
			return
		}
	}
	if h.refusals != nil {
		h.refusals.Refused(sourceAddr(r), string(pipeline.ReasonOriginNotAllowed))
	}
}
