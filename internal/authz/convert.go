package authz

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/portcullis-gw/portcullis/internal/argjson"
)

// argumentsAttrs converts decoded arguments to the attributes of the Cedar
// record typed by rt, appended to dst sorted by name (see recordOf):
// attributes rt does not declare are dropped, declared ones are converted
// by their type, and a required one that is missing is an error. An
// attribute whose path ("arguments/a/b") is in unknown gets its type's
// placeholder instead (see zeroValue), present or not.
func argumentsAttrs(dst []attr, args map[string]any, rt resolved.RecordType, unknown map[string]bool) ([]attr, error) {
	if unknown["arguments"] {
		v, err := zeroValue(rt)
		if err != nil {
			return nil, fmt.Errorf("arguments: %w", err)
		}
		rec := v.(types.Record)
		for _, name := range slices.Sorted(rec.Keys()) {
			av, _ := rec.Get(name)
			dst = append(dst, attr{name: name, value: av})
		}
		return dst, nil
	}
	c := converter{unknown: unknown}
	return c.toAttrs(dst, "arguments", args, rt)
}

// attr is one attribute of a record being made.
type attr struct {
	name  types.String
	value types.Value
}

// recordOf is the Cedar record of attrs.
func recordOf(attrs []attr) types.Record {
	m := make(types.RecordMap, len(attrs))
	for _, a := range attrs {
		m[a.name] = a.value
	}
	return types.NewRecord(m)
}

// attrValue is the value of attribute name of attrs, sorted by name.
func attrValue(attrs []attr, name types.String) (types.Value, bool) {
	i, ok := slices.BinarySearchFunc(attrs, name, func(a attr, name types.String) int { return strings.Compare(string(a.name), string(name)) })
	if !ok {
		return nil, false
	}
	return attrs[i].value, true
}

// converter converts decoded JSON values to Cedar values; unknown holds
// the attribute paths that get placeholders (nil for none).
type converter struct {
	unknown map[string]bool
}

// toValue converts one decoded JSON value to Cedar type t. path names the
// value in errors; values themselves never appear in errors.
func (c converter) toValue(path string, v any, t resolved.IsType) (types.Value, error) {
	switch t := t.(type) {
	case resolved.StringType:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch(path, "string", v)
		}
		return types.String(s), nil
	case resolved.BoolType:
		b, ok := v.(bool)
		if !ok {
			return nil, mismatch(path, "boolean", v)
		}
		return types.Boolean(b), nil
	case resolved.LongType:
		return toLong(path, v)
	case resolved.ExtensionType:
		if t != "decimal" {
			return nil, fmt.Errorf("%s: the gateway cannot convert arguments to Cedar type %s", path, string(t))
		}
		return toDecimal(path, v)
	case resolved.SetType:
		list, ok := v.([]any)
		if !ok {
			return nil, mismatch(path, "array", v)
		}
		elems := make([]types.Value, len(list))
		for i, e := range list {
			ev, err := c.toValue(fmt.Sprintf("%s/%d", path, i), e, t.Element)
			if err != nil {
				return nil, err
			}
			elems[i] = ev
		}
		return types.NewSet(elems...), nil
	case resolved.RecordType:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, mismatch(path, "object", v)
		}
		return c.toRecord(path, obj, t)
	}
	return nil, fmt.Errorf("%s: the gateway cannot convert arguments to Cedar type %T", path, t)
}

// toRecord converts the attributes rt declares into a record, in sorted
// order so the first error reported is deterministic.
func (c converter) toRecord(path string, obj map[string]any, rt resolved.RecordType) (types.Record, error) {
	var scratch [16]types.String
	out := make(types.RecordMap, len(rt))
	for _, name := range sortedNames(scratch[:0], rt) {
		v, ok, err := c.toAttr(path, obj, name, rt[name])
		if err != nil {
			return types.Record{}, err
		}
		if ok {
			out[name] = v
		}
	}
	return types.NewRecord(out), nil
}

// toAttrs is toRecord giving the record's attributes, appended to dst in
// sorted order, rather than the record.
func (c converter) toAttrs(dst []attr, path string, obj map[string]any, rt resolved.RecordType) ([]attr, error) {
	var scratch [16]types.String
	for _, name := range sortedNames(scratch[:0], rt) {
		v, ok, err := c.toAttr(path, obj, name, rt[name])
		if err != nil {
			return nil, err
		}
		if ok {
			dst = append(dst, attr{name: name, value: v})
		}
	}
	return dst, nil
}

// sortedNames appends the attribute names of rt to dst, sorted. Tools'
// arguments records are small: callers sort them on the stack.
func sortedNames(dst []types.String, rt resolved.RecordType) []types.String {
	for name := range rt {
		dst = append(dst, name)
	}
	slices.Sort(dst)
	return dst
}

// toAttr converts attribute name, declared as decl, of the record at path
// whose decoded value is obj; false when it is absent and optional.
func (c converter) toAttr(path string, obj map[string]any, name types.String, decl resolved.Attribute) (types.Value, bool, error) {
	// The attribute's path names it in errors and placeholders; a scalar's
	// conversion needs it only for its error, so it is built when needed.
	sub := func() string { return path + "/" + argjson.Segment(string(name)) }
	if len(c.unknown) > 0 && c.unknown[sub()] {
		z, err := zeroValue(decl.Type)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", sub(), err)
		}
		return z, true, nil
	}
	v, present := obj[string(name)]
	if !present {
		if decl.Optional {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("%s: required argument missing", sub())
	}
	var (
		cv  types.Value
		err error
	)
	if scalar(decl.Type) {
		if cv, err = c.toValue("", v, decl.Type); err != nil {
			_, err = c.toValue(sub(), v, decl.Type) // the same error, with the path
		}
	} else {
		cv, err = c.toValue(sub(), v, decl.Type)
	}
	if err != nil {
		return nil, false, err
	}
	return cv, true, nil
}

// scalar reports whether t's conversion uses its path only in its error.
func scalar(t resolved.IsType) bool {
	switch t.(type) {
	case resolved.StringType, resolved.BoolType, resolved.LongType, resolved.ExtensionType:
		return true
	}
	return false
}

// toLong converts an integral JSON number that fits in 64 bits.
func toLong(path string, v any) (types.Value, error) {
	n, err := numberOf(path, "integer", v)
	if err != nil {
		return nil, err
	}
	i, exact, fits := n.Scaled(0)
	switch {
	case !exact:
		return nil, mismatch(path, "integer", v)
	case !fits:
		return nil, fmt.Errorf("%s: integer outside the 64-bit range Cedar can hold", path)
	}
	return types.Long(i), nil
}

// toDecimal converts a JSON number exactly to a Cedar decimal, refusing
// numbers with more than four decimal places or beyond its range rather
// than rounding them.
func toDecimal(path string, v any) (types.Value, error) {
	n, err := numberOf(path, "number", v)
	if err != nil {
		return nil, err
	}
	i, exact, fits := n.Scaled(4)
	switch {
	case !exact:
		return nil, fmt.Errorf("%s: number has more than 4 decimal places, which a Cedar decimal cannot hold", path)
	case !fits:
		return nil, fmt.Errorf("%s: number outside the range of a Cedar decimal (about ±9.2e14)", path)
	}
	d, err := types.NewDecimal(i, -4)
	if err != nil {
		return nil, fmt.Errorf("%s: number outside the range of a Cedar decimal: %w", path, err)
	}
	return d, nil
}

// numberOf reads a decoded JSON number exactly.
func numberOf(path, want string, v any) (argjson.Number, error) {
	lit, ok := v.(json.Number)
	if !ok {
		return argjson.Number{}, mismatch(path, want, v)
	}
	n, err := argjson.ParseNumber(string(lit))
	if err != nil {
		return argjson.Number{}, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func mismatch(path, want string, v any) error {
	return fmt.Errorf("%s: want %s, got %s", path, want, argjson.TypeName(v))
}
