package mcp

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
)

// bearer returns the token of an `Authorization: Bearer` header, or "".
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// presented reports whether the request carries a credential: a bearer
// token, or a client certificate of its TLS connection.
func presented(r *http.Request, token string) bool {
	return token != "" || (r.TLS != nil && len(r.TLS.PeerCertificates) > 0)
}

// unauthorized answers 401 with the RFC 9728 challenge pointing at the
// protected-resource metadata, and a JSON-RPC error for clients that read
// bodies. invalid says a token was presented (RFC 6750 invalid_token).
func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, id []byte, invalid bool, msg string) {
	challenge := "Bearer"
	if base := h.baseURL(r); base != "" {
		challenge += ` resource_metadata="` + base + `/.well-known/oauth-protected-resource"`
	} else {
		challenge += ` realm="portcullis"`
	}
	if invalid {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if id == nil {
		id = nullID
	}
	writeError(w, http.StatusUnauthorized, id, &rpcError{
		Code: codeUnauthenticated, Message: msg,
		Data: reasonData(pipeline.ReasonUnauthenticated),
	})
}

// baseURL is the gateway's external base URL: the configured one, or the
// request's scheme and Host when that Host is a plain host[:port] (never
// anything that could break out of the quoted challenge parameter).
func (h *Handler) baseURL(r *http.Request) string {
	if h.publicURL != "" {
		return strings.TrimRight(h.publicURL, "/")
	}
	host := r.Host
	if host == "" || len(host) > 255 {
		return ""
	}
	for _, c := range []byte(host) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]", c) >= 0
		if !ok {
			return ""
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + host
}

// anonymous answers a request refused before any agent could be
// identified (no credential, or one that does not resolve to an enabled
// agent) with the 401 challenge, and counts it with the endpoint's
// AnonymousRecorder (metrics, a rate-limited log line, and an audit
// summary per source network and interval).
func (h *Handler) anonymous(w http.ResponseWriter, r *http.Request, id []byte, invalid bool) {
	if h.refusals != nil {
		h.refusals.Refused(sourceAddr(r), string(pipeline.ReasonUnauthenticated))
	}
	h.unauthorized(w, r, id, invalid, msgUnauthenticated)
}

// sourceAddr is the request's peer address (invalid when it has none).
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

const msgUnauthenticated = "a valid API key is required: send Authorization: Bearer pck_…"
