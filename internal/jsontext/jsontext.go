// Package jsontext holds the rules every JSON text a caller sends the
// gateway must meet before anything judges it, whatever the protocol:
// valid UTF-8, no escaped lone surrogates, and bounded nesting.
//
// Why: Go's JSON decoder turns invalid UTF-8 and lone surrogate escapes
// (`\ud800`) into U+FFFD, so validation and Cedar would judge one string
// while the raw bytes forwarded upstream carry another. RFC 8259 requires
// UTF-8 and RFC 7493 (I-JSON) forbids lone surrogates; refusing them means
// what is judged is exactly what is forwarded. Deep nesting costs stack
// and time in every later parser (schema validation, Cedar conversion), so
// it is refused before any of them runs.
package jsontext

import (
	"fmt"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting depth callers' JSON may reach: far above
// any real tool argument, far below what costs anything.
const DefaultMaxDepth = 64

// Error says why a JSON text is refused. Its message is safe to send to
// the caller.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (at byte %d)", e.Reason, e.Offset) }

// Check reports why b breaks the rules: invalid UTF-8, an escaped lone
// surrogate, or arrays and objects nested deeper than maxDepth. It reads b
// once and allocates nothing. It does not check JSON syntax otherwise
// (callers parse b next); on text that is not JSON it still terminates,
// in time linear in len(b).
func Check(b []byte, maxDepth int) error {
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return &Error{Offset: i, Reason: "the JSON text is not valid UTF-8"}
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '[', '{':
			depth++
			if depth > maxDepth {
				return &Error{Offset: i, Reason: fmt.Sprintf("the JSON text nests deeper than %d levels", maxDepth)}
			}
		case ']', '}':
			depth--
		case '"':
			end, err := skipString(b, i)
			if err != nil {
				return err
			}
			i = end
		}
	}
	return nil
}

// skipString returns the index of the closing quote of the string opening
// at b[start], checking its \u escapes for lone surrogates.
func skipString(b []byte, start int) (int, error) {
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i, nil
		case '\\':
			if i+1 >= len(b) {
				return len(b), nil
			}
			if b[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(b, i+2)
			if !ok {
				i++
				continue // not JSON; the parser will say so
			}
			switch {
			case r >= 0xD800 && r <= 0xDBFF:
				// A high surrogate must be followed by an escaped low one.
				if i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					if lo, ok := hex4(b, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 11
						continue
					}
				}
				return 0, &Error{Offset: i, Reason: "the JSON text escapes a lone surrogate (\\ud800–\\udbff without its pair)"}
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, &Error{Offset: i, Reason: "the JSON text escapes a lone surrogate (\\udc00–\\udfff without its pair)"}
			}
			i += 5
		}
	}
	return len(b), nil
}

// hex4 decodes the four hex digits at b[at:at+4].
func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}
