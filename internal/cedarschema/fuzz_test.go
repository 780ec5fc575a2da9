package cedarschema_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/x/exp/schema"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// hostileSchemas are input schemas built to break a naive generator.
func hostileSchemas() map[string]string {
	props := make([]string, 10000)
	for i := range props {
		props[i] = fmt.Sprintf(`"p%d":{"type":"integer"}`, i)
	}
	return map[string]string{
		"deep objects":        nestedObjects(3000),
		"deep arrays":         `{"type":"object","properties":{"a":` + strings.Repeat(`{"type":"array","items":`, 3000) + `{"type":"string"}` + strings.Repeat(`}`, 3000) + `}}`,
		"ten thousand props":  `{"type":"object","properties":{` + strings.Join(props, ",") + `}}`,
		"bogus types":         `{"type":"object","properties":{"a":{"type":{"x":1}},"b":{"type":null},"c":{"type":[]},"d":{"type":"object","properties":[1,2]},"e":{"type":"array","items":"string"},"f":{"type":"object","required":[1,null,{}]}},"required":"all"}`,
		"bogus top level":     `{"type":["object"],"properties":{"a":{"type":"string"}}}`,
		"numbers everywhere":  `[1, 2, 3]`,
		"null":                `null`,
		"string":              `"object"`,
		"nul in names":        `{"type":"object","properties":{"a\u0000b":{"type":"string"},"\ud800":{"type":"string"},"\\\"":{"type":"string"}}}`,
		"control chars":       `{"type":"object","properties":{"\n\t\r":{"type":"string"},"}":{"type":"string"},"a;b":{"type":"string"}}}`,
		"reserved words":      `{"type":"object","properties":{"principal":{"type":"string"},"true":{"type":"boolean"},"in":{"type":"integer"},"has":{"type":"string"},"__cedar":{"type":"string"}}}`,
		"self reference":      `{"type":"object","$defs":{"n":{"$ref":"#/$defs/n"}},"properties":{"n":{"$ref":"#/$defs/n"}}}`,
		"huge required list":  `{"type":"object","properties":{"a":{"type":"string"}},"required":[` + strings.Repeat(`"a",`, 10000) + `"a"]}`,
		"items with schema":   `{"type":"object","properties":{"a":{"type":"array","items":true},"b":{"type":"array","items":{}}}}`,
		"invalid utf-8 names": "{\"type\":\"object\",\"properties\":{\"\xff\xfe\":{\"type\":\"string\"}}}",
	}
}

// checkGenerated asserts what must hold for any successfully generated
// schema: its Cedar text parses and resolves, and a policy over the tool
// validates.
func checkGenerated(t *testing.T, s *cedarschema.Schema) {
	t.Helper()
	var back schema.Schema
	if err := back.UnmarshalCedar(s.Cedar()); err != nil {
		t.Fatalf("generated Cedar text does not parse: %v\n%s", err, s.Cedar())
	}
	if _, err := back.Resolve(); err != nil {
		t.Fatalf("generated Cedar text does not resolve: %v", err)
	}
	if _, err := s.JSON(); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	src := `permit(principal in Team::"t", action == Action::"t__x", resource) when { context.arguments has nope || context.degraded };`
	if _, err := s.ParsePolicies("fuzz", "fuzz.cedar", []byte(src)); err != nil {
		t.Fatalf("policy over the tool refused: %v", err)
	}
}

func TestGenerateHostileSchemas(t *testing.T) {
	for name, in := range hostileSchemas() {
		t.Run(name, func(t *testing.T) {
			s, err := cedarschema.Generate([]cedarschema.Tool{{Action: "t__x", InputSchema: []byte(in)}})
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			checkGenerated(t, s)
		})
	}
}

func FuzzGenerate(f *testing.F) {
	for _, in := range []string{paySchema, issueSchema, ``, `{}`, `{"type":"object"}`, nestedObjects(20)} {
		f.Add([]byte(in))
	}
	for _, in := range hostileSchemas() {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := cedarschema.Generate([]cedarschema.Tool{{Action: "t__x", InputSchema: in}})
		if err != nil {
			return // malformed JSON is refused; it must just not panic
		}
		checkGenerated(t, s)
	})
}
