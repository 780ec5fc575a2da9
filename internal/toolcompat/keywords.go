package toolcompat

import (
	"encoding/json"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file compares the keywords of one type and checks single values
// against a schema (for nodes that accept finitely many values).

// bound is a lower or upper numeric bound.
type bound struct {
	val  *big.Rat
	excl bool
}

func (b *bound) String() string {
	if b == nil {
		return "none"
	}
	return b.val.RatString()
}

// Bounds on the numbers the check reads exactly; others are not
// understood (reading 1e999999 exactly would cost a million digits).
const (
	maxNumberLen      = 128
	maxNumberExponent = 400
)

// number reads a JSON number exactly.
func number(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok || len(n) > maxNumberLen {
		return nil, false
	}
	s := string(n)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > maxNumberExponent || e < -maxNumberExponent {
			return nil, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// malformed returns a keyword of m whose value the check cannot read (a
// bound that is not a number it reads, a count that is not a
// non-negative integer, required that is not a list of names), or "".
func malformed(m map[string]any) string {
	for _, k := range []string{"minimum", "maximum", "multipleOf"} {
		if v, ok := m[k]; ok {
			if _, ok := number(v); !ok {
				return k
			}
		}
	}
	for _, k := range []string{"exclusiveMinimum", "exclusiveMaximum"} {
		if v, ok := m[k]; ok {
			if _, isBool := v.(bool); !isBool {
				if _, ok := number(v); !ok {
					return k
				}
			}
		}
	}
	for _, k := range []string{"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"} {
		if _, ok := m[k]; ok && count(m, k) < 0 {
			return k
		}
	}
	if v, ok := m["required"]; ok {
		list, isList := v.([]any)
		if !isList || slices.ContainsFunc(list, func(x any) bool { _, ok := x.(string); return !ok }) {
			return "required"
		}
	}
	if v, ok := m["properties"]; ok {
		if _, isObj := v.(map[string]any); !isObj {
			return "properties"
		}
	}
	if v, ok := m["type"]; ok {
		switch t := v.(type) {
		case string:
			if !slices.Contains(jsonTypes, t) {
				return "type"
			}
		case []any:
			for _, x := range t {
				if s, ok := x.(string); !ok || !slices.Contains(jsonTypes, s) {
					return "type"
				}
			}
		default:
			return "type"
		}
	}
	if v, ok := m["enum"]; ok {
		if _, isList := v.([]any); !isList {
			return "enum"
		}
	}
	if v, ok := m["uniqueItems"]; ok {
		if _, isBool := v.(bool); !isBool {
			return "uniqueItems"
		}
	}
	return ""
}

// lowerBound is m's lower bound: minimum, exclusiveMinimum (a number, or
// draft 4's boolean making minimum exclusive), the tighter of the two;
// nil for none. For integers it is normalized to an inclusive integer.
func lowerBound(m map[string]any, integers bool) *bound {
	return bounds(m, "minimum", "exclusiveMinimum", 1, integers)
}

// upperBound is lowerBound's counterpart.
func upperBound(m map[string]any, integers bool) *bound {
	return bounds(m, "maximum", "exclusiveMaximum", -1, integers)
}

// bounds reads a bound; dir is 1 for a lower bound (a higher value is
// tighter), -1 for an upper one.
func bounds(m map[string]any, incl, excl string, dir int, integers bool) *bound {
	var out *bound
	tighter := func(b *bound) {
		if out == nil {
			out = b
			return
		}
		switch c := b.val.Cmp(out.val) * dir; {
		case c > 0, c == 0 && b.excl:
			out = b
		}
	}
	if v, ok := number(m[incl]); ok {
		draft4, _ := m[excl].(bool)
		tighter(&bound{val: v, excl: draft4})
	}
	if v, ok := number(m[excl]); ok {
		tighter(&bound{val: v, excl: true})
	}
	if out != nil && integers {
		// The integers within the bound: an inclusive integer bound.
		v := new(big.Rat).Set(out.val)
		fl := floor(v)
		if dir > 0 {
			if out.excl || !v.IsInt() {
				fl.Add(fl, big.NewRat(1, 1))
			}
		} else if out.excl && v.IsInt() {
			fl.Sub(fl, big.NewRat(1, 1))
		}
		out = &bound{val: fl}
	}
	return out
}

// floor returns the greatest integer ≤ r.
func floor(r *big.Rat) *big.Rat {
	q := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean: floor for a positive denominator
	return new(big.Rat).SetInt(q)
}

// looser reports whether bound a admits a value bound b refuses (dir 1:
// lower bounds, -1: upper).
func looser(a, b *bound, dir int) bool {
	switch {
	case b == nil:
		return false
	case a == nil:
		return true
	}
	c := a.val.Cmp(b.val) * dir
	return c < 0 || c == 0 && !a.excl && b.excl
}

func describeBound(b *bound, dir int) string {
	op := map[bool]string{true: ">", false: "≥"}[b.excl]
	if dir < 0 {
		op = map[bool]string{true: "<", false: "≤"}[b.excl]
	}
	return op + " " + b.val.RatString()
}

// numbers compares numeric keywords; integers is set when a accepts only
// integers.
func (s *side) numbers(am, bm map[string]any, path string, integers bool) {
	for _, dir := range []int{1, -1} {
		var la, lb *bound
		if dir > 0 {
			la, lb = lowerBound(am, integers), lowerBound(bm, integers)
		} else {
			la, lb = upperBound(am, integers), upperBound(bm, integers)
		}
		switch {
		case looser(la, lb, dir):
			s.add(path, Breaking, "%s requires numbers %s; %s allows others", s.b, describeBound(lb, dir), s.a)
		case looser(lb, la, dir):
			s.add(path, Safe, "%s relaxes the bound %s", s.b, describeBound(la, dir))
		}
	}
	mb, ok := number(bm["multipleOf"])
	if !ok || mb.Sign() <= 0 {
		return
	}
	fits := func(m *big.Rat) bool { return new(big.Rat).Quo(m, mb).IsInt() }
	ma, ok := number(am["multipleOf"])
	if ok && ma.Sign() > 0 && fits(ma) || integers && fits(big.NewRat(1, 1)) {
		return
	}
	s.add(path, Breaking, "%s requires multiples of %s; %s allows other numbers", s.b, mb.RatString(), s.a)
}

// count reads a non-negative integer keyword; -1 when absent.
func count(m map[string]any, k string) int64 {
	r, ok := number(m[k])
	if !ok || !r.IsInt() || r.Sign() < 0 || !r.Num().IsInt64() {
		return -1
	}
	return r.Num().Int64()
}

// counts compares a min/max pair of counting keywords (lengths, items,
// properties); what names what is counted.
func (s *side) counts(am, bm map[string]any, path, minK, maxK, what string) {
	minA, minB := max(count(am, minK), 0), max(count(bm, minK), 0)
	switch {
	case minB > minA:
		s.add(path, Breaking, "%s requires at least %d %s; %s allows %d", s.b, minB, what, s.a, minA)
	case minB < minA:
		s.add(path, Safe, "%s requires at least %d %s instead of %d", s.b, minB, what, minA)
	}
	maxA, maxB := count(am, maxK), count(bm, maxK)
	switch {
	case maxB >= 0 && (maxA < 0 || maxA > maxB):
		s.add(path, Breaking, "%s allows at most %d %s; %s allows more", s.b, maxB, what, s.a)
	case maxA >= 0 && (maxB < 0 || maxB > maxA):
		s.add(path, Safe, "%s allows more than %d %s", s.b, maxA, what)
	}
}

// strings compares string keywords.
func (s *side) strings(am, bm map[string]any, path string) {
	s.counts(am, bm, path, "minLength", "maxLength", "characters")
	if pb, ok := bm["pattern"]; ok && !equal(am["pattern"], pb, 0) {
		s.add(path, Undecided, "%s requires pattern %s; regular expressions are not compared", s.b, describe(pb))
	} else if _, ok := am["pattern"]; ok && bm["pattern"] == nil {
		s.add(path, Safe, "%s drops the pattern", s.b)
	}
	if fb, ok := bm["format"]; ok && !equal(am["format"], fb, 0) {
		s.add(path, Undecided, "%s requires format %s; formats are not compared", s.b, describe(fb))
	}
}

// arrays compares array keywords.
func (s *side) arrays(am, bm map[string]any, path string, depth int) {
	ia, ib := schemaOf(am, "items"), schemaOf(bm, "items")
	_, tupleA := ia.([]any)
	_, tupleB := ib.([]any)
	if tupleA || tupleB {
		s.add(path+"/items", Undecided, "items as an array of schemas (tuples) is not understood by the compatibility check")
	} else {
		s.sub(ia, ib, path+"/items", depth+1)
	}
	s.counts(am, bm, path, "minItems", "maxItems", "items")
	if ub, _ := bm["uniqueItems"].(bool); ub {
		if ua, _ := am["uniqueItems"].(bool); !ua {
			s.add(path, Breaking, "%s requires unique items; %s allows repeats", s.b, s.a)
		}
	}
}

// objects compares object keywords.
func (s *side) objects(am, bm map[string]any, path string, depth int) {
	pa, _ := am["properties"].(map[string]any)
	pb, _ := bm["properties"].(map[string]any)
	apA, apB := schemaOf(am, "additionalProperties"), schemaOf(bm, "additionalProperties")
	ra, rb := names(am["required"]), names(bm["required"])
	for _, p := range rb {
		if !slices.Contains(ra, p) {
			s.add(path+"/properties/"+pointer(p), Breaking, "%s requires property %q; %s does not", s.b, p, s.a)
		}
	}
	for _, p := range ra {
		if !slices.Contains(rb, p) {
			s.add(path+"/properties/"+pointer(p), Safe, "%s no longer requires property %q", s.b, p)
		}
	}
	all := map[string]bool{}
	for p := range pa {
		all[p] = true
	}
	for p := range pb {
		all[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(all)) {
		sa, inA := pa[p]
		sb, inB := pb[p]
		at := path + "/properties/" + pointer(p)
		switch {
		case inA && inB:
			s.sub(sa, sb, at, depth+1)
		case inA:
			if isFalse(apB) {
				s.add(at, Breaking, "%s does not allow property %q (additionalProperties: false); %s does", s.b, p, s.a)
			} else {
				s.sub(sa, apB, at, depth+1)
			}
		default:
			switch {
			case isFalse(apA):
				if !slices.Contains(rb, p) {
					s.add(at, Safe, "%s adds optional property %q", s.b, p)
				}
			case apA == true && assertive(asMap(sb)):
				s.add(at, Breaking, "%s constrains property %q, which %s accepts with any value (it does not set additionalProperties: false)", s.b, p, s.a)
			default:
				s.sub(apA, sb, at, depth+1)
			}
		}
	}
	switch {
	case isFalse(apA):
	case isFalse(apB):
		s.add(path, Breaking, "%s refuses properties it does not name (additionalProperties: false); %s accepts them", s.b, s.a)
	default:
		s.sub(apA, apB, path+"/additionalProperties", depth+1)
	}
	s.counts(am, bm, path, "minProperties", "maxProperties", "properties")
}

func isFalse(v any) bool {
	b, ok := v.(bool)
	return ok && !b
}

func asMap(v any) map[string]any {
	m, _ := node(v)
	return m
}

// names reads a "required" list.
func names(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// pointer escapes a property name as a JSON Pointer token.
func pointer(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

// outcome is validate's answer.
type outcome int

const (
	valid outcome = iota
	invalid
	undecided
)

// validate checks one value against a schema node over the understood
// keywords; a keyword it does not understand, a pattern Go cannot compile
// or a format makes it undecided.
func validate(v any, schema any, depth int) outcome {
	if depth > MaxDepth {
		return undecided
	}
	if b, ok := schema.(bool); ok {
		if b {
			return valid
		}
		return invalid
	}
	m, ok := schema.(map[string]any)
	if !ok {
		return undecided
	}
	for k := range m {
		if !understood[k] && !annotations[k] {
			return undecided
		}
	}
	if malformed(m) != "" {
		return undecided
	}
	result := valid
	fail := func(o outcome) {
		switch {
		case o == invalid:
			result = invalid
		case o == undecided && result == valid:
			result = undecided
		}
	}
	if _, typed := m["type"]; typed && !slices.ContainsFunc(types(m), func(t string) bool { return isType(v, t) }) {
		return invalid
	}
	if e, ok := m["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return equal(x, v, 0) }) {
		return invalid
	}
	if c, ok := m["const"]; ok && !equal(c, v, 0) {
		return invalid
	}
	switch x := v.(type) {
	case json.Number:
		r, ok := number(x)
		if !ok {
			return undecided
		}
		if lb := lowerBound(m, false); lb != nil && (r.Cmp(lb.val) < 0 || lb.excl && r.Cmp(lb.val) == 0) {
			return invalid
		}
		if ub := upperBound(m, false); ub != nil && (r.Cmp(ub.val) > 0 || ub.excl && r.Cmp(ub.val) == 0) {
			return invalid
		}
		if mo, ok := number(m["multipleOf"]); ok && mo.Sign() > 0 && !new(big.Rat).Quo(r, mo).IsInt() {
			return invalid
		}
	case string:
		n := int64(utf8.RuneCountInString(x))
		if mn := count(m, "minLength"); mn >= 0 && n < mn {
			return invalid
		}
		if mx := count(m, "maxLength"); mx >= 0 && n > mx {
			return invalid
		}
		if p, ok := m["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			switch {
			case err != nil:
				fail(undecided)
			case !re.MatchString(x):
				return invalid
			}
		}
		if _, ok := m["format"]; ok {
			fail(undecided)
		}
	case []any:
		n := int64(len(x))
		if mn := count(m, "minItems"); mn >= 0 && n < mn {
			return invalid
		}
		if mx := count(m, "maxItems"); mx >= 0 && n > mx {
			return invalid
		}
		if u, _ := m["uniqueItems"].(bool); u {
			for i := range x {
				for j := i + 1; j < len(x); j++ {
					if equal(x[i], x[j], 0) {
						return invalid
					}
				}
			}
		}
		items := schemaOf(m, "items")
		if _, tuple := items.([]any); tuple {
			fail(undecided)
		} else {
			for _, e := range x {
				fail(validate(e, items, depth+1))
			}
		}
	case map[string]any:
		n := int64(len(x))
		if mn := count(m, "minProperties"); mn >= 0 && n < mn {
			return invalid
		}
		if mx := count(m, "maxProperties"); mx >= 0 && n > mx {
			return invalid
		}
		for _, r := range names(m["required"]) {
			if _, ok := x[r]; !ok {
				return invalid
			}
		}
		props, _ := m["properties"].(map[string]any)
		ap := schemaOf(m, "additionalProperties")
		for k, e := range x {
			if ps, ok := props[k]; ok {
				fail(validate(e, ps, depth+1))
			} else {
				fail(validate(e, ap, depth+1))
			}
		}
	}
	return result
}

// isType reports whether v is of JSON Schema type t.
func isType(v any, t string) bool {
	switch x := v.(type) {
	case nil:
		return t == "null"
	case bool:
		return t == "boolean"
	case string:
		return t == "string"
	case []any:
		return t == "array"
	case map[string]any:
		return t == "object"
	case json.Number:
		if t == "number" {
			return true
		}
		r, ok := number(x)
		return t == "integer" && ok && r.IsInt()
	}
	return false
}

// equal reports whether two decoded JSON values are equal as JSON Schema
// compares instances (numbers by value).
func equal(a, b any, depth int) bool {
	if depth > MaxDepth {
		return false
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		rx, okx := number(x)
		ry, oky := number(y)
		return okx && oky && rx.Cmp(ry) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i], depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
