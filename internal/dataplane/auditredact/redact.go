// Package auditredact turns a call's arguments into the text an audit
// record keeps: configured fields replaced with "[REDACTED]", string values
// that look like credentials replaced with "[REDACTED:<kind>]", and the
// result bounded in size.
//
// Configured fields (--audit-redact) are names or dotted paths:
//
//	password      a member named "password" at any depth
//	card.number   member "number" of top-level member "card"
//	/card/number  the same, written as a JSON pointer
//
// Names match case-insensitively. A path passes through arrays: in
// "items.token", every element of the array "items" has its "token"
// redacted. A redacted object or array is replaced whole.
//
// Members named like secrets are redacted without configuration: a name
// that, lower-cased and without '-' and '_', is or ends with one of
// [SecretNames] ("password", "api_key", "X-Api-Key", "client_secret",
// "githubToken", …). They are replaced with "[REDACTED]" like configured
// fields.
//
// Secret detection looks at every string value and replaces the whole
// value when any rule in [Kinds] matches anywhere in it. The rules are
// package detector's secrets detector, shared with runtime inspection.
// They are deliberately few: they catch the credentials people paste into
// tool arguments by accident; a secret in a format they do not know, under
// a name they do not know, needs a configured field.
package auditredact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/internal/detector"
)

// Markers written in place of what is removed.
const (
	// Redacted replaces a configured field's value.
	Redacted = "[REDACTED]"
	// invalidJSON stands for arguments that are not JSON: they cannot be
	// searched for secrets, so none of them is kept.
	invalidJSON = `"[REDACTED:invalid_json]"`
)

// DefaultMaxBytes bounds the recorded arguments.
const DefaultMaxBytes = 16 << 10

// Kinds lists the kinds of secret that detection reports, in the order the
// rules are tried (package detector's secrets detector, which inspection
// rules use too).
func Kinds() []string { return detector.SecretKinds() }

// Detect reports the kind of the first rule that finds a credential in s,
// or "" if none does.
func Detect(s string) string { return detector.FirstSecret(s) }

// secretNames are the member names redacted by default (see SecretNames).
var secretNames = []string{
	"password", "passwd", "passphrase", "secret", "token", "apikey", "authorization",
	"privatekey", "secretkey", "accesskey", "credential", "credentials", "cookie",
}

// SecretNames lists the name endings that make a member's value redacted
// without configuration: a member whose name, lower-cased and without '-'
// and '_', is one of them or ends with one ("db_password",
// "client_secret", "x-api-key", "accessToken", "aws_secret_access_key").
func SecretNames() []string { return append([]string(nil), secretNames...) }

// separators are what secretName ignores in a member name.
var separators = strings.NewReplacer("-", "", "_", "")

// secretName reports whether a lower-cased member name is named like a
// secret.
func secretName(lk string) bool {
	n := separators.Replace(lk)
	for _, s := range secretNames {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// Redactor redacts arguments. Its zero value (and nil) detects secrets
// only. It is immutable and safe for concurrent use.
type Redactor struct {
	names map[string]bool // lower-cased names matched at any depth
	paths [][]string      // lower-cased paths from the top level
	// MaxBytes bounds the result; 0 means DefaultMaxBytes.
	maxBytes int
}

// New returns a Redactor for the configured fields (see the package doc).
func New(fields []string) (*Redactor, error) {
	r := &Redactor{names: map[string]bool{}}
	for _, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var parts []string
		if strings.HasPrefix(f, "/") {
			parts = strings.Split(f[1:], "/")
			for i, p := range parts {
				// JSON pointer escapes.
				parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
			}
		} else {
			parts = strings.Split(f, ".")
		}
		for _, p := range parts {
			if p == "" {
				return nil, fmt.Errorf("audit redaction field %q: empty path segment", f)
			}
		}
		for i := range parts {
			parts[i] = strings.ToLower(parts[i])
		}
		if len(parts) == 1 {
			r.names[parts[0]] = true
			continue
		}
		r.paths = append(r.paths, parts)
	}
	return r, nil
}

// WithMaxBytes returns a copy of r that bounds results at n bytes.
func (r *Redactor) WithMaxBytes(n int) *Redactor {
	c := Redactor{}
	if r != nil {
		c = *r
	}
	c.maxBytes = n
	return &c
}

// Arguments returns raw, a call's JSON arguments, as an audit record keeps
// them: redacted, re-encoded (members sorted) and at most the byte bound,
// cut with a marker beyond it (a cut result is not valid JSON). decoded,
// when non-nil, is raw already decoded with json.Number numbers, and is
// not changed. Empty or null arguments give "".
func (r *Redactor) Arguments(raw json.RawMessage, decoded any) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return ""
	}
	v := decoded
	if v == nil {
		d := json.NewDecoder(bytes.NewReader(trimmed))
		d.UseNumber()
		if err := d.Decode(&v); err != nil || d.More() {
			return invalidJSON
		}
	}
	out, err := json.Marshal(r.walk(v, nil, true))
	if err != nil {
		return invalidJSON
	}
	return cut(string(out), r.max())
}

func (r *Redactor) max() int {
	if r == nil || r.maxBytes <= 0 {
		return DefaultMaxBytes
	}
	return r.maxBytes
}

// walk returns a redacted copy of v. path holds the lower-cased member
// names from the top; onPath is false once no configured path can match.
func (r *Redactor) walk(v any, path []string, onPath bool) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			lk := strings.ToLower(k)
			p := append(path[:len(path):len(path)], lk)
			full, prefix := r.matchPath(p, onPath)
			if full || r.named(lk) || secretName(lk) {
				out[k] = Redacted
				continue
			}
			out[k] = r.walk(x, p, prefix)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = r.walk(x, path, onPath)
		}
		return out
	case string:
		if kind := Detect(v); kind != "" {
			return "[REDACTED:" + kind + "]"
		}
		return v
	default:
		return v
	}
}

func (r *Redactor) named(lk string) bool { return r != nil && r.names[lk] }

// matchPath reports whether p is a configured path (full) and whether it
// is a proper prefix of one (so deeper members may still match).
func (r *Redactor) matchPath(p []string, onPath bool) (full, prefix bool) {
	if r == nil || !onPath {
		return false, false
	}
	for _, c := range r.paths {
		if len(p) > len(c) {
			continue
		}
		match := true
		for i := range p {
			if p[i] != c[i] {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		if len(p) == len(c) {
			full = true
		} else {
			prefix = true
		}
	}
	return full, prefix
}

// cut returns s if it fits in n bytes, else its start on a rune boundary
// followed by a marker saying how much was cut, n bytes in all at most.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	marker := fmt.Sprintf("…[truncated: %d bytes in all]", len(s))
	keep := n - len(marker)
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + marker
}
