package cedarschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/ast"
)

// Limits applied when typing a tool's input JSON Schema.
const (
	// MaxDepth is how deeply records and sets may nest below the arguments
	// record; deeper constructs are left out.
	MaxDepth = 16
	// MaxAttributes caps the attributes typed for one tool, over all
	// nesting levels; the rest are left out.
	MaxAttributes = 1024
	// MaxInputSchemaBytes is the largest input schema Generate accepts.
	MaxInputSchemaBytes = 1 << 20
)

// untypeableKeywords make a JSON Schema node untypeable: they combine or
// refer to other schemas, so the node's "type" alone does not say what a
// value looks like.
var untypeableKeywords = []string{
	"$ref", "$dynamicRef", "$recursiveRef", "oneOf", "anyOf", "allOf", "not", "if",
}

// argumentsRecord types a tool's input JSON Schema as the record of its
// arguments. An empty schema, or one whose top level is not an object, gives
// the empty record; malformed JSON is an error.
func argumentsRecord(inputSchema []byte) (ast.RecordType, error) {
	if len(bytes.TrimSpace(inputSchema)) == 0 {
		return ast.RecordType{}, nil
	}
	if len(inputSchema) > MaxInputSchemaBytes {
		return nil, fmt.Errorf("input schema is %d bytes, more than %d", len(inputSchema), MaxInputSchemaBytes)
	}
	var root any
	if err := json.Unmarshal(inputSchema, &root); err != nil {
		return nil, fmt.Errorf("input schema: %w", err)
	}
	c := typer{budget: MaxAttributes}
	node, ok := root.(map[string]any)
	if !ok || !c.typeable(node) || node["type"] != "object" {
		return ast.RecordType{}, nil
	}
	return c.record(node, 0), nil
}

// typer converts JSON Schema nodes to Cedar types within an attribute
// budget shared by the whole tool.
type typer struct {
	budget int
}

// typeable reports whether node uses none of the untypeable keywords.
func (c *typer) typeable(node map[string]any) bool {
	for _, k := range untypeableKeywords {
		if _, ok := node[k]; ok {
			return false
		}
	}
	return true
}

// typeOf returns the Cedar type of a JSON Schema node at the given depth, or
// false when it cannot be typed.
func (c *typer) typeOf(v any, depth int) (ast.IsType, bool) {
	node, ok := v.(map[string]any)
	if !ok || depth > MaxDepth || !c.typeable(node) {
		return nil, false
	}
	typ, ok := node["type"].(string)
	if !ok {
		return nil, false
	}
	switch typ {
	case "integer":
		return ast.Long(), true
	case "number":
		return ast.Decimal(), true
	case "string":
		return ast.String(), true
	case "boolean":
		return ast.Bool(), true
	case "array":
		elem, ok := c.typeOf(node["items"], depth+1)
		if !ok {
			return nil, false
		}
		return ast.Set(elem), true
	case "object":
		if _, hasProps := node["properties"].(map[string]any); !hasProps && isMap(node) {
			return nil, false
		}
		return c.record(node, depth), true
	}
	return nil, false
}

// isMap reports whether an object node declares additionalProperties (other
// than false) or patternProperties: without "properties" such an object is a
// map whose keys nobody knows in advance.
func isMap(node map[string]any) bool {
	if ap, ok := node["additionalProperties"]; ok && ap != false {
		return true
	}
	_, ok := node["patternProperties"]
	return ok
}

// record types the properties of an object node; depth is the node's own
// depth, its properties sit one deeper.
func (c *typer) record(node map[string]any, depth int) ast.RecordType {
	rec := ast.RecordType{}
	props, _ := node["properties"].(map[string]any)
	required := requiredSet(node["required"])
	for _, name := range slices.Sorted(maps.Keys(props)) {
		if c.budget <= 0 {
			break
		}
		c.budget-- // reserve before descending so nested records share the cap
		t, ok := c.typeOf(props[name], depth+1)
		if !ok {
			c.budget++
			continue
		}
		rec[types.String(name)] = ast.Attribute{Type: t, Optional: !required[name]}
	}
	return rec
}

// requiredSet reads a "required" list; anything malformed requires nothing.
func requiredSet(v any) map[string]bool {
	list, _ := v.([]any)
	set := make(map[string]bool, len(list))
	for _, item := range list {
		if s, ok := item.(string); ok {
			set[s] = true
		}
	}
	return set
}

// argumentsUnion types the arguments of a tool with several versions in
// use: the union of their records. An attribute every version declares
// with the same type keeps it, and is optional when any version makes it
// optional; one that some version lacks is optional; one whose types
// differ between versions is left out, as an untypeable property is (a
// policy cannot read it, so no version's calls can break a policy
// through it). Nested records merge the same way, as do the records in
// sets. The union is held to MaxAttributes like one version.
func argumentsUnion(first []byte, others [][]byte) (ast.RecordType, error) {
	out, err := argumentsRecord(first)
	if err != nil {
		return nil, err
	}
	for i, s := range others {
		rec, err := argumentsRecord(s)
		if err != nil {
			return nil, fmt.Errorf("input schema of another version in use (%d): %w", i+1, err)
		}
		budget := MaxAttributes
		out = mergeRecords(out, rec, &budget)
	}
	return out, nil
}

// mergeRecords is the union of two argument records (see argumentsUnion);
// budget counts the attributes kept over all nesting levels.
func mergeRecords(a, b ast.RecordType, budget *int) ast.RecordType {
	names := make([]types.String, 0, len(a)+len(b))
	for n := range a {
		names = append(names, n)
	}
	for n := range b {
		if _, dup := a[n]; !dup {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := ast.RecordType{}
	for _, n := range names {
		if *budget <= 0 {
			break
		}
		x, inA := a[n]
		y, inB := b[n]
		switch {
		case inA && inB:
			t, ok := mergeTypes(x.Type, y.Type, budget)
			if !ok {
				continue
			}
			*budget--
			out[n] = ast.Attribute{Type: t, Optional: x.Optional || y.Optional}
		case inA:
			*budget--
			out[n] = ast.Attribute{Type: x.Type, Optional: true}
		default:
			*budget--
			out[n] = ast.Attribute{Type: y.Type, Optional: true}
		}
	}
	return out
}

// mergeTypes is the union of two attribute types: equal leaves, sets of
// mergeable elements, records merged; false when they differ.
func mergeTypes(a, b ast.IsType, budget *int) (ast.IsType, bool) {
	switch x := a.(type) {
	case ast.SetType:
		y, ok := b.(ast.SetType)
		if !ok {
			return nil, false
		}
		e, ok := mergeTypes(x.Element, y.Element, budget)
		if !ok {
			return nil, false
		}
		return ast.Set(e), true
	case ast.RecordType:
		y, ok := b.(ast.RecordType)
		if !ok {
			return nil, false
		}
		return mergeRecords(x, y, budget), true
	case ast.StringType, ast.LongType, ast.BoolType, ast.ExtensionType:
		return a, a == b
	}
	return nil, false
}
