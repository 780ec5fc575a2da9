// Package setting is the table of the gateway's cluster-wide settings: the
// keys a release knows, their defaults, and the form of their values. The
// control plane stores a setting (config.v1.Setting, kind "setting") only
// for a key in this table and only in canonical form; data planes receive
// every stored setting in their snapshot, check the keys they know the same
// way, and ignore the others (a newer control plane's). gwctl describes the
// keys from here.
//
// A new setting is a new entry in specs, with its canonical form and a
// test; nothing else in the replicated state changes. The package is shared
// by both planes and holds no state.
package setting

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
)

// Keys of the settings.
const (
	// MCPAllowedOrigins lists the browser origins whose pages may call the
	// data planes' MCP endpoint. A request without an Origin header (every
	// non-browser agent) is not affected; one with an Origin outside the
	// list is refused with 403 (the DNS-rebinding defence the MCP spec
	// requires of Streamable HTTP servers). Default: empty, so no browser
	// page may call.
	MCPAllowedOrigins = "mcp.allowed-origins"
)

// Spec describes one setting.
type Spec struct {
	// Name is the key.
	Name string
	// Description says what the setting does and the form of its values.
	Description string
	// Default is the value in force while nothing is stored.
	Default []string
	// canonical checks values and returns them in the form the control
	// plane stores: each value canonical, and the list in the setting's
	// order.
	canonical func(values []string) ([]string, error)
}

var specs = []Spec{
	{
		Name: MCPAllowedOrigins,
		Description: "Browser origins (scheme://host[:port]) whose pages may call the MCP endpoint. " +
			"Requests without an Origin header (non-browser agents) are always allowed; " +
			"a request with any other Origin is refused with 403. Default: none.",
		Default:   []string{},
		canonical: canonicalOrigins,
	},
}

// All returns every setting, in key order.
func All() []Spec {
	out := slices.Clone(specs)
	slices.SortFunc(out, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup finds the setting named name.
func Lookup(name string) (Spec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// ErrUnknown is matched by the error of a key no setting has.
var ErrUnknown = errors.New("unknown setting")

// Canonical returns values in the canonical form of the setting name, or an
// error that says what is wrong (wrapping ErrUnknown for an unknown key).
// It checks the limits first.
func Canonical(name string, values []string) ([]string, error) {
	spec, ok := Lookup(name)
	if !ok {
		return nil, unknown(name)
	}
	if len(values) > limits.SettingValues {
		return nil, fmt.Errorf("at most %d values (got %d)", limits.SettingValues, len(values))
	}
	for i, v := range values {
		if len(v) > limits.SettingValue || !utf8.ValidString(v) {
			return nil, fmt.Errorf("value %d: at most %d bytes of UTF-8", i+1, limits.SettingValue)
		}
	}
	return spec.canonical(values)
}

// Check reports whether values are the canonical values of the setting
// name: what the control plane's state machine and a data plane accept.
func Check(name string, values []string) error {
	want, err := Canonical(name, values)
	if err != nil {
		return err
	}
	if !slices.Equal(want, values) {
		return fmt.Errorf("values must be in canonical form: %s", strings.Join(want, ","))
	}
	return nil
}

func unknown(name string) error {
	names := make([]string, 0, len(specs))
	for _, s := range All() {
		names = append(names, s.Name)
	}
	return fmt.Errorf("%w %q; the settings are: %s", ErrUnknown, truncate(name, 64), strings.Join(names, ", "))
}

// Values returns the values in force for name in settings (a snapshot's or
// the state's stored settings): the stored ones, or the default when none
// is stored (nil for an unknown key).
func Values(settings []*configv1.Setting, name string) []string {
	for _, s := range settings {
		if s.GetMeta().GetName() == name {
			return s.GetValues()
		}
	}
	if spec, ok := Lookup(name); ok {
		return spec.Default
	}
	return nil
}

// canonicalOrigins canonicalizes each origin (CanonicalOrigin) and sorts
// them; a value given twice is refused rather than dropped, so that what an
// operator sends is what the setting holds.
func canonicalOrigins(values []string) ([]string, error) {
	out := make([]string, 0, len(values))
	for _, v := range values {
		o, err := CanonicalOrigin(v)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, o) {
			return nil, fmt.Errorf("origin %q is listed twice", o)
		}
		out = append(out, o)
	}
	slices.Sort(out)
	return out, nil
}

// CanonicalOrigin returns the serialization of a web origin as browsers
// send it in the Origin header (RFC 6454): "scheme://host" with a
// lower-case http or https scheme and host, and ":port" only when the port
// is not the scheme's default. A path of "/" is dropped; anything else
// beyond the origin (a path, query, fragment or user info) is refused, as
// are wildcards and the opaque origin "null".
func CanonicalOrigin(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("an empty origin")
	}
	if strings.Contains(raw, "*") {
		return "", fmt.Errorf("origin %q: wildcards are not supported; list each origin", truncate(raw, 64))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://app.example", truncate(raw, 64))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("origin %q: the scheme must be http or https", truncate(raw, 64))
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(raw, "#") {
		return "", fmt.Errorf("origin %q: give only scheme://host[:port], without path, query, fragment or user", truncate(raw, 64))
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("origin %q has no host", truncate(raw, 64))
	}
	for _, c := range []byte(host) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':'
		if !ok {
			return "", fmt.Errorf("origin %q: the host may hold only a-z, 0-9, '-', '.' (international names in their xn-- form) or an IP address", truncate(raw, 64))
		}
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", fmt.Errorf("origin %q: %q is not an IPv6 address", truncate(raw, 64), host)
	}
	port := u.Port()
	if port == "" && strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("origin %q: an empty port", truncate(raw, 64))
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("origin %q: the port must be 1-65535", truncate(raw, 64))
		}
		port = strconv.Itoa(n)
		if scheme == "http" && n == 80 || scheme == "https" && n == 443 {
			port = ""
		}
	}
	out := scheme + "://"
	if strings.Contains(host, ":") {
		out += "[" + host + "]"
	} else {
		out += host
	}
	if port != "" {
		out += ":" + port
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
