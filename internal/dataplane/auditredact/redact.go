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
	"slices"
	"strconv"
	"strings"
	"sync"
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
		var fresh any
		d := json.NewDecoder(bytes.NewReader(trimmed))
		d.UseNumber()
		if err := d.Decode(&fresh); err != nil || d.More() {
			return invalidJSON
		}
		v = fresh
	}
	bp := bufPool.Get().(*[]byte)
	var path [8]string
	out, ok := r.appendValue((*bp)[:0], path[:0], v, true)
	if !ok {
		bufPool.Put(bp)
		return invalidJSON
	}
	result := cut(string(out), r.max())
	if cap(out) <= maxPooledBuf {
		*bp = out
		bufPool.Put(bp)
	}
	return result
}

// bufPool holds the buffers Arguments writes into; the result is a copy,
// so a buffer is reused by the next call. Buffers that grew beyond
// maxPooledBuf (arguments far beyond the record's bound) are dropped.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledBuf = 64 << 10

func (r *Redactor) max() int {
	if r == nil || r.maxBytes <= 0 {
		return DefaultMaxBytes
	}
	return r.maxBytes
}

// appendValue appends a redacted copy of v, a decoded JSON value, the way
// json.Marshal writes it — members sorted, HTML-safe escapes — without
// making the copy: a configured field's or secret-named member's value is
// Redacted, a string in which a credential is detected
// "[REDACTED:<kind>]". path holds the lower-cased member names from the
// top; onPath is false once no configured path can match below it. False
// when json.Marshal would fail on v.
func (r *Redactor) appendValue(buf []byte, path []string, v any, onPath bool) ([]byte, bool) {
	switch v := v.(type) {
	case map[string]any:
		return r.appendObject(buf, path, v, onPath)
	case []any:
		buf = append(buf, '[')
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = r.appendValue(buf, path, x, onPath); !ok {
				return nil, false
			}
		}
		buf = append(buf, ']')
	case string:
		if kind := Detect(v); kind != "" {
			v = "[REDACTED:" + kind + "]"
		}
		buf = appendString(buf, v)
	case json.Number:
		// As json.Marshal writes a Number: its text, "0" when empty.
		if v == "" {
			v = "0"
		}
		if !validNumber(string(v)) {
			return nil, false
		}
		buf = append(buf, v...)
	case bool:
		buf = strconv.AppendBool(buf, v)
	case nil:
		buf = append(buf, "null"...)
	default:
		// Not something decoding JSON makes: as json.Marshal writes it.
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		buf = append(buf, b...)
	}
	return buf, true
}

// appendObject is appendValue for an object: its members sorted by name.
func (r *Redactor) appendObject(buf []byte, path []string, m map[string]any, onPath bool) ([]byte, bool) {
	// Arguments objects are small: sort their names on the stack.
	var scratch [16]string
	keys := scratch[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(appendString(buf, k), ':')
		lk := strings.ToLower(k)
		p := append(path, lk) // the members' paths share one backing array, depth first
		full, prefix := r.matchPath(p, onPath)
		if full || r.named(lk) || secretName(lk) {
			buf = appendString(buf, Redacted)
			continue
		}
		var ok bool
		if buf, ok = r.appendValue(buf, p, m[k], prefix); !ok {
			return nil, false
		}
	}
	return append(buf, '}'), true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as json.Marshal writes
// one: '"' and '\\' escaped, \b \f \n \r \t short, other control
// characters and '<', '>', '&' as \u00XX, U+2028 and U+2029 as \u2028 and
// \u2029, and invalid UTF-8 as \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= ' ' && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// validNumber reports whether s is a JSON number, as json.Marshal checks
// a json.Number before writing it.
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = strings.TrimLeft(s[1:], "0123456789")
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		s = strings.TrimLeft(s[2:], "0123456789")
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		if !isDigit(s[0]) {
			return false
		}
		s = strings.TrimLeft(s, "0123456789")
	}
	return s == ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

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
