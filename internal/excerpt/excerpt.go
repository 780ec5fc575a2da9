// Package excerpt makes text that an outside party controls (an upstream's
// error page, a JSON-RPC error message) safe to quote in an error or a log
// line: printable ASCII only, credential-looking values masked, and short.
// The gateway quotes nothing from an upstream beyond such an excerpt, so
// pointing an upstream at an internal service shows no more than a hint of
// its answer, and an upstream that echoes the request's headers does not
// echo the credential the gateway attached.
package excerpt

import (
	"regexp"
	"strings"
)

// Max is the default bound of an excerpt, in bytes.
const Max = 120

// Masked replaces what is removed.
const Masked = "[masked]"

var (
	// "Bearer x", "Basic x" and the like: an Authorization scheme and its
	// credential.
	schemeRE = regexp.MustCompile(`(?i)\b(bearer|basic|digest|negotiate|token)\s+[A-Za-z0-9._~+/=:-]{4,}`)
	// A header or field whose name says it holds a credential, followed by
	// ':' or '=' and its value (quoted, or up to a separator; with its
	// scheme when it has one).
	fieldRE = regexp.MustCompile(`(?i)([A-Za-z0-9_-]*(?:authorization|cookie|token|secret|password|passwd|api[_-]?key|private[_-]?key|session|credential)[A-Za-z0-9_-]*"?\s*[:=]\s*)((?:(?:bearer|basic|digest|negotiate|token)\s+)?(?:"[^"]*"|'[^']*'|[^\s,;&"']+))`)
	// user information in a URL ("scheme://user:pass@").
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@`)
)

// Text returns an excerpt of s of at most n bytes (Max when n <= 0): each
// value in hide replaced by Masked, credential-looking values masked,
// whitespace runs folded into one space, every other byte that is not
// printable ASCII shown as '?', and the end cut with "..." when it is
// longer.
func Text(s string, n int, hide ...string) string {
	if n <= 0 {
		n = Max
	}
	for _, h := range hide {
		if len(h) >= 4 {
			s = strings.ReplaceAll(s, h, Masked)
		}
	}
	// Bound the work before the regexps run: what lies past a few times
	// the bound rarely reaches the result, and never a hidden value.
	if len(s) > 8*n+1024 {
		s = s[:8*n+1024]
	}
	s = fieldRE.ReplaceAllString(s, "${1}"+Masked)
	s = schemeRE.ReplaceAllString(s, "$1 "+Masked)
	s = userinfoRE.ReplaceAllString(s, "${1}"+Masked+"@")
	var b strings.Builder
	space, odd := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			space, odd = !(b.Len() == 0), false
		case c >= 0x21 && c <= 0x7e:
			if space {
				b.WriteByte(' ')
			}
			b.WriteByte(c)
			space, odd = false, false
		default:
			if odd {
				continue
			}
			if space {
				b.WriteByte(' ')
			}
			b.WriteByte('?')
			space, odd = false, true
		}
	}
	out := b.String()
	if len(out) > n {
		keep := max(n-3, 0)
		out = out[:keep] + "..."
	}
	return out
}
