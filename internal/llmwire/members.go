package llmwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// member is one member of a JSON object: its key and the exact byte span
// of its value in the object's text.
type member struct {
	key        string
	start, end int
}

var (
	errNotObject = errors.New("the request body must be one JSON object")
	errDuplicate = errors.New("a member appears twice")
)

// members lists the top-level members of the JSON object b with the span
// of each value. A key given twice is refused: the gateway and the
// provider could otherwise read different values.
func members(b []byte) ([]member, error) {
	if !json.Valid(b) {
		return nil, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, errNotObject
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errNotObject
		}
		end := int(dec.InputOffset())
		if seen[key] {
			return nil, fmt.Errorf("%w: %q", errDuplicate, truncate(key, 64))
		}
		seen[key] = true
		out = append(out, member{key: key, start: end - len(raw), end: end})
	}
	if _, err := dec.Token(); err != nil {
		return nil, errNotObject
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errNotObject
	}
	return out, nil
}

// find returns the value of key among ms in b, or nil.
func find(b []byte, ms []member, key string) []byte {
	for _, m := range ms {
		if m.key == key {
			return b[m.start:m.end]
		}
	}
	return nil
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
