package argjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"unicode/utf8"
)

// Decode decodes a call's arguments: absent or null means no arguments;
// anything else must be one JSON object without duplicate keys (a parser
// that keeps the first of two keys would see a different call than the
// policy did). Numbers stay json.Number so they can be converted exactly.
// Errors name the problem and at most a truncated key, never a value.
func Decode(raw []byte) (map[string]any, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return map[string]any{}, nil
	}
	if err := checkDuplicateKeys(trimmed); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New("arguments are not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("arguments are not valid JSON: data after the value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("arguments: want object, got %s", TypeName(v))
	}
	return obj, nil
}

// checkDuplicateKeys reports the first object key of a JSON text that
// appears twice in one object.
func checkDuplicateKeys(data []byte) error {
	if json.Valid(data) {
		return validDuplicateKeys(data)
	}
	// The decoder tells invalid JSON from a duplicate before the error.
	return decodeDuplicateKeys(data)
}

// keyFrame is one open object or array of validDuplicateKeys. An object's
// keys are a slice while few, then a set.
type keyFrame struct {
	object bool
	keys   []string
	set    map[string]struct{}
}

const keyFrameSliceMax = 16

// add records key and reports whether the object already had it.
func (f *keyFrame) add(key string) (dup bool) {
	if f.set != nil {
		_, dup = f.set[key]
		f.set[key] = struct{}{}
		return dup
	}
	if slices.Contains(f.keys, key) {
		return true
	}
	f.keys = append(f.keys, key)
	if len(f.keys) > keyFrameSliceMax {
		f.set = make(map[string]struct{}, 2*len(f.keys))
		for _, k := range f.keys {
			f.set[k] = struct{}{}
		}
	}
	return false
}

// validDuplicateKeys is checkDuplicateKeys for a text json.Valid accepted,
// in one pass over its bytes, without recursion: it reports what
// decodeDuplicateKeys reports for the same text.
func validDuplicateKeys(data []byte) error {
	var stack []keyFrame
	wantKey := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case ' ', '\t', '\r', '\n', ':':
		case '{', '[':
			if n := len(stack); n < cap(stack) {
				stack = stack[:n+1] // reuse a closed frame's slice
				stack[n] = keyFrame{object: c == '{', keys: stack[n].keys[:0]}
			} else {
				stack = append(stack, keyFrame{object: c == '{'})
			}
			wantKey = c == '{'
		case '}', ']':
			stack = stack[:len(stack)-1]
			wantKey = false
		case ',':
			wantKey = stack[len(stack)-1].object
		case '"':
			end := i + 1
			plain := true
			for ; data[end] != '"'; end++ {
				switch b := data[end]; {
				case b == '\\':
					plain = false
					end++
				case b >= utf8.RuneSelf:
					plain = false
				}
			}
			if wantKey {
				key, err := objectKey(data[i:end+1], plain)
				if err != nil {
					return errors.New("arguments are not valid JSON")
				}
				if stack[len(stack)-1].add(key) {
					return fmt.Errorf("arguments: duplicate key %q", Truncate(key, MaxSegmentBytes))
				}
				wantKey = false
			}
			i = end
		}
		// Numbers and literals hold none of the bytes above: skipped.
	}
	return nil
}

// objectKey decodes a quoted key as the decoder does: unescaped, with
// invalid UTF-8 replaced by U+FFFD.
func objectKey(q []byte, plain bool) (string, error) {
	if plain {
		return string(q[1 : len(q)-1]), nil
	}
	var key string
	err := json.Unmarshal(q, &key)
	return key, err
}

// decodeDuplicateKeys is checkDuplicateKeys token by token with
// encoding/json's decoder, for any text.
func decodeDuplicateKeys(data []byte) error {
	type frame struct {
		keys    map[string]struct{} // nil for an array
		wantKey bool
	}
	var stack []frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errors.New("arguments are not valid JSON")
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].wantKey {
			if key, ok := tok.(string); ok {
				if _, dup := stack[n-1].keys[key]; dup {
					return fmt.Errorf("arguments: duplicate key %q", Truncate(key, MaxSegmentBytes))
				}
				stack[n-1].keys[key] = struct{}{}
				stack[n-1].wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]struct{}{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// TypeName names the JSON type of a decoded value ("integer" for an
// integral number).
func TypeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if n, err := ParseNumber(string(v)); err == nil {
			if _, exact, _ := n.Scaled(0); exact {
				return "integer"
			}
		}
		return "number"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
