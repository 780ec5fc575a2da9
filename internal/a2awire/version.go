package a2awire

import "strings"

// Version is an A2A protocol version the gateway brokers.
type Version int

// Versions.
const (
	// V03 is A2A 0.3: what a request without an A2A-Version header, or
	// with "0.3", speaks.
	V03 Version = iota + 1
	// V10 is A2A 1.0.
	V10
)

// HeaderVersion is the service parameter (an HTTP header in the JSON-RPC
// binding) that names the version a request speaks; HeaderExtensions lists
// the extensions it uses.
const (
	HeaderVersion    = "A2A-Version"
	HeaderExtensions = "A2A-Extensions"
)

// String is the version as A2A-Version and agent cards write it.
func (v Version) String() string {
	switch v {
	case V03:
		return "0.3"
	case V10:
		return "1.0"
	}
	return "unknown"
}

// ParseVersion reads an A2A-Version value: empty means 0.3 (the spec's
// rule for clients that predate the header); only Major.Minor counts, so
// "1.0.2" is 1.0. ok is false for a version the gateway does not broker.
func ParseVersion(s string) (Version, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return V03, true
	}
	major, rest, _ := strings.Cut(s, ".")
	minor, _, _ := strings.Cut(rest, ".")
	switch {
	case major == "0" && minor == "3":
		return V03, true
	case major == "1" && (minor == "0" || minor == ""):
		return V10, true
	}
	return 0, false
}

// CardVersion is the version an agent card says its JSON-RPC interface
// speaks: a 1.0 card lists supportedInterfaces (the first JSONRPC entry
// whose url is endpoint, else the first JSONRPC entry, decides); a card
// without them is a 0.3 card. ok is false when the card offers no JSON-RPC
// interface of a version the gateway brokers.
func CardVersion(card map[string]any, endpoint string) (Version, bool) {
	ifaces, has := card[CardSupportedInterfaces].([]any)
	if !has {
		if pv, _ := card[CardProtocolVersion].(string); pv != "" {
			v, ok := ParseVersion(pv)
			return v, ok && v == V03
		}
		return V03, true
	}
	var first string
	for _, it := range ifaces {
		iface, _ := it.(map[string]any)
		if b, _ := iface[IfaceProtocolBinding].(string); !strings.EqualFold(b, BindingJSONRPC) {
			continue
		}
		pv, _ := iface[IfaceProtocolVersion].(string)
		if u, _ := iface[IfaceURL].(string); u == endpoint {
			v, ok := ParseVersion(pv)
			return v, ok && pv != ""
		}
		if first == "" {
			first = pv
		}
	}
	if first == "" {
		return 0, false
	}
	v, ok := ParseVersion(first)
	return v, ok
}
