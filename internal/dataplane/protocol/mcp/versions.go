package mcp

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/mcpwire"
)

// Protocol versions. The legacy era (stateful: initialize, sessions)
// spans 2025-03-26 to 2025-11-25; 2026-07-28 is the stateless modern era.
const (
	// version20250326 allows JSON-RPC batches and predates structured tool
	// output (structuredContent, outputSchema), tool titles, resource
	// links in tool results and elicitation.
	version20250326 = "2025-03-26"
	version20250618 = "2025-06-18"
	version20251125 = mcpwire.VersionLegacy
	// modernVersion is the stateless era's version: no initialize, no
	// session, per-request _meta and mirrored headers.
	modernVersion = mcpwire.VersionModern
)

// legacyVersions are the legacy-era versions this endpoint speaks, oldest
// first; initialize answers a client's version when it is one of them, else
// the last (the latest).
var legacyVersions = []string{version20250326, version20250618, version20251125}

// latestLegacy is what initialize answers a client whose version this
// endpoint does not speak.
var latestLegacy = legacyVersions[len(legacyVersions)-1]

// supportedVersions lists every version, newest first (server/discover,
// and the data of an unsupported-version error).
func supportedVersions() []string {
	out := []string{modernVersion}
	for i := len(legacyVersions) - 1; i >= 0; i-- {
		out = append(out, legacyVersions[i])
	}
	return out
}

// negotiate is the version initialize answers to a client asking for
// requested: the same when this endpoint speaks it, else the latest legacy
// version (the spec: the server answers another version it supports, the
// latest).
func negotiate(requested string) string {
	if slices.Contains(legacyVersions, requested) {
		return requested
	}
	return latestLegacy
}

// supportedHeader reports whether an MCP-Protocol-Version header value is
// one this endpoint speaks ("" — no header — is).
func supportedHeader(v string) bool {
	return v == "" || v == modernVersion || slices.Contains(legacyVersions, v)
}

// legacyVersion is the protocol version a legacy-era request speaks, by the
// spec's rule: its MCP-Protocol-Version header; without one, the version
// its session negotiated; without either, 2025-03-26 (the version that
// predates the header).
func (h *Handler) legacyVersion(r *http.Request, session, agent string) string {
	negotiated := ""
	if v := r.Header.Get("Mcp-Protocol-Version"); v == "" && session != "" {
		negotiated, _ = h.sessions.useVersion(session, agent)
	}
	return requestVersion(r, negotiated)
}

// requestVersion is legacyVersion for a request whose session negotiated
// version negotiated ("" when it has none).
func requestVersion(r *http.Request, negotiated string) string {
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" {
		return v
	}
	if negotiated != "" {
		return negotiated
	}
	return version20250326
}

// capabilities are what the gateway can broker for a caller speaking
// version, given what the upstreams the caller may use offer (up),
// computed here alone for initialize and server/discover:
//
//   - tools, with listChanged: the gateway sends
//     notifications/tools/list_changed whenever a new configuration
//     arrives, on a legacy session's GET stream and on a 2026-07-28
//     subscriptions/listen stream that asked for it;
//   - resources and prompts, federated from the upstreams, without
//     listChanged (the gateway does not pass the upstreams' list changes
//     on); resources with subscribe when some upstream the caller may use
//     offers subscriptions (resources/subscribe in the legacy era,
//     subscriptions/listen in 2026-07-28);
//   - completions and logging when some upstream the caller may use
//     offers them (completion/complete is routed to the upstream of the
//     prompt or resource template; log messages reach the caller at the
//     level it asked for).
func capabilities(version string, up offers) map[string]any {
	_ = version // every version this endpoint speaks has these
	resources := map[string]any{}
	if up.Subscribe {
		resources["subscribe"] = true
	}
	caps := map[string]any{
		"tools":     map[string]any{"listChanged": true},
		"resources": resources,
		"prompts":   map[string]any{},
	}
	if up.Completions {
		caps["completions"] = map[string]any{}
	}
	if up.Logging {
		caps["logging"] = map[string]any{}
	}
	return caps
}

// toolResult20250326 gives a tools/call result in the shape of 2025-03-26,
// which predates structured tool output and resource links: the
// structuredContent member is dropped (when the result has no content,
// its JSON becomes one text item, as 2025-06-18 asks servers to send
// anyway), and each resource_link item becomes a text item naming the
// link. A result it cannot read is passed on unchanged.
func toolResult20250326(result json.RawMessage) json.RawMessage {
	structured, err := mcpwire.Find(result, "structuredContent")
	if err != nil {
		return result
	}
	rawContent, err := mcpwire.Find(result, "content")
	if err != nil {
		return result
	}
	var content []json.RawMessage
	if rawContent != nil && json.Unmarshal(rawContent, &content) != nil {
		return result
	}
	changed := false
	for i, item := range content {
		if t, _ := mcpwire.Find(item, "type"); string(t) == `"resource_link"` {
			content[i], changed = resourceLinkText(item), true
		}
	}
	if len(content) == 0 && structured != nil && string(structured) != "null" {
		text, err := json.Marshal(map[string]string{"type": "text", "text": string(structured)})
		if err != nil {
			return result
		}
		content, changed = []json.RawMessage{text}, true
	}
	out := []byte(result)
	if changed {
		enc, err := json.Marshal(content)
		if err != nil {
			return result
		}
		if out, err = mcpwire.Set(out, "content", enc); err != nil {
			return result
		}
	}
	if structured != nil {
		stripped, err := deleteMember(out, "structuredContent")
		if err != nil {
			return result
		}
		out = stripped
	}
	return out
}

// resourceLinkText is a resource_link content item as a text item: its
// name (or title) and URI.
func resourceLinkText(item json.RawMessage) json.RawMessage {
	var link struct {
		URI   string `json:"uri"`
		Name  string `json:"name"`
		Title string `json:"title"`
	}
	_ = json.Unmarshal(item, &link)
	name := link.Title
	if name == "" {
		name = link.Name
	}
	text := "resource: " + link.URI
	if name != "" {
		text = "resource " + name + ": " + link.URI
	}
	out, err := json.Marshal(map[string]string{"type": "text", "text": text})
	if err != nil {
		return item
	}
	return out
}

// deleteMember returns the object b without its member key, every other
// member's value byte for byte.
func deleteMember(b []byte, key string) ([]byte, error) {
	members, err := mcpwire.Members(b)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b))
	out = append(out, '{')
	first := true
	for _, m := range members {
		if m.Key == key {
			continue
		}
		k, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, b[m.Start:m.End]...)
	}
	return append(out, '}'), nil
}
