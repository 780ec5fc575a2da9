// Package toolcompat decides whether the callers of one approved version of
// a tool keep working when its upstream serves another definition: every
// input valid under the version's input schema must be valid under the
// other's, and every output valid under the other's output schema must be
// valid under the version's. The control plane asks before it assigns a
// version to callers, a data plane before it forwards their calls, and
// gwctl shows the answer ("gwctl tool diff").
//
// The check is a JSON Schema inclusion test over the keywords it
// understands (see Understood): types, enums and const, numeric, string,
// array and object bounds, properties, required and additionalProperties,
// items. A schema node using any other assertion keyword ($ref, anyOf,
// oneOf, allOf, not, if, patternProperties, …) cannot be judged, unless
// it is identical in both schemas (and refers to no definitions that
// differ): the answer is then Unknown, which callers must treat as
// incompatible. A changed pattern or format is Unknown too: regular
// expressions and formats are not compared.
//
// The check is bounded: schemas nested deeper than MaxDepth, or larger
// than MaxNodes nodes, are Unknown beyond that point. It never panics on
// any input.
package toolcompat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Verdict is the answer of a check.
type Verdict int

// Verdicts.
const (
	// Compatible: every caller of the assigned version keeps working.
	Compatible Verdict = iota
	// Incompatible: some input the assigned version accepts is refused,
	// or some output the other definition allows breaks the assigned
	// version's promise.
	Incompatible
	// Unknown: the checker cannot tell (a keyword it does not understand,
	// a changed pattern). It counts as incompatible.
	Unknown
)

func (v Verdict) String() string {
	switch v {
	case Compatible:
		return "compatible"
	case Incompatible:
		return "incompatible"
	}
	return "unknown"
}

// Breaks reports whether callers must not be left on the assigned version:
// Incompatible or Unknown.
func (v Verdict) Breaks() bool { return v != Compatible }

// Effect is what one difference does to the callers of the assigned
// version.
type Effect int

// Effects.
const (
	// Safe: the difference does not affect them.
	Safe Effect = iota
	// Breaking: some of their inputs are refused, or outputs they rely on
	// may change.
	Breaking
	// Undecided: the checker cannot tell.
	Undecided
)

func (e Effect) String() string {
	switch e {
	case Safe:
		return "safe"
	case Breaking:
		return "breaking"
	}
	return "unknown"
}

// Difference is one difference between the two definitions.
type Difference struct {
	// Schema is "input" or "output", or "" for the definition's other
	// members (description, title, annotations).
	Schema string
	// Path is the JSON Pointer of the schema node ("" for its root).
	Path   string
	Effect Effect
	// Text says what differs, naming the two sides by their labels.
	Text string
}

func (d Difference) String() string {
	where := d.Schema
	if where == "" {
		where = "definition"
	}
	if d.Path != "" {
		where += " " + d.Path
	}
	return fmt.Sprintf("%s: %s (%s)", where, d.Text, d.Effect)
}

// Report is the answer of a check.
type Report struct {
	Verdict Verdict
	// Differences are the differences found, breaking and undecided ones
	// first, at most MaxDifferences; Omitted counts those left out.
	Differences []Difference
	Omitted     int
}

// Breaking returns the differences that break callers or cannot be
// judged.
func (r Report) Breaking() []Difference {
	var out []Difference
	for _, d := range r.Differences {
		if d.Effect != Safe {
			out = append(out, d)
		}
	}
	return out
}

// Bounds of one check.
const (
	// MaxDepth bounds how deeply schema nodes are compared.
	MaxDepth = 64
	// MaxNodes bounds the schema nodes one check visits.
	MaxNodes = 20_000
	// MaxDifferences bounds the differences a report lists.
	MaxDifferences = 50
)

// Side is one of the two definitions compared: a tool definition (the
// upstream's tool object, JSON) and how texts name it ("version 1",
// "the live definition").
type Side struct {
	Label      string
	Definition []byte
}

// Check compares the definition callers are assigned with another one
// (typically what the upstream serves now): inputs valid under assigned
// must be valid under other, outputs valid under other must be valid
// under assigned. A definition that is not a JSON object is Unknown.
func Check(assigned, other Side) Report {
	c := &checker{}
	a, aerr := decodeObject(assigned.Definition)
	o, oerr := decodeObject(other.Definition)
	switch {
	case aerr != nil:
		c.add("", "", Undecided, fmt.Sprintf("%s is not a tool definition: %v", assigned.Label, aerr))
		return c.report()
	case oerr != nil:
		c.add("", "", Undecided, fmt.Sprintf("%s is not a tool definition: %v", other.Label, oerr))
		return c.report()
	}
	for _, field := range []string{"title", "description", "annotations"} {
		av, aok := a[field]
		ov, ook := o[field]
		if aok != ook || aok && !equal(av, ov, 0) {
			c.add("", "", Safe, fmt.Sprintf("%s changed", field))
		}
	}
	in := c.side("input", assigned.Label, other.Label, schemaOf(a, "inputSchema"), schemaOf(o, "inputSchema"))
	in.sub(in.rootA, in.rootB, "", 0)
	out := c.side("output", other.Label, assigned.Label, schemaOf(o, "outputSchema"), schemaOf(a, "outputSchema"))
	out.sub(out.rootA, out.rootB, "", 0)
	return c.report()
}

// Schemas compares two JSON Schemas: every instance valid under narrow
// must be valid under wide. Texts name the sides by their labels; where
// says which schema this is ("input", "output").
func Schemas(where string, narrow, wide Side) Report {
	c := &checker{}
	a, aerr := decodeSchema(narrow.Definition)
	b, berr := decodeSchema(wide.Definition)
	switch {
	case aerr != nil:
		c.add(where, "", Undecided, fmt.Sprintf("%s is not a JSON Schema: %v", narrow.Label, aerr))
	case berr != nil:
		c.add(where, "", Undecided, fmt.Sprintf("%s is not a JSON Schema: %v", wide.Label, berr))
	default:
		s := c.side(where, narrow.Label, wide.Label, a, b)
		s.sub(a, b, "", 0)
	}
	return c.report()
}

// checker accumulates the differences of one check.
type checker struct {
	diffs []Difference
	nodes int
}

func (c *checker) add(schema, path string, e Effect, text string) {
	c.diffs = append(c.diffs, Difference{Schema: schema, Path: path, Effect: e, Text: text})
}

func (c *checker) report() Report {
	r := Report{Verdict: Compatible}
	for _, d := range c.diffs {
		switch {
		case d.Effect == Breaking:
			r.Verdict = Incompatible
		case d.Effect == Undecided && r.Verdict == Compatible:
			r.Verdict = Unknown
		}
	}
	ds := slices.Clone(c.diffs)
	rank := func(e Effect) int {
		switch e {
		case Breaking:
			return 0
		case Undecided:
			return 1
		}
		return 2
	}
	sort.SliceStable(ds, func(i, j int) bool { return rank(ds[i].Effect) < rank(ds[j].Effect) })
	if len(ds) > MaxDifferences {
		r.Omitted = len(ds) - MaxDifferences
		ds = ds[:MaxDifferences]
	}
	r.Differences = ds
	return r
}

// side compares one schema of the two definitions: instances valid under
// rootA (labelled a) must be valid under rootB (labelled b).
type side struct {
	c            *checker
	where        string
	a, b         string
	rootA, rootB any
	// defsEqual: both roots hold the same definitions ($defs,
	// definitions), so identical nodes that refer to them are identical
	// in meaning too.
	defsEqual bool
}

func (c *checker) side(where, a, b string, rootA, rootB any) *side {
	s := &side{c: c, where: where, a: a, b: b, rootA: rootA, rootB: rootB}
	am, _ := rootA.(map[string]any)
	bm, _ := rootB.(map[string]any)
	s.defsEqual = equal(am["$defs"], bm["$defs"], 0) && equal(am["definitions"], bm["definitions"], 0)
	return s
}

func (s *side) add(path string, e Effect, format string, args ...any) {
	s.c.add(s.where, path, e, fmt.Sprintf(format, args...))
}

// decodeObject decodes a tool definition.
func decodeObject(raw []byte) (map[string]any, error) {
	v, err := decode(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// decodeSchema decodes a JSON Schema: an object or a boolean; empty means
// true (no constraint).
func decodeSchema(raw []byte) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return true, nil
	}
	v, err := decode(raw)
	if err != nil {
		return nil, err
	}
	switch v.(type) {
	case map[string]any, bool:
		return v, nil
	}
	return nil, errors.New("neither an object nor a boolean")
}

func decode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// schemaOf returns a definition's schema member; absent is true (no
// constraint: no schema declared).
func schemaOf(def map[string]any, field string) any {
	v, ok := def[field]
	if !ok || v == nil {
		return true
	}
	return v
}

// Keywords.
var (
	// annotations never constrain an instance. $defs and definitions are
	// containers: only a reference uses them, and references are not
	// understood.
	annotations = set("title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
		"$comment", "$schema", "$id", "$anchor", "$defs", "definitions", "contentMediaType", "contentEncoding", "contentSchema")
	// understood are the assertion keywords the check compares.
	understood = set("type", "enum", "const",
		"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
		"minLength", "maxLength", "pattern", "format",
		"items", "minItems", "maxItems", "uniqueItems",
		"properties", "required", "additionalProperties", "minProperties", "maxProperties")
	// refs are the keywords that refer to other schema nodes.
	refs = set("$ref", "$dynamicRef", "$recursiveRef")
)

// Understood lists the assertion keywords the checker compares, sorted.
func Understood() []string { return slices.Sorted(maps.Keys(understood)) }

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// jsonTypes are JSON Schema's types, "integer" among them.
var jsonTypes = []string{"array", "boolean", "integer", "null", "number", "object", "string"}

// sub records what differs between schema nodes a and b at path, where
// every instance valid under a must be valid under b.
func (s *side) sub(a, b any, path string, depth int) {
	s.c.nodes++
	if depth > MaxDepth || s.c.nodes > MaxNodes {
		s.add(path, Undecided, "the schemas are too large or too deep to compare")
		return
	}
	if equal(a, b, 0) && (s.defsEqual || !hasRef(a, 0)) {
		return
	}
	if ab, ok := a.(bool); ok && !ab {
		return // a accepts nothing
	}
	if bb, ok := b.(bool); ok && bb {
		return // b accepts everything
	}
	if bb, ok := b.(bool); ok && !bb {
		s.add(path, Breaking, "%s accepts no value here, %s does", s.b, s.a)
		return
	}
	am, aok := node(a)
	bm, bok := node(b)
	if !aok || !bok {
		s.add(path, Undecided, "a schema node is neither an object nor a boolean")
		return
	}
	if k := unknownKeyword(am, bm); k != "" {
		s.add(path, Undecided, "keyword %q is not understood by the compatibility check", k)
		return
	}
	for _, m := range []map[string]any{am, bm} {
		if k := malformed(m); k != "" {
			s.add(path, Undecided, "the value of keyword %q is not understood by the compatibility check", k)
			return
		}
	}
	if !assertive(bm) {
		return // b constrains nothing
	}
	if va, finite := values(am); finite {
		s.finite(am, bm, va, path, depth)
		return
	}
	if vb, finite := values(bm); finite {
		s.add(path, Breaking, "%s accepts only %s; %s accepts other values", s.b, describeValues(vb), s.a)
		return
	}
	ta, tb := types(am), types(bm)
	for _, t := range ta {
		if !accepts(tb, t) {
			if t == "number" && slices.Contains(tb, "integer") {
				s.add(path, Breaking, "%s accepts only integers; %s accepts any number", s.b, s.a)
			} else {
				s.add(path, Breaking, "%s does not accept type %s, which %s accepts", s.b, t, s.a)
			}
		}
	}
	if _, typed := am["type"]; typed {
		for _, t := range tb {
			if !accepts(ta, t) {
				s.add(path, Safe, "%s also accepts type %s", s.b, t)
			}
		}
	}
	shared := func(ts ...string) bool {
		for _, t := range ts {
			if slices.Contains(ta, t) && accepts(tb, t) {
				return true
			}
		}
		return false
	}
	if shared("number", "integer") {
		s.numbers(am, bm, path, !slices.Contains(ta, "number"))
	}
	if shared("string") {
		s.strings(am, bm, path)
	}
	if shared("array") {
		s.arrays(am, bm, path, depth)
	}
	if shared("object") {
		s.objects(am, bm, path, depth)
	}
}

// finite compares a node that accepts finitely many values (va) with b:
// exactly, value by value.
func (s *side) finite(am, bm map[string]any, va []any, path string, depth int) {
	vb, bFinite := values(bm)
	for _, v := range va {
		if validate(v, am, depth) != valid {
			continue // a's other keywords refuse it
		}
		switch validate(v, bm, depth) {
		case invalid:
			s.add(path, Breaking, "%s does not accept %s, which %s accepts", s.b, describe(v), s.a)
		case undecided:
			s.add(path, Undecided, "cannot tell whether %s accepts %s", s.b, describe(v))
		}
	}
	if bFinite {
		for _, v := range vb {
			if !slices.ContainsFunc(va, func(x any) bool { return equal(x, v, 0) }) {
				s.add(path, Safe, "%s also accepts %s", s.b, describe(v))
			}
		}
	}
}

// node returns a schema node as an object: true is {}. false is not one
// (sub handles it before).
func node(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case map[string]any:
		return v, true
	case bool:
		return map[string]any{}, v
	}
	return nil, false
}

// unknownKeyword returns a keyword of a or b the check does not
// understand, the first in sorted order, or "".
func unknownKeyword(a, b map[string]any) string {
	var out []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !understood[k] && !annotations[k] {
				out = append(out, k)
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	slices.Sort(out)
	return out[0]
}

// assertive reports whether m has an assertion keyword.
func assertive(m map[string]any) bool {
	for k := range m {
		if !annotations[k] {
			return true
		}
	}
	return false
}

// hasRef reports whether v refers to another schema node anywhere.
func hasRef(v any, depth int) bool {
	if depth > MaxDepth {
		return true
	}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if refs[k] || hasRef(x, depth+1) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasRef(x, depth+1) {
				return true
			}
		}
	}
	return false
}

// types returns the JSON types a node allows: its "type" (integer implied
// by number is not listed), else every type.
func types(m map[string]any) []string {
	switch t := m["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return jsonTypes
}

// accepts reports whether a node allowing types ts accepts values of
// type t (number includes integer).
func accepts(ts []string, t string) bool {
	return slices.Contains(ts, t) || t == "integer" && slices.Contains(ts, "number")
}

// values returns the values a node accepts when they are finitely many:
// its const, its enum (both: the enum's values equal to the const), or
// every value of its types when only null and boolean are allowed.
func values(m map[string]any) ([]any, bool) {
	c, hasConst := m["const"]
	e, hasEnum := m["enum"].([]any)
	switch {
	case hasConst && hasEnum:
		var out []any
		for _, v := range e {
			if equal(v, c, 0) {
				out = append(out, v)
			}
		}
		return out, true
	case hasConst:
		return []any{c}, true
	case hasEnum:
		return e, true
	}
	if _, typed := m["type"]; !typed {
		return nil, false
	}
	var out []any
	for _, t := range types(m) {
		switch t {
		case "null":
			out = append(out, nil)
		case "boolean":
			out = append(out, true, false)
		default:
			return nil, false
		}
	}
	return out, true
}

func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "a value"
	}
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

func describeValues(vs []any) string {
	parts := make([]string, 0, min(len(vs), 5))
	for i, v := range vs {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(vs)-i))
			break
		}
		parts = append(parts, describe(v))
	}
	return strings.Join(parts, ", ")
}
