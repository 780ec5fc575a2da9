package mcpwire

import (
	"encoding/base64"
	"encoding/json"
)

// Protocol versions.
const (
	// VersionModern is the stateless era's version (server/discover,
	// per-request _meta, mirrored headers).
	VersionModern = "2026-07-28"
	// VersionLegacy is the newest version of the stateful era
	// (initialize, sessions).
	VersionLegacy = "2025-11-25"
)

// LegacyVersions are the versions of the stateful era this gateway speaks,
// newest first.
var LegacyVersions = []string{VersionLegacy, "2025-06-18"}

// _meta keys of the modern era.
const (
	MetaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	MetaClientInfo         = "io.modelcontextprotocol/clientInfo"
	MetaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	MetaServerInfo         = "io.modelcontextprotocol/serverInfo"
	// MetaLogLevel is the log level a 2026-07-28 request asks for (no
	// notifications/message without it).
	MetaLogLevel = "io.modelcontextprotocol/logLevel"
	// MetaSubscriptionID names the subscriptions/listen request a
	// notification on its stream belongs to (2026-07-28).
	MetaSubscriptionID = "io.modelcontextprotocol/subscriptionId"
)

// HTTP headers of the Streamable HTTP transport, in canonical form.
const (
	HeaderProtocolVersion = "Mcp-Protocol-Version"
	HeaderSessionID       = "Mcp-Session-Id"
	HeaderMethod          = "Mcp-Method"
	HeaderName            = "Mcp-Name"
	HeaderLastEventID     = "Last-Event-Id"
)

// MirroredName is the value the modern era mirrors in Mcp-Name: the tool
// or prompt name, or the resource URI.
func MirroredName(method string, params json.RawMessage) (string, bool) {
	var key string
	switch method {
	case "tools/call", "prompts/get":
		key = "name"
	case "resources/read":
		key = "uri"
	default:
		return "", false
	}
	if len(params) == 0 {
		return "", false
	}
	raw, err := Find(params, key)
	if err != nil || raw == nil {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// EncodeHeaderValue is a header-safe form of v: v itself when it is
// printable ASCII without surrounding spaces, else "=?base64?…?=".
func EncodeHeaderValue(v string) string {
	safe := v != "" && v[0] != ' ' && v[len(v)-1] != ' '
	for i := 0; safe && i < len(v); i++ {
		safe = v[i] >= 0x20 && v[i] < 0x7f
	}
	if safe {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// DecodeHeaderValue undoes EncodeHeaderValue; false for a malformed
// base64 form.
func DecodeHeaderValue(v string) (string, bool) {
	const pre, suf = "=?base64?", "?="
	if len(v) >= len(pre)+len(suf) && v[:len(pre)] == pre && v[len(v)-len(suf):] == suf {
		b, err := base64.StdEncoding.DecodeString(v[len(pre) : len(v)-len(suf)])
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return v, true
}

// logLevels are MCP's log levels (RFC 5424's severities), least severe
// first.
var logLevels = [...]string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// LogLevelRank orders MCP's log levels: 1 for "debug" up to 8 for
// "emergency", 0 for anything else. A notifications/message of level l
// reaches a client that asked for level min when LogLevelRank(l) >=
// LogLevelRank(min).
func LogLevelRank(level string) int {
	for i, l := range logLevels {
		if l == level {
			return i + 1
		}
	}
	return 0
}
