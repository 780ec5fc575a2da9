package mcpwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Member is one member of a JSON object: its key and the byte span of its
// value in the object's text.
type Member struct {
	Key        string
	Start, End int
}

var errNotJSON = errors.New("not a JSON value")

// Members lists the members of the JSON object b, in order, with the exact
// span of each value, and checks that b is one object and nothing else. A
// key given twice is an error: two readers of the same message could
// otherwise disagree about it.
func Members(b []byte) ([]Member, error) {
	out, err := members(b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, errNotJSON // truncated
	}
	return out, err
}

func members(b []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errNotJSON
		}
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		if !json.Valid(b) {
			return nil, errNotJSON
		}
		return nil, errors.New("the message must be a JSON object")
	}
	var out []Member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotJSON
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		end := int(dec.InputOffset())
		if slices.ContainsFunc(out, func(m Member) bool { return m.Key == key }) {
			return nil, fmt.Errorf("member %q appears twice", truncate(key, 64))
		}
		out = append(out, Member{Key: key, Start: end - len(raw), End: end})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errNotJSON // data after the object: not one JSON value
	}
	return out, nil
}

// Find returns the value of member key of object b, or nil.
func Find(b []byte, key string) (json.RawMessage, error) {
	members, err := Members(b)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.Key == key {
			return b[m.Start:m.End], nil
		}
	}
	return nil, nil
}

// Set returns a copy of object b with member key's value replaced by
// value (valid JSON), or the member appended when b has none; every other
// byte is kept.
func Set(b []byte, key string, value []byte) ([]byte, error) {
	members, err := Members(b)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.Key == key {
			out := make([]byte, 0, len(b)-(m.End-m.Start)+len(value))
			out = append(out, b[:m.Start]...)
			out = append(out, value...)
			return append(out, b[m.End:]...), nil
		}
	}
	end := bytes.LastIndexByte(b, '}')
	k, err := json.Marshal(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(k)+len(value)+2)
	out = append(out, b[:end]...)
	if len(members) > 0 {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, value...)
	return append(out, b[end:]...), nil
}

// SetPath is Set on the object at path inside b (each element a member
// key; the objects on the way must exist).
func SetPath(b []byte, path []string, value []byte) ([]byte, error) {
	if len(path) == 1 {
		return Set(b, path[0], value)
	}
	inner, err := Find(b, path[0])
	if err != nil {
		return nil, err
	}
	if inner == nil || !IsObject(inner) {
		return nil, fmt.Errorf("member %q is not an object", path[0])
	}
	changed, err := SetPath(inner, path[1:], value)
	if err != nil {
		return nil, err
	}
	return Set(b, path[0], changed)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
