package detector

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of a JSON path.
const (
	// MaxPathLen bounds a path's source.
	MaxPathLen = 256
	// MaxPathSteps bounds a path's steps.
	MaxPathSteps = 16
)

// step is one step of a Path: a member name, an index, or every item.
type step struct {
	key   string
	index int // -1 for a member name or a wildcard
	all   bool
}

// Path is where in a JSON document to count items, in a small subset of
// JSONPath: "$" is the document, ".name" or ["name"] a member, [N] an
// array item, [*] every item of an array (the counts under each are
// added up). "$.rows", "$.results[*].rows", "rows" ("$" may be left out).
type Path struct {
	src   string
	steps []step
}

// String is the path as written.
func (p Path) String() string { return p.src }

// ParsePath reads a path (see Path). Its errors are safe to show.
func ParsePath(src string) (Path, error) {
	p := Path{src: src}
	if src == "" || len(src) > MaxPathLen {
		return p, fmt.Errorf("a JSON path is 1-%d bytes", MaxPathLen)
	}
	s := strings.TrimPrefix(src, "$")
	if s != "" && s[0] != '.' && s[0] != '[' {
		s = "." + s
	}
	for s != "" {
		if len(p.steps) == MaxPathSteps {
			return p, fmt.Errorf("a JSON path has at most %d steps", MaxPathSteps)
		}
		switch s[0] {
		case '.':
			j := 1
			for j < len(s) && (wordByte(s[j]) || s[j] == '-') {
				j++
			}
			if j == 1 {
				return p, fmt.Errorf("JSON path %q: a member name must follow '.' (use [\"name\"] for other names)", src)
			}
			p.steps = append(p.steps, step{key: s[1:j], index: -1})
			s = s[j:]
		case '[':
			end := strings.IndexByte(s, ']')
			if strings.HasPrefix(s, `["`) {
				q, err := quotedEnd(s[1:])
				q++ // the closing quote's index in s
				if err != nil || q+1 >= len(s) || s[q+1] != ']' {
					return p, fmt.Errorf("JSON path %q: a quoted member name must be a JSON string followed by ']'", src)
				}
				var key string
				if err := json.Unmarshal([]byte(s[1:q+1]), &key); err != nil {
					return p, fmt.Errorf("JSON path %q: bad quoted member name", src)
				}
				p.steps = append(p.steps, step{key: key, index: -1})
				s = s[q+2:]
				continue
			}
			if end < 0 {
				return p, fmt.Errorf("JSON path %q: '[' without ']'", src)
			}
			in := s[1:end]
			switch n, err := strconv.Atoi(in); {
			case in == "*":
				p.steps = append(p.steps, step{index: -1, all: true})
			case err == nil && n >= 0 && in[0] != '+':
				p.steps = append(p.steps, step{index: n})
			default:
				return p, fmt.Errorf("JSON path %q: [%s] is neither an index nor [*]", src, in)
			}
			s = s[end+1:]
		default:
			return p, fmt.Errorf("JSON path %q: unexpected %q", src, s[:1])
		}
	}
	return p, nil
}

// quotedEnd returns the index of the closing quote of the JSON string at
// the start of s.
func quotedEnd(s string) (int, error) {
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j, nil
		}
	}
	return 0, errors.New("unterminated string")
}

// Count counts the items at p in the JSON document b: an array's items or
// an object's members; with [*] steps, the counts under every item added
// up. found is false when nothing countable is at p. Only the parts of b
// on the path are looked into; the rest is skipped in one pass, so the
// cost is linear in b and the memory constant (nesting below the path is
// followed with a stack as deep as the document).
func Count(b []byte, p Path) (n int, found bool, err error) {
	i := skipSpace(b, 0)
	n, found, end, err := count(b, i, p.steps)
	if err != nil {
		return 0, false, err
	}
	if j := skipSpace(b, end); j != len(b) {
		return 0, false, syntaxAt(j)
	}
	return n, found, nil
}

// count counts under the value at i for steps and returns the value's end.
// It recurses once per path step, at most MaxPathSteps deep.
func count(b []byte, i int, steps []step) (n int, found bool, end int, err error) {
	if i >= len(b) {
		return 0, false, 0, syntaxAt(i)
	}
	if len(steps) == 0 {
		return countHere(b, i)
	}
	st := steps[0]
	switch {
	case b[i] == '{' && st.index < 0 && !st.all:
		j := skipSpace(b, i+1)
		if j < len(b) && b[j] == '}' {
			return 0, false, j + 1, nil
		}
		for {
			if j >= len(b) || b[j] != '"' {
				return 0, false, 0, syntaxAt(j)
			}
			kend, escaped, err := stringEnd(b, j)
			if err != nil {
				return 0, false, 0, err
			}
			key, err := decodeString(b, j, kend, escaped)
			if err != nil {
				return 0, false, 0, err
			}
			v := skipSpace(b, kend)
			if v >= len(b) || b[v] != ':' {
				return 0, false, 0, syntaxAt(v)
			}
			v = skipSpace(b, v+1)
			var vend int
			if key == st.key {
				m, f, e, err := count(b, v, steps[1:])
				if err != nil {
					return 0, false, 0, err
				}
				n, found, vend = n+m, found || f, e
			} else if vend, err = skipValue(b, v); err != nil {
				return 0, false, 0, err
			}
			j = skipSpace(b, vend)
			if j < len(b) && b[j] == '}' {
				return n, found, j + 1, nil
			}
			if j >= len(b) || b[j] != ',' {
				return 0, false, 0, syntaxAt(j)
			}
			j = skipSpace(b, j+1)
		}
	case b[i] == '[' && (st.all || st.index >= 0):
		j := skipSpace(b, i+1)
		if j < len(b) && b[j] == ']' {
			return 0, st.all, j + 1, nil
		}
		for k := 0; ; k++ {
			var vend int
			if st.all || k == st.index {
				m, f, e, err := count(b, j, steps[1:])
				if err != nil {
					return 0, false, 0, err
				}
				n, found, vend = n+m, found || f, e
			} else if vend, err = skipValue(b, j); err != nil {
				return 0, false, 0, err
			}
			j = skipSpace(b, vend)
			if j < len(b) && b[j] == ']' {
				return n, found, j + 1, nil
			}
			if j >= len(b) || b[j] != ',' {
				return 0, false, 0, syntaxAt(j)
			}
			j = skipSpace(b, j+1)
		}
	}
	end, err = skipValue(b, i)
	return 0, false, end, err
}

// countHere counts the items of the array or the members of the object at
// i.
func countHere(b []byte, i int) (int, bool, int, error) {
	if b[i] != '[' && b[i] != '{' {
		end, err := skipValue(b, i)
		return 0, false, end, err
	}
	object := b[i] == '{'
	j := skipSpace(b, i+1)
	if j < len(b) && b[j] == closer(b[i]) {
		return 0, true, j + 1, nil
	}
	n := 0
	for {
		if object {
			var err error
			if j, err = skipKey(b, j); err != nil {
				return 0, false, 0, err
			}
		}
		end, err := skipValue(b, j)
		if err != nil {
			return 0, false, 0, err
		}
		n++
		j = skipSpace(b, end)
		if j < len(b) && b[j] == closer(b[i]) {
			return n, true, j + 1, nil
		}
		if j >= len(b) || b[j] != ',' {
			return 0, false, 0, syntaxAt(j)
		}
		j = skipSpace(b, j+1)
	}
}
