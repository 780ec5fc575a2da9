package detector

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reads JSON documents the way inspection needs without
// building them: it skips values, walks string leaves and counts the items
// at a path. Nothing here recurses on the document (nesting is followed
// with an explicit stack), and a document costs one pass.

var errSyntax = errors.New("not valid JSON")

// MaxDepth bounds how deeply a document's arrays and objects may nest:
// deeper documents are refused (an error), which bounds the memory a walk
// takes.
const MaxDepth = 512

// ErrTooDeep is the error of a document nested deeper than MaxDepth.
var ErrTooDeep = fmt.Errorf("nested deeper than %d levels", MaxDepth)

func syntaxAt(i int) error { return fmt.Errorf("%w (at byte %d)", errSyntax, i) }

func space(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && space(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string whose
// opening quote is at i, and whether it holds escapes.
func stringEnd(b []byte, i int) (int, bool, error) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1, escaped, nil
		case '\\':
			escaped = true
			j++
		default:
			if b[j] < 0x20 {
				return 0, false, syntaxAt(j)
			}
		}
	}
	return 0, false, syntaxAt(len(b))
}

// scalarEnd returns the end of a number or literal starting at i.
func scalarEnd(b []byte, i int) (int, error) {
	j := i
	for j < len(b) {
		c := b[j]
		if isAlnum(c) || c == '-' || c == '+' || c == '.' {
			j++
			continue
		}
		break
	}
	switch v := string(b[i:j]); {
	case j == i:
		return 0, syntaxAt(i)
	case v == "true", v == "false", v == "null":
	default:
		if _, err := strconv.ParseFloat(v, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, syntaxAt(i)
		}
	}
	return j, nil
}

// skipValue returns the end of the JSON value starting at i (after
// leading space), following nesting with an explicit stack.
func skipValue(b []byte, i int) (int, error) {
	var stack []byte
	i = skipSpace(b, i)
	for {
		if i >= len(b) {
			return 0, syntaxAt(i)
		}
		switch c := b[i]; c {
		case '{', '[':
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer(c) {
				i++
				break
			}
			if len(stack) == MaxDepth {
				return 0, ErrTooDeep
			}
			stack = append(stack, c)
			if c == '{' {
				var err error
				if i, err = skipKey(b, i); err != nil {
					return 0, err
				}
			}
			continue
		case '"':
			end, _, err := stringEnd(b, i)
			if err != nil {
				return 0, err
			}
			i = end
		default:
			end, err := scalarEnd(b, i)
			if err != nil {
				return 0, err
			}
			i = end
		}
		// After a value: close containers or move to the next member.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, syntaxAt(i)
			}
			top := stack[len(stack)-1]
			if b[i] == closer(top) {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return 0, syntaxAt(i)
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				var err error
				if i, err = skipKey(b, i); err != nil {
					return 0, err
				}
			}
			break
		}
	}
}

func closer(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}

// skipKey skips `"key" :` at i and returns where the member's value starts.
func skipKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, syntaxAt(i)
	}
	end, _, err := stringEnd(b, i)
	if err != nil {
		return 0, err
	}
	j := skipSpace(b, end)
	if j >= len(b) || b[j] != ':' {
		return 0, syntaxAt(j)
	}
	return skipSpace(b, j+1), nil
}

// decodeString returns the string value of the JSON string b[i:end].
func decodeString(b []byte, i, end int, escaped bool) (string, error) {
	if !escaped {
		raw := b[i+1 : end-1]
		if !utf8.Valid(raw) {
			return replaceInvalid(raw), nil
		}
		return string(raw), nil
	}
	var s string
	if err := json.Unmarshal(b[i:end], &s); err != nil {
		return "", syntaxAt(i)
	}
	return s, nil
}

// PathElem is one step of a path inside a JSON document: a member name, or
// an array index when Key is "" and Index ≥ 0.
type PathElem struct {
	Key   string
	Index int
}

// FormatPath writes a path as "rows[3].email" (member names that are not
// simple identifiers are quoted: ["a b"]).
func FormatPath(prefix string, elems []PathElem) string {
	var sb strings.Builder
	sb.WriteString(prefix)
	for _, e := range elems {
		if e.Index >= 0 && e.Key == "" {
			sb.WriteByte('[')
			sb.WriteString(strconv.Itoa(e.Index))
			sb.WriteByte(']')
			continue
		}
		if simpleName(e.Key) {
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(e.Key)
			continue
		}
		sb.WriteByte('[')
		sb.WriteString(strconv.Quote(e.Key))
		sb.WriteByte(']')
	}
	return sb.String()
}

func simpleName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !wordByte(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// Leaf is a string value inside a JSON document.
type Leaf struct {
	// Path is the leaf's path (shared with the walk: copy it to keep it).
	Path []PathElem
	// Start and End are the bytes of the encoded string, quotes included.
	Start, End int
	// Value is the decoded string.
	Value string
}

// Leaves calls fn for each string value of the JSON document b (member
// names are not values), in document order, until fn returns false. It
// returns an error, after the leaves before it, when b is not one valid
// JSON value.
func Leaves(b []byte, fn func(Leaf) bool) error {
	type frame struct {
		object bool
		index  int
	}
	var stack []frame
	var path []PathElem
	i := skipSpace(b, 0)
	for {
		if i >= len(b) {
			return syntaxAt(i)
		}
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) == MaxDepth {
				return ErrTooDeep
			}
			stack = append(stack, frame{object: c == '{'})
			i = skipSpace(b, i+1)
			if i < len(b) && (c == '{' && b[i] == '}' || c == '[' && b[i] == ']') {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			var err error
			if path, i, err = enter(b, i, c == '{', path); err != nil {
				return err
			}
			continue
		case '"':
			end, escaped, err := stringEnd(b, i)
			if err != nil {
				return err
			}
			v, err := decodeString(b, i, end, escaped)
			if err != nil {
				return err
			}
			if !fn(Leaf{Path: path, Start: i, End: end, Value: v}) {
				return nil
			}
			i = end
		default:
			end, err := scalarEnd(b, i)
			if err != nil {
				return err
			}
			i = end
		}
		// After a value: leave finished containers, or step to the next
		// member or item.
		for {
			if len(stack) == 0 {
				if j := skipSpace(b, i); j != len(b) {
					return syntaxAt(j)
				}
				return nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return syntaxAt(i)
			}
			top := &stack[len(stack)-1]
			switch b[i] {
			case ',':
				path = path[:len(path)-1]
				top.index++
				var err error
				if top.object {
					if path, i, err = enter(b, skipSpace(b, i+1), true, path); err != nil {
						return err
					}
				} else {
					path = append(path, PathElem{Index: top.index})
					i = skipSpace(b, i+1)
				}
			case '}', ']':
				if (b[i] == '}') != top.object {
					return syntaxAt(i)
				}
				stack = stack[:len(stack)-1]
				path = path[:len(path)-1]
				i++
				continue
			default:
				return syntaxAt(i)
			}
			break
		}
	}
}

// enter reads the start of a container's first (or next) member at i: an
// object's key and colon, or nothing for an array item; it pushes the
// member's path element.
func enter(b []byte, i int, object bool, path []PathElem) ([]PathElem, int, error) {
	if !object {
		return append(path, PathElem{Index: 0}), i, nil
	}
	if i >= len(b) || b[i] != '"' {
		return nil, 0, syntaxAt(i)
	}
	end, escaped, err := stringEnd(b, i)
	if err != nil {
		return nil, 0, err
	}
	key, err := decodeString(b, i, end, escaped)
	if err != nil {
		return nil, 0, err
	}
	j := skipSpace(b, end)
	if j >= len(b) || b[j] != ':' {
		return nil, 0, syntaxAt(j)
	}
	return append(path, PathElem{Key: key, Index: -1}), skipSpace(b, j+1), nil
}

// replaceInvalid returns b with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json decodes it.
func replaceInvalid(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			sb.WriteRune(utf8.RuneError)
			b = b[1:]
			continue
		}
		sb.Write(b[:n])
		b = b[n:]
	}
	return sb.String()
}

// ValueSpan is where a value lies in a document: bytes [Start, End).
type ValueSpan struct{ Start, End int }

// Items lists the items of the JSON array b with the span of each, and
// checks that b is one array and nothing else (items nested deeper than
// MaxDepth are an error).
func Items(b []byte) ([]ValueSpan, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, errors.New("not a JSON array")
	}
	var out []ValueSpan
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		i++
	} else {
		for {
			end, err := skipValue(b, i)
			if err != nil {
				return nil, err
			}
			out = append(out, ValueSpan{Start: i, End: end})
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			if i >= len(b) || b[i] != ',' {
				return nil, syntaxAt(i)
			}
			i = skipSpace(b, i+1)
		}
	}
	if j := skipSpace(b, i); j != len(b) {
		return nil, syntaxAt(j)
	}
	return out, nil
}

// DecodeString returns the value of the JSON string b (quotes included),
// as encoding/json decodes it.
func DecodeString(b []byte) (string, error) {
	if len(b) < 2 || b[0] != '"' {
		return "", errors.New("not a JSON string")
	}
	end, escaped, err := stringEnd(b, 0)
	if err != nil {
		return "", err
	}
	if end != len(b) {
		return "", syntaxAt(end)
	}
	return decodeString(b, 0, end, escaped)
}

// Member is one member of a JSON object: its key and the span of its
// value.
type Member struct {
	Key        string
	Start, End int
}

// Members lists the members of the JSON object b, in order, with the span
// of each value, in one pass, and checks that b is one object and nothing
// else. A key given twice is an error: two readers of the same document
// could otherwise disagree about it.
func Members(b []byte) ([]Member, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []Member
	var seen map[string]bool
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, syntaxAt(i)
			}
			kend, escaped, err := stringEnd(b, i)
			if err != nil {
				return nil, err
			}
			key, err := decodeString(b, i, kend, escaped)
			if err != nil {
				return nil, err
			}
			v := skipSpace(b, kend)
			if v >= len(b) || b[v] != ':' {
				return nil, syntaxAt(v)
			}
			v = skipSpace(b, v+1)
			end, err := skipValue(b, v)
			if err != nil {
				return nil, err
			}
			if len(out) >= 8 && seen == nil {
				seen = make(map[string]bool, 16)
				for _, m := range out {
					seen[m.Key] = true
				}
			}
			dup := seen[key]
			if seen == nil {
				dup = slices.ContainsFunc(out, func(m Member) bool { return m.Key == key })
			} else {
				seen[key] = true
			}
			if dup {
				return nil, fmt.Errorf("member %q appears twice", head64(key))
			}
			out = append(out, Member{Key: key, Start: v, End: end})
			i = skipSpace(b, end)
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			if i >= len(b) || b[i] != ',' {
				return nil, syntaxAt(i)
			}
			i = skipSpace(b, i+1)
		}
	}
	if j := skipSpace(b, i); j != len(b) {
		return nil, syntaxAt(j)
	}
	return out, nil
}

// head64 cuts s to 64 bytes for an error.
func head64(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
