package mcp

import (
	"encoding/json"
	"net/http"
	"sort"
)

// MetadataPath is where the RFC 9728 protected-resource metadata is served
// (the 401 challenge's resource_metadata points here).
const MetadataPath = "/.well-known/oauth-protected-resource"

// AuthorizationServers lists the issuers whose tokens the gateway accepts
// from agents. Implementations must be safe for concurrent use.
type AuthorizationServers interface {
	AuthorizationServers() []string
}

// NewMetadataHandler serves the OAuth 2.0 protected-resource metadata of the
// /mcp endpoint (RFC 9728), at MetadataPath and at MetadataPath + "/mcp":
// the resource identifier, the authorization servers agents may get tokens
// from, and that tokens go in the Authorization header only.
func NewMetadataHandler(src AuthorizationServers, opts ...Option) http.Handler {
	h := &Handler{}
	for _, o := range opts {
		o(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		base := h.baseURL(r)
		if base == "" {
			http.Error(w, "unusable Host header", http.StatusBadRequest)
			return
		}
		servers := append([]string{}, src.AuthorizationServers()...) // [] rather than null
		sort.Strings(servers)
		doc := map[string]any{
			"resource":                 base + "/mcp",
			"authorization_servers":    servers,
			"bearer_methods_supported": []string{"header"},
			"resource_name":            "Portcullis MCP gateway",
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=60")
		_ = json.NewEncoder(w).Encode(doc)
	})
}
