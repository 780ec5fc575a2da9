package cedarschema_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// argumentsOf returns the "attributes" of the arguments record of action in
// the schema's JSON form.
func argumentsOf(t testing.TB, s *cedarschema.Schema, action string) map[string]any {
	t.Helper()
	raw, err := s.JSON()
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	var doc map[string]struct {
		Actions map[string]struct {
			AppliesTo struct {
				Context struct {
					Attributes map[string]struct {
						Attributes map[string]any `json:"attributes"`
					} `json:"attributes"`
				} `json:"context"`
			} `json:"appliesTo"`
		} `json:"actions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("unmarshal schema JSON: %v", err)
	}
	a, ok := doc[""].Actions[action]
	if !ok {
		t.Fatalf("no action %q in the schema's empty namespace", action)
	}
	args, ok := a.AppliesTo.Context.Attributes["arguments"]
	if !ok {
		t.Fatalf("action %q has no arguments", action)
	}
	if args.Attributes == nil {
		return map[string]any{}
	}
	return args.Attributes
}

func TestInputSchemaTyping(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   string // JSON of the arguments record's attributes
	}{
		{name: "empty input schema", schema: ``, want: `{}`},
		{name: "blank input schema", schema: " \n\t", want: `{}`},
		{name: "top level not an object", schema: `{"type":"string"}`, want: `{}`},
		{name: "top level boolean schema", schema: `true`, want: `{}`},
		{name: "top level without type", schema: `{"properties":{"a":{"type":"string"}}}`, want: `{}`},
		{name: "top level oneOf", schema: `{"type":"object","oneOf":[{}],"properties":{"a":{"type":"string"}}}`, want: `{}`},
		{name: "object without properties", schema: `{"type":"object"}`, want: `{}`},
		{
			name:   "scalars required and optional",
			schema: `{"type":"object","properties":{"i":{"type":"integer"},"n":{"type":"number"},"s":{"type":"string"},"b":{"type":"boolean"}},"required":["i","s"]}`,
			want: `{"i":{"type":"Long"},"n":{"type":"Extension","name":"decimal","required":false},` +
				`"s":{"type":"String"},"b":{"type":"Boolean","required":false}}`,
		},
		{
			name:   "nested object",
			schema: `{"type":"object","properties":{"o":{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"string"}},"required":["x"]}},"required":["o"]}`,
			want:   `{"o":{"type":"Record","attributes":{"x":{"type":"Long"},"y":{"type":"String","required":false}}}}`,
		},
		{
			name:   "object with properties and additionalProperties",
			schema: `{"type":"object","properties":{"o":{"type":"object","properties":{"x":{"type":"integer"}},"additionalProperties":true}}}`,
			want:   `{"o":{"type":"Record","attributes":{"x":{"type":"Long","required":false}},"required":false}}`,
		},
		{
			name:   "empty nested object",
			schema: `{"type":"object","properties":{"o":{"type":"object","additionalProperties":false}}}`,
			want:   `{"o":{"type":"Record","attributes":{},"required":false}}`,
		},
		{
			name:   "arrays",
			schema: `{"type":"object","properties":{"s":{"type":"array","items":{"type":"string"}},"ss":{"type":"array","items":{"type":"array","items":{"type":"integer"}}},"os":{"type":"array","items":{"type":"object","properties":{"k":{"type":"boolean"}},"required":["k"]}}},"required":["s","ss","os"]}`,
			want: `{"s":{"type":"Set","element":{"type":"String"}},` +
				`"ss":{"type":"Set","element":{"type":"Set","element":{"type":"Long"}}},` +
				`"os":{"type":"Set","element":{"type":"Record","attributes":{"k":{"type":"Boolean"}}}}}`,
		},
		{
			name: "untypeable constructs are left out",
			schema: `{"type":"object","properties":{
				"untyped":{},
				"typelist":{"type":["string","null"]},
				"null":{"type":"null"},
				"unknown":{"type":"date"},
				"numbertype":{"type":5},
				"ref":{"$ref":"#/$defs/x"},
				"typedref":{"type":"string","$ref":"#/$defs/x"},
				"oneof":{"oneOf":[{"type":"string"}]},
				"anyof":{"type":"string","anyOf":[{"minLength":1}]},
				"allof":{"allOf":[{"type":"string"}]},
				"not":{"type":"string","not":{"const":"x"}},
				"map":{"type":"object","additionalProperties":{"type":"string"}},
				"patternmap":{"type":"object","patternProperties":{"^x":{"type":"string"}}},
				"noitems":{"type":"array"},
				"tuple":{"type":"array","items":[{"type":"string"}]},
				"badelems":{"type":"array","items":{"oneOf":[]}},
				"notaschema":42,
				"kept":{"type":"string"}
			},"required":["untyped","kept"]}`,
			want: `{"kept":{"type":"String"}}`,
		},
		{
			name:   "names that are not identifiers",
			schema: `{"type":"object","properties":{"odd-name":{"type":"string"},"with space":{"type":"integer"},"ünï":{"type":"boolean"},"quo\"te":{"type":"string"},"":{"type":"string"},"if":{"type":"string"}},"required":["odd-name"]}`,
			want: `{"odd-name":{"type":"String"},"with space":{"type":"Long","required":false},"ünï":{"type":"Boolean","required":false},` +
				`"quo\"te":{"type":"String","required":false},"":{"type":"String","required":false},"if":{"type":"String","required":false}}`,
		},
		{
			name:   "malformed required list",
			schema: `{"type":"object","properties":{"a":{"type":"string"}},"required":"a"}`,
			want:   `{"a":{"type":"String","required":false}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustGenerate(t, []cedarschema.Tool{{Action: "t__x", InputSchema: []byte(tt.schema)}})
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			if got := argumentsOf(t, s, "t__x"); !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.Marshal(got)
				t.Errorf("arguments = %s\nwant %s", gotJSON, tt.want)
			}
		})
	}
}

// nestedObjects returns an input schema whose property "p" is an object
// holding "p" again, n levels deep, ending with an integer "leaf".
func nestedObjects(n int) string {
	var b strings.Builder
	b.WriteString(`{"type":"object","properties":{`)
	for range n {
		b.WriteString(`"p":{"type":"object","required":["p","leaf"],"properties":{`)
	}
	b.WriteString(`"leaf":{"type":"integer"}`)
	for range n {
		b.WriteString(`}}`)
	}
	b.WriteString(`}}`)
	return b.String()
}

// recordDepth counts how many records nest below the arguments record
// through attribute "p".
func recordDepth(attrs map[string]any) int {
	depth := 0
	for {
		p, ok := attrs["p"].(map[string]any)
		if !ok {
			return depth
		}
		depth++
		attrs, _ = p["attributes"].(map[string]any)
	}
}

func TestInputSchemaDepthLimit(t *testing.T) {
	// Nesting beyond encoding/json's own limit (10000) is a malformed input
	// schema, see TestGenerateErrors.
	tests := []struct {
		name   string
		levels int
		want   int
	}{
		{name: "shallow", levels: 3, want: 3},
		{name: "at limit", levels: cedarschema.MaxDepth, want: cedarschema.MaxDepth},
		{name: "beyond limit", levels: cedarschema.MaxDepth + 5, want: cedarschema.MaxDepth},
		{name: "far beyond limit", levels: 2000, want: cedarschema.MaxDepth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustGenerate(t, []cedarschema.Tool{{Action: "t__x", InputSchema: []byte(nestedObjects(tt.levels))}})
			if got := recordDepth(argumentsOf(t, s, "t__x")); got != tt.want {
				t.Errorf("records nest %d deep, want %d", got, tt.want)
			}
		})
	}
}

// countAttributes counts attributes at every level of a JSON schema record.
func countAttributes(attrs map[string]any) int {
	n := 0
	for _, v := range attrs {
		n++
		for v != nil {
			m, _ := v.(map[string]any)
			if inner, ok := m["attributes"].(map[string]any); ok {
				n += countAttributes(inner)
				break
			}
			v = m["element"]
		}
	}
	return n
}

func TestInputSchemaAttributeLimit(t *testing.T) {
	wide := func(n int) string {
		props := make([]string, n)
		for i := range props {
			props[i] = fmt.Sprintf(`"p%05d":{"type":"integer"}`, i)
		}
		return `{"type":"object","properties":{` + strings.Join(props, ",") + `}}`
	}
	wideNested := func(outer, inner int) string {
		props := make([]string, outer)
		for i := range props {
			props[i] = fmt.Sprintf(`"o%03d":{"type":"array","items":%s}`, i, wide(inner))
		}
		return `{"type":"object","properties":{` + strings.Join(props, ",") + `}}`
	}
	tests := []struct {
		name      string
		schema    string
		want      int
		wantFirst string
		wantLast  string
	}{
		{name: "under the cap", schema: wide(10), want: 10, wantFirst: "p00000", wantLast: "p00009"},
		{name: "ten thousand properties", schema: wide(10000), want: cedarschema.MaxAttributes, wantFirst: "p00000", wantLast: fmt.Sprintf("p%05d", cedarschema.MaxAttributes-1)},
		{name: "cap shared across nesting", schema: wideNested(100, 100), want: cedarschema.MaxAttributes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustGenerate(t, []cedarschema.Tool{{Action: "t__x", InputSchema: []byte(tt.schema)}})
			args := argumentsOf(t, s, "t__x")
			if got := countAttributes(args); got != tt.want {
				t.Errorf("%d attributes, want %d", got, tt.want)
			}
			for _, name := range []string{tt.wantFirst, tt.wantLast} {
				if _, ok := args[name]; name != "" && !ok {
					t.Errorf("attribute %q missing", name)
				}
			}
		})
	}
}

// TestInputSchemaUnion types the arguments of a tool whose versions in use
// differ: an attribute missing from any version is optional, one typed
// differently is left out, records and sets merge.
func TestInputSchemaUnion(t *testing.T) {
	tests := []struct {
		name     string
		versions []string
		want     string
	}{
		{
			name:     "one version",
			versions: []string{`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`},
			want:     `{"city":{"type":"String"}}`,
		},
		{
			name: "same schema twice",
			versions: []string{`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`,
				`{"type":"object","properties":{"city":{"type":"string","description":"new text"}},"required":["city"]}`},
			want: `{"city":{"type":"String"}}`,
		},
		{
			name: "property added by a later version is optional",
			versions: []string{`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`,
				`{"type":"object","properties":{"city":{"type":"string"},"units":{"type":"string"}},"required":["city","units"]}`},
			want: `{"city":{"type":"String"},"units":{"type":"String","required":false}}`,
		},
		{
			name: "property removed by a later version is optional",
			versions: []string{`{"type":"object","properties":{"city":{"type":"string"},"amount":{"type":"integer"}},"required":["city","amount"]}`,
				`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`},
			want: `{"city":{"type":"String"},"amount":{"type":"Long","required":false}}`,
		},
		{
			name: "optional in any version is optional",
			versions: []string{`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`,
				`{"type":"object","properties":{"city":{"type":"string"}}}`},
			want: `{"city":{"type":"String","required":false}}`,
		},
		{
			name: "types that differ are left out",
			versions: []string{`{"type":"object","properties":{"amount":{"type":"integer"},"to":{"type":"string"}},"required":["amount","to"]}`,
				`{"type":"object","properties":{"amount":{"type":"number"},"to":{"type":"string"}},"required":["amount","to"]}`},
			want: `{"to":{"type":"String"}}`,
		},
		{
			name: "nested records merge",
			versions: []string{`{"type":"object","properties":{"o":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}},"required":["o"]}`,
				`{"type":"object","properties":{"o":{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"string"}},"required":["x","y"]}},"required":["o"]}`},
			want: `{"o":{"type":"Record","attributes":{"x":{"type":"Long"},"y":{"type":"String","required":false}}}}`,
		},
		{
			name: "sets merge their elements",
			versions: []string{`{"type":"object","properties":{"s":{"type":"array","items":{"type":"object","properties":{"k":{"type":"boolean"}},"required":["k"]}}},"required":["s"]}`,
				`{"type":"object","properties":{"s":{"type":"array","items":{"type":"object","properties":{"k":{"type":"boolean"},"v":{"type":"string"}},"required":["k"]}}},"required":["s"]}`},
			want: `{"s":{"type":"Set","element":{"type":"Record","attributes":{"k":{"type":"Boolean"},"v":{"type":"String","required":false}}}}}`,
		},
		{
			name: "a set and a scalar are left out",
			versions: []string{`{"type":"object","properties":{"s":{"type":"array","items":{"type":"string"}}}}`,
				`{"type":"object","properties":{"s":{"type":"string"}}}`},
			want: `{}`,
		},
		{
			name: "a version without arguments makes everything optional",
			versions: []string{`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`,
				``},
			want: `{"city":{"type":"String","required":false}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := cedarschema.Tool{Action: "t__x", InputSchema: []byte(tt.versions[0])}
			for _, v := range tt.versions[1:] {
				tool.OtherInputSchemas = append(tool.OtherInputSchemas, []byte(v))
			}
			s := mustGenerate(t, []cedarschema.Tool{tool})
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			if got := argumentsOf(t, s, "t__x"); !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.Marshal(got)
				t.Errorf("arguments = %s\nwant %s", gotJSON, tt.want)
			}
		})
	}
	// A malformed schema of another version fails the generation, as the
	// default version's does.
	if _, err := cedarschema.Generate([]cedarschema.Tool{{Action: "t__x", InputSchema: []byte(`{}`), OtherInputSchemas: [][]byte{[]byte(`{"type":`)}}}); err == nil || !strings.Contains(err.Error(), "another version") {
		t.Errorf("malformed other schema: %v", err)
	}
}
