package argjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	var v any
	if json.Valid(trimmed) {
		d := validDecoder{data: trimmed}
		var err error
		if v, err = d.value(); err != nil {
			return nil, err
		}
	} else {
		// The decoder tells invalid JSON from a duplicate before the error.
		if err := decodeDuplicateKeys(trimmed); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var decoded any // its own: decoding into v would move v to the heap
		if err := dec.Decode(&decoded); err != nil {
			return nil, errors.New("arguments are not valid JSON")
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errors.New("arguments are not valid JSON: data after the value")
		}
		v = decoded
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("arguments: want object, got %s", TypeName(v))
	}
	return obj, nil
}

// validDecoder decodes a JSON text json.Valid accepted, in one pass over
// its bytes: into the values encoding/json's decoder makes with UseNumber
// (map[string]any, []any, string, json.Number, bool, nil), reporting the
// first object key in the text that its object already had, as
// decodeDuplicateKeys does. Being valid, the text needs no syntax checks,
// and its nesting is bounded by json.Valid's limit.
type validDecoder struct {
	data []byte
	i    int
}

// value decodes the value at d.i and moves past it.
func (d *validDecoder) value() (any, error) {
	d.skipSpace()
	switch d.data[d.i] {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.str()
	case 't':
		d.i += len("true")
		return true, nil
	case 'f':
		d.i += len("false")
		return false, nil
	case 'n':
		d.i += len("null")
		return nil, nil
	}
	start := d.i
	for d.i < len(d.data) && isNumberByte(d.data[d.i]) {
		d.i++
	}
	return json.Number(d.data[start:d.i]), nil
}

// object decodes the object at d.i.
func (d *validDecoder) object() (any, error) {
	m := map[string]any{}
	d.i++ // {
	d.skipSpace()
	if d.data[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.skipSpace()
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("arguments: duplicate key %q", Truncate(key, MaxSegmentBytes))
		}
		d.skipSpace()
		d.i++ // :
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[key] = v
		d.skipSpace()
		c := d.data[d.i]
		d.i++ // , or }
		if c == '}' {
			return m, nil
		}
	}
}

// array decodes the array at d.i.
func (d *validDecoder) array() (any, error) {
	list := []any{}
	d.i++ // [
	d.skipSpace()
	if d.data[d.i] == ']' {
		d.i++
		return list, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		d.skipSpace()
		c := d.data[d.i]
		d.i++ // , or ]
		if c == ']' {
			return list, nil
		}
	}
}

// str decodes the string at d.i as the decoder does: unescaped, with
// invalid UTF-8 replaced by U+FFFD.
func (d *validDecoder) str() (string, error) {
	start := d.i
	plain := true
	end := start + 1
	for ; d.data[end] != '"'; end++ {
		if d.data[end] == '\\' {
			plain = false
			end++
		}
	}
	d.i = end + 1
	q := d.data[start:d.i]
	if plain && utf8.Valid(q) {
		// The decoder's own fast path: nothing to unescape or replace.
		return string(q[1 : len(q)-1]), nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", errors.New("arguments are not valid JSON")
	}
	return s, nil
}

// skipSpace moves past JSON whitespace.
func (d *validDecoder) skipSpace() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// isNumberByte reports whether c may appear in a JSON number.
func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// decodeDuplicateKeys reports the first object key of a JSON text that
// appears twice in one object, token by token with encoding/json's
// decoder, for any text.
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
