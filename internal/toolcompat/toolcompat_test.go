package toolcompat_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/toolcompat"
)

// inputs compares two input schemas: everything the assigned one accepts
// must be accepted by the live one.
func inputs(assigned, live string) toolcompat.Report {
	return toolcompat.Schemas("input", toolcompat.Side{Label: "version 1", Definition: []byte(assigned)},
		toolcompat.Side{Label: "the live definition", Definition: []byte(live)})
}

// TestSchemas runs the checker over every keyword it understands, in both
// directions where one is safe and the other breaks.
func TestSchemas(t *testing.T) {
	const (
		C = toolcompat.Compatible
		I = toolcompat.Incompatible
		U = toolcompat.Unknown
	)
	obj := func(props, extra string) string {
		return `{"type":"object","properties":{` + props + `}` + extra + `}`
	}
	closed := `,"additionalProperties":false`
	tests := []struct {
		name         string
		assigned     string
		live         string
		want         toolcompat.Verdict
		wantInReport string
	}{
		{name: "identical", assigned: obj(`"city":{"type":"string"}`, closed), live: obj(`"city":{"type":"string"}`, closed), want: C},
		{name: "annotations only", assigned: obj(`"city":{"type":"string","description":"a"}`, ""), live: obj(`"city":{"type":"string","description":"b","title":"City","examples":["Oslo"]}`, ""), want: C},
		{name: "empty schemas", assigned: ``, live: `{}`, want: C},

		// required
		{name: "required added", assigned: obj(`"city":{"type":"string"}`, closed), live: obj(`"city":{"type":"string"}`, closed+`,"required":["city"]`), want: I, wantInReport: `requires property "city"`},
		{name: "required dropped", assigned: obj(`"city":{"type":"string"}`, closed+`,"required":["city"]`), live: obj(`"city":{"type":"string"}`, closed), want: C, wantInReport: `no longer requires property "city"`},

		// properties and additionalProperties
		{name: "optional property added, closed object", assigned: obj(`"city":{"type":"string"}`, closed), live: obj(`"city":{"type":"string"},"units":{"enum":["c","f"]}`, closed), want: C, wantInReport: `adds optional property "units"`},
		{name: "property added, open object", assigned: obj(`"city":{"type":"string"}`, ""), live: obj(`"city":{"type":"string"},"units":{"type":"string"}`, ""), want: I, wantInReport: `constrains property "units"`},
		{name: "property removed, live closed", assigned: obj(`"city":{"type":"string"},"units":{"type":"string"}`, closed), live: obj(`"city":{"type":"string"}`, closed), want: I, wantInReport: `does not allow property "units"`},
		{name: "property removed, live open", assigned: obj(`"city":{"type":"string"},"units":{"type":"string"}`, closed), live: obj(`"city":{"type":"string"}`, ""), want: C},
		{name: "property removed, live additionalProperties schema", assigned: obj(`"n":{"type":"integer"}`, closed), live: obj(``, `,"additionalProperties":{"type":"string"}`), want: I, wantInReport: "does not accept type integer"},
		{name: "additionalProperties closed", assigned: obj(`"city":{"type":"string"}`, ""), live: obj(`"city":{"type":"string"}`, closed), want: I, wantInReport: "refuses properties it does not name"},
		{name: "additionalProperties opened", assigned: obj(`"city":{"type":"string"}`, closed), live: obj(`"city":{"type":"string"}`, ""), want: C},
		{name: "additionalProperties narrowed", assigned: `{"type":"object","additionalProperties":{"type":"number"}}`, live: `{"type":"object","additionalProperties":{"type":"integer"}}`, want: I, wantInReport: "accepts only integers"},
		{name: "nested property narrowed", assigned: obj(`"to":{"type":"object","properties":{"iban":{"type":"string"}}}`, ""), live: obj(`"to":{"type":"object","properties":{"iban":{"type":"string","maxLength":34}}}`, ""), want: I, wantInReport: "/properties/to/properties/iban"},
		{name: "minProperties raised", assigned: `{"type":"object"}`, live: `{"type":"object","minProperties":1}`, want: I, wantInReport: "at least 1 properties"},
		{name: "maxProperties lowered", assigned: `{"type":"object","maxProperties":5}`, live: `{"type":"object","maxProperties":4}`, want: I},
		{name: "maxProperties raised", assigned: `{"type":"object","maxProperties":4}`, live: `{"type":"object","maxProperties":5}`, want: C},

		// type
		{name: "number narrowed to integer", assigned: obj(`"n":{"type":"number"}`, ""), live: obj(`"n":{"type":"integer"}`, ""), want: I, wantInReport: "accepts only integers"},
		{name: "integer widened to number", assigned: obj(`"n":{"type":"integer"}`, ""), live: obj(`"n":{"type":"number"}`, ""), want: C, wantInReport: "also accepts type number"},
		{name: "type list narrowed", assigned: `{"type":["string","null"]}`, live: `{"type":"string"}`, want: I, wantInReport: "does not accept type null"},
		{name: "type list widened", assigned: `{"type":"string"}`, live: `{"type":["string","null"]}`, want: C},
		{name: "type added to an untyped node", assigned: `{}`, live: `{"type":"string"}`, want: I, wantInReport: "does not accept type array"},
		{name: "type changed", assigned: `{"type":"string"}`, live: `{"type":"integer"}`, want: I},
		{name: "boolean type is finite", assigned: `{"type":"boolean"}`, live: `{"const":true}`, want: I, wantInReport: "does not accept false"},

		// enum and const
		{name: "enum shrunk", assigned: `{"enum":["c","f","k"]}`, live: `{"enum":["c","f"]}`, want: I, wantInReport: `does not accept "k"`},
		{name: "enum grown", assigned: `{"enum":["c","f"]}`, live: `{"enum":["c","f","k"]}`, want: C, wantInReport: `also accepts "k"`},
		{name: "enum against a type", assigned: `{"enum":["c",1]}`, live: `{"type":"string"}`, want: I, wantInReport: "does not accept 1"},
		{name: "enum values the assigned type refuses do not count", assigned: `{"type":"string","enum":["c",1]}`, live: `{"type":"string"}`, want: C},
		{name: "enum numbers by value", assigned: `{"enum":[1]}`, live: `{"enum":[1.0]}`, want: C},
		{name: "enum introduced", assigned: `{"type":"string"}`, live: `{"type":"string","enum":["c"]}`, want: I, wantInReport: `accepts only "c"`},
		{name: "const changed", assigned: `{"const":"v1"}`, live: `{"const":"v2"}`, want: I},
		{name: "const within enum", assigned: `{"const":"c"}`, live: `{"enum":["c","f"]}`, want: C},
		{name: "enum against bounds", assigned: `{"enum":[3,7]}`, live: `{"type":"integer","maximum":5}`, want: I, wantInReport: "does not accept 7"},
		{name: "enum against pattern", assigned: `{"enum":["ab"]}`, live: `{"type":"string","pattern":"^a"}`, want: C},
		{name: "enum against format", assigned: `{"enum":["x"]}`, live: `{"type":"string","format":"email"}`, want: U},

		// numbers
		{name: "minimum raised", assigned: `{"type":"integer","minimum":0}`, live: `{"type":"integer","minimum":1}`, want: I, wantInReport: "≥ 1"},
		{name: "minimum lowered", assigned: `{"type":"integer","minimum":1}`, live: `{"type":"integer","minimum":0}`, want: C},
		{name: "minimum added", assigned: `{"type":"number"}`, live: `{"type":"number","minimum":0}`, want: I},
		{name: "minimum made exclusive", assigned: `{"type":"number","minimum":0}`, live: `{"type":"number","exclusiveMinimum":0}`, want: I, wantInReport: "> 0"},
		{name: "draft 4 exclusive minimum", assigned: `{"type":"number","minimum":0}`, live: `{"type":"number","minimum":0,"exclusiveMinimum":true}`, want: I},
		{name: "integers: exclusive 0 is minimum 1", assigned: `{"type":"integer","minimum":1}`, live: `{"type":"integer","exclusiveMinimum":0}`, want: C},
		{name: "maximum lowered", assigned: `{"type":"number","maximum":500}`, live: `{"type":"number","maximum":499.5}`, want: I, wantInReport: "≤ 999/2"},
		{name: "maximum raised", assigned: `{"type":"number","exclusiveMaximum":10}`, live: `{"type":"number","maximum":10}`, want: C},
		{name: "multipleOf added", assigned: `{"type":"number"}`, live: `{"type":"number","multipleOf":0.01}`, want: I, wantInReport: "multiples of 1/100"},
		{name: "multipleOf coarser to finer", assigned: `{"type":"number","multipleOf":4}`, live: `{"type":"number","multipleOf":2}`, want: C},
		{name: "multipleOf finer to coarser", assigned: `{"type":"number","multipleOf":2}`, live: `{"type":"number","multipleOf":4}`, want: I},
		{name: "integers are multiples of 1", assigned: `{"type":"integer"}`, live: `{"type":"integer","multipleOf":1}`, want: C},

		// strings
		{name: "minLength raised", assigned: `{"type":"string","minLength":1}`, live: `{"type":"string","minLength":2}`, want: I, wantInReport: "at least 2 characters"},
		{name: "maxLength lowered", assigned: `{"type":"string","maxLength":10}`, live: `{"type":"string","maxLength":9}`, want: I},
		{name: "maxLength added", assigned: `{"type":"string"}`, live: `{"type":"string","maxLength":9}`, want: I},
		{name: "maxLength removed", assigned: `{"type":"string","maxLength":9}`, live: `{"type":"string"}`, want: C},
		{name: "pattern unchanged", assigned: `{"type":"string","pattern":"^[a-z]+$"}`, live: `{"type":"string","pattern":"^[a-z]+$","title":"name"}`, want: C},
		{name: "pattern removed", assigned: `{"type":"string","pattern":"^[a-z]+$"}`, live: `{"type":"string"}`, want: C},
		{name: "pattern added", assigned: `{"type":"string"}`, live: `{"type":"string","pattern":".*"}`, want: U, wantInReport: "regular expressions are not compared"},
		{name: "pattern changed", assigned: `{"type":"string","pattern":"^a"}`, live: `{"type":"string","pattern":"^b"}`, want: U},
		{name: "format added", assigned: `{"type":"string"}`, live: `{"type":"string","format":"date"}`, want: U},
		{name: "string keywords apply to strings only", assigned: `{"type":"integer"}`, live: `{"type":"integer","minLength":3}`, want: C},

		// arrays
		{name: "items narrowed", assigned: `{"type":"array","items":{"type":"number"}}`, live: `{"type":"array","items":{"type":"integer"}}`, want: I, wantInReport: "/items"},
		{name: "items added", assigned: `{"type":"array"}`, live: `{"type":"array","items":{"type":"string"}}`, want: I},
		{name: "items removed", assigned: `{"type":"array","items":{"type":"string"}}`, live: `{"type":"array"}`, want: C},
		{name: "minItems raised", assigned: `{"type":"array"}`, live: `{"type":"array","minItems":1}`, want: I},
		{name: "maxItems lowered", assigned: `{"type":"array","maxItems":3}`, live: `{"type":"array","maxItems":2}`, want: I},
		{name: "uniqueItems added", assigned: `{"type":"array"}`, live: `{"type":"array","uniqueItems":true}`, want: I, wantInReport: "unique items"},
		{name: "uniqueItems dropped", assigned: `{"type":"array","uniqueItems":true}`, live: `{"type":"array"}`, want: C},
		{name: "tuple items", assigned: `{"type":"array","items":[{"type":"string"}]}`, live: `{"type":"array","items":[{"type":"integer"}]}`, want: U},

		// boolean schemas
		{name: "true to false", assigned: `true`, live: `false`, want: I, wantInReport: "accepts no value"},
		{name: "false to anything", assigned: `false`, live: `{"type":"string"}`, want: C},
		{name: "anything to true", assigned: `{"type":"string"}`, live: `true`, want: C},
		{name: "property schema false", assigned: obj(`"x":{"type":"string"}`, ""), live: obj(`"x":false`, ""), want: I},

		// what is not understood
		{name: "identical subschema with anyOf", assigned: obj(`"x":{"anyOf":[{"type":"string"},{"type":"integer"}]}`, ""), live: obj(`"x":{"anyOf":[{"type":"string"},{"type":"integer"}]},"y":{}`, ""), want: C},
		{name: "changed anyOf", assigned: obj(`"x":{"anyOf":[{"type":"string"},{"type":"integer"}]}`, ""), live: obj(`"x":{"anyOf":[{"type":"string"}]}`, ""), want: U, wantInReport: `keyword "anyOf" is not understood`},
		{name: "identical $ref, same definitions", assigned: `{"$defs":{"c":{"type":"string"}},"type":"object","properties":{"x":{"$ref":"#/$defs/c"}}}`, live: `{"$defs":{"c":{"type":"string"}},"type":"object","properties":{"x":{"$ref":"#/$defs/c"}},"required":[]}`, want: C},
		{name: "identical $ref, changed definitions", assigned: `{"$defs":{"c":{"type":"string"}},"type":"object","properties":{"x":{"$ref":"#/$defs/c"}}}`, live: `{"$defs":{"c":{"type":"integer"}},"type":"object","properties":{"x":{"$ref":"#/$defs/c"}}}`, want: U, wantInReport: `"$ref"`},
		{name: "malformed bound", assigned: `{"type":"number"}`, live: `{"type":"number","minimum":"5"}`, want: U, wantInReport: `keyword "minimum"`},
		{name: "huge exponent", assigned: `{"type":"number"}`, live: `{"type":"number","minimum":1e999999}`, want: U},
		{name: "not a schema", assigned: `{"type":"string"}`, live: `[1]`, want: U},
		{name: "not JSON", assigned: `{"type":"string"}`, live: `{`, want: U},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := inputs(tt.assigned, tt.live)
			if r.Verdict != tt.want {
				t.Fatalf("verdict %s, want %s; differences:\n%s", r.Verdict, tt.want, render(r))
			}
			if tt.wantInReport != "" && !strings.Contains(render(r), tt.wantInReport) {
				t.Errorf("report lacks %q:\n%s", tt.wantInReport, render(r))
			}
			if tt.want != toolcompat.Compatible && len(r.Breaking()) == 0 {
				t.Errorf("verdict %s lists no breaking or undecided difference:\n%s", r.Verdict, render(r))
			}
		})
	}
}

// TestNotUnderstoodIsNeverCompatible changes, adds or removes each
// assertion keyword the checker does not understand in one property's
// schema: the answer is never "compatible".
func TestNotUnderstoodIsNeverCompatible(t *testing.T) {
	keywords := map[string][2]string{
		"$ref":                  {`"#/$defs/a"`, `"#/$defs/b"`},
		"$dynamicRef":           {`"#a"`, `"#b"`},
		"anyOf":                 {`[{"type":"string"}]`, `[{"type":"integer"}]`},
		"oneOf":                 {`[{"type":"string"}]`, `[{"type":"integer"}]`},
		"allOf":                 {`[{"type":"string"}]`, `[{"minLength":2}]`},
		"not":                   {`{"type":"string"}`, `{"type":"integer"}`},
		"if":                    {`{"type":"string"}`, `{"type":"integer"}`},
		"then":                  {`{"minLength":1}`, `{"minLength":2}`},
		"else":                  {`{"minLength":1}`, `{"minLength":2}`},
		"patternProperties":     {`{"^a":{"type":"string"}}`, `{"^a":{"type":"integer"}}`},
		"propertyNames":         {`{"maxLength":3}`, `{"maxLength":2}`},
		"dependentRequired":     {`{"a":["b"]}`, `{"a":["c"]}`},
		"dependentSchemas":      {`{"a":{"required":["b"]}}`, `{"a":{"required":["c"]}}`},
		"dependencies":          {`{"a":["b"]}`, `{"a":["c"]}`},
		"prefixItems":           {`[{"type":"string"}]`, `[{"type":"integer"}]`},
		"contains":              {`{"type":"string"}`, `{"type":"integer"}`},
		"minContains":           {`1`, `2`},
		"maxContains":           {`2`, `1`},
		"additionalItems":       {`true`, `false`},
		"unevaluatedProperties": {`true`, `false`},
		"unevaluatedItems":      {`true`, `false`},
		"nullable":              {`true`, `false`},
		"x-vendor-rule":         {`1`, `2`},
	}
	for k, vals := range keywords {
		for _, pair := range [][2]string{
			{`"` + k + `":` + vals[0], `"` + k + `":` + vals[1]},          // changed
			{`"type":"string"`, `"type":"string","` + k + `":` + vals[1]}, // added
			{`"type":"string","` + k + `":` + vals[0], `"type":"string"`}, // removed
		} {
			assigned := `{"type":"object","properties":{"x":{` + pair[0] + `}}}`
			live := `{"type":"object","properties":{"x":{` + pair[1] + `}}}`
			r := inputs(assigned, live)
			if r.Verdict == toolcompat.Compatible {
				t.Errorf("%s: %s → %s: compatible, want unknown or incompatible", k, pair[0], pair[1])
			}
			// The other direction too.
			if r := inputs(live, assigned); r.Verdict == toolcompat.Compatible {
				t.Errorf("%s: %s → %s: compatible, want unknown or incompatible", k, pair[1], pair[0])
			}
		}
	}
}

// TestUnderstoodKeywordsAreTested keeps the table honest: every keyword
// the checker claims to understand appears in TestSchemas.
func TestUnderstoodKeywordsAreTested(t *testing.T) {
	want := []string{"additionalProperties", "const", "enum", "exclusiveMaximum", "exclusiveMinimum", "format", "items",
		"maxItems", "maxLength", "maxProperties", "maximum", "minItems", "minLength", "minProperties", "minimum",
		"multipleOf", "pattern", "properties", "required", "type", "uniqueItems"}
	if got := toolcompat.Understood(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Understood() = %v, want %v (add table cases for a new keyword)", got, want)
	}
}

// TestCheck compares whole tool definitions: inputs one way, outputs the
// other.
func TestCheck(t *testing.T) {
	def := func(in, out string) string {
		s := `{"name":"get_weather","description":"Weather.","inputSchema":` + in
		if out != "" {
			s += `,"outputSchema":` + out
		}
		return s + `}`
	}
	in := `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`
	out := `{"type":"object","properties":{"city":{"type":"string"},"temp_c":{"type":"integer"}},"required":["city","temp_c"],"additionalProperties":false}`
	tests := []struct {
		name, assigned, live string
		want                 toolcompat.Verdict
		wantInReport         string
	}{
		{name: "same", assigned: def(in, out), live: def(in, out), want: toolcompat.Compatible},
		{name: "description only", assigned: def(in, out), live: strings.Replace(def(in, out), "Weather.", "Current weather.", 1), want: toolcompat.Compatible, wantInReport: "description changed"},
		{name: "output gains a guarantee", assigned: def(in, `{"type":"object"}`), live: def(in, out), want: toolcompat.Compatible},
		{name: "output drops a required property", assigned: def(in, out),
			live: def(in, strings.Replace(out, `"required":["city","temp_c"]`, `"required":["city"]`, 1)), want: toolcompat.Incompatible, wantInReport: `output /properties/temp_c: version 1 requires property "temp_c"`},
		{name: "output adds a property a closed assigned schema refuses", assigned: def(in, out),
			live: def(in, strings.Replace(out, `"temp_c":{"type":"integer"}`, `"temp_c":{"type":"integer"},"wind":{"type":"number"}`, 1)), want: toolcompat.Incompatible, wantInReport: `does not allow property "wind"`},
		{name: "output widened", assigned: def(in, out),
			live: def(in, strings.Replace(out, `"temp_c":{"type":"integer"}`, `"temp_c":{"type":"number"}`, 1)), want: toolcompat.Incompatible, wantInReport: "accepts only integers"},
		{name: "live drops its output schema", assigned: def(in, out), live: def(in, ""), want: toolcompat.Incompatible},
		{name: "assigned promised no output", assigned: def(in, ""), live: def(in, out), want: toolcompat.Compatible},
		{name: "input narrowed", assigned: def(in, out), live: def(strings.Replace(in, `"type":"string"`, `"type":"string","maxLength":3`, 1), out), want: toolcompat.Incompatible, wantInReport: "input /properties/city"},
		{name: "not an object", assigned: def(in, out), live: `[]`, want: toolcompat.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := toolcompat.Check(toolcompat.Side{Label: "version 1", Definition: []byte(tt.assigned)}, toolcompat.Side{Label: "version 2", Definition: []byte(tt.live)})
			if r.Verdict != tt.want {
				t.Fatalf("verdict %s, want %s:\n%s", r.Verdict, tt.want, render(r))
			}
			if tt.wantInReport != "" && !strings.Contains(render(r), tt.wantInReport) {
				t.Errorf("report lacks %q:\n%s", tt.wantInReport, render(r))
			}
		})
	}
}

// TestBounded: a schema nested beyond MaxDepth and one with more nodes
// than MaxNodes are unknown, not compatible.
func TestBounded(t *testing.T) {
	deep := func(leaf string) string {
		s := leaf
		for range toolcompat.MaxDepth + 2 {
			s = `{"type":"object","properties":{"a":` + s + `}}`
		}
		return s
	}
	if r := inputs(deep(`{"type":"string"}`), deep(`{"type":"integer"}`)); r.Verdict != toolcompat.Unknown {
		t.Errorf("deep: %s", r.Verdict)
	}
	var a, b strings.Builder
	a.WriteString(`{"type":"object","properties":{`)
	b.WriteString(`{"type":"object","properties":{`)
	for i := range toolcompat.MaxNodes + 10 {
		if i > 0 {
			a.WriteString(",")
			b.WriteString(",")
		}
		fmt.Fprintf(&a, `"p%d":{"type":"string"}`, i)
		fmt.Fprintf(&b, `"p%d":{"type":"string","title":"t"}`, i)
	}
	a.WriteString("}}")
	b.WriteString("}}")
	r := inputs(a.String(), b.String())
	if r.Verdict != toolcompat.Unknown {
		t.Errorf("wide: %s", r.Verdict)
	}
	if len(r.Differences) > toolcompat.MaxDifferences {
		t.Errorf("%d differences listed, at most %d", len(r.Differences), toolcompat.MaxDifferences)
	}
}

func render(r toolcompat.Report) string {
	var b strings.Builder
	for _, d := range r.Differences {
		b.WriteString(d.String())
		b.WriteString("\n")
	}
	return b.String()
}
