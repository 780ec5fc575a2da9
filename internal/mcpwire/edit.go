package mcpwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
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
	return appendMembers(nil, b)
}

// appendMembers is Members appending to dst[:0]: a caller that only looks
// at the list passes a slice of an array on its stack, which holds the
// members of most objects.
func appendMembers(dst []Member, b []byte) ([]Member, error) {
	out, err := members(dst, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, errNotJSON // truncated
	}
	return out, err
}

// memberScratch is how many members the stack arrays of appendMembers'
// callers hold.
const memberScratch = 16

func members(dst []Member, b []byte) ([]Member, error) {
	if json.Valid(b) {
		return validMembers(dst, b)
	}
	// Invalid JSON is rare on the call path: the decoder reports exactly
	// what is wrong with it.
	return decodeMembers(b)
}

// validMembers is members for b that json.Valid accepted: one pass that
// only finds where each key and value begins and ends, without the
// decoder's allocations. It returns what decodeMembers returns for the
// same input, appended to dst[:0].
func validMembers(dst []Member, b []byte) ([]Member, error) {
	out := dst[:0]
	err := eachValidMember(b, func(key string, start, end int) error {
		if slices.ContainsFunc(out, func(m Member) bool { return m.Key == key }) {
			return fmt.Errorf("member %q appears twice", truncate(key, 64))
		}
		if cap(out) == 0 {
			out = make([]Member, 0, 8)
		}
		out = append(out, Member{Key: key, Start: start, End: end})
		return nil
	})
	if err != nil || len(out) == 0 {
		return nil, err
	}
	return out, nil
}

// EachMember calls f with the key and the value's text of each member of
// the JSON object b, in order and duplicate keys included, as
// encoding/json's decoder meets them (keys unescaped, invalid UTF-8
// replaced by U+FFFD), and returns f's first error. value aliases b. b
// that is not one JSON object is an error.
func EachMember(b []byte, f func(key string, value []byte) error) error {
	if !json.Valid(b) {
		return errNotJSON
	}
	return eachValidMember(b, func(key string, start, end int) error { return f(key, b[start:end]) })
}

// eachValidMember is EachMember for b that json.Valid accepted, giving
// each value's span in b.
func eachValidMember(b []byte, f func(key string, start, end int) error) error {
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if b[i] == '}' {
		return nil
	}
	for {
		kEnd := skipString(b, i)
		key, err := memberKey(b[i:kEnd])
		if err != nil {
			return err
		}
		start := skipSpace(b, skipSpace(b, kEnd)+1) // past the ':'
		end := skipValue(b, start)
		if err := f(key, start, end); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if b[i] == '}' {
			return nil
		}
		i = skipSpace(b, i+1) // past the ','
	}
}

var errNotObject = errors.New("the message must be a JSON object")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index just past the valid JSON string at b[i].
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++ // the escaped byte (a 'u' escape's hex digits need no care)
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index just past the valid JSON value at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // a number or a literal
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// memberKey decodes the quoted key q as the decoder does: unescaped, with
// invalid UTF-8 replaced by U+FFFD.
func memberKey(q []byte) (string, error) {
	plain := true
	for _, c := range q[1 : len(q)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return internKey(q[1 : len(q)-1]), nil
	}
	var key string
	if err := json.Unmarshal(q, &key); err != nil {
		return "", err
	}
	return key, nil
}

// internKey returns k as a string, without allocating for the keys MCP's
// envelopes and tools/call params carry.
func internKey(k []byte) string {
	switch string(k) { // no allocation: the compiler compares in place
	case "jsonrpc":
		return "jsonrpc"
	case "id":
		return "id"
	case "method":
		return "method"
	case "params":
		return "params"
	case "result":
		return "result"
	case "error":
		return "error"
	case "name":
		return "name"
	case "arguments":
		return "arguments"
	case "_meta":
		return "_meta"
	case "progressToken":
		return "progressToken"
	case "content":
		return "content"
	case "isError":
		return "isError"
	case "resultType":
		return "resultType"
	case "structuredContent":
		return "structuredContent"
	}
	return string(k)
}

// decodeMembers is members by encoding/json's decoder, for any input.
func decodeMembers(b []byte) ([]Member, error) {
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
		return nil, errNotObject
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
	var scratch [memberScratch]Member
	members, err := appendMembers(scratch[:0], b)
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
	var scratch [memberScratch]Member
	members, err := appendMembers(scratch[:0], b)
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
