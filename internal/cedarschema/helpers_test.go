package cedarschema_test

import (
	"errors"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

// paySchema is the input schema of the pay__send fixture tool. Only some of
// its properties can be typed.
const paySchema = `{
	"type": "object",
	"properties": {
		"amount":    {"type": "integer"},
		"price":     {"type": "number"},
		"currency":  {"type": "string"},
		"memo":      {"type": "string"},
		"urgent":    {"type": "boolean"},
		"tags":      {"type": "array", "items": {"type": "string"}},
		"recipient": {"type": "object", "properties": {"iban": {"type": "string"}, "name": {"type": "string"}}, "required": ["iban"]},
		"odd-name":  {"type": "string"},
		"meta":      {"type": "object", "additionalProperties": {"type": "string"}},
		"choice":    {"oneOf": [{"type": "string"}, {"type": "integer"}]},
		"nullable":  {"type": ["string", "null"]},
		"nothing":   {"type": "null"},
		"ref":       {"$ref": "#/$defs/x"},
		"untyped":   {},
		"list":      {"type": "array"}
	},
	"required": ["amount", "price", "currency", "recipient", "choice"]
}`

// issueSchema is the input schema of the github__create_issue fixture tool.
const issueSchema = `{
	"type": "object",
	"properties": {
		"title":  {"type": "string"},
		"body":   {"type": "string"},
		"labels": {"type": "array", "items": {"type": "string"}}
	},
	"required": ["title"]
}`

func fixtureTools() []cedarschema.Tool {
	return []cedarschema.Tool{
		{Action: "pay__send", Upstream: "pay", Name: "send", InputSchema: []byte(paySchema)},
		{Action: "github__create_issue", Upstream: "github", Name: "create_issue", InputSchema: []byte(issueSchema)},
	}
}

func mustGenerate(t testing.TB, tools []cedarschema.Tool) *cedarschema.Schema {
	t.Helper()
	s, err := cedarschema.Generate(tools)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s
}

// diagnostics returns the diagnostics of a *cedarschema.Error, failing the
// test if err is anything else.
func diagnostics(t testing.TB, err error) []cedarschema.Diagnostic {
	t.Helper()
	var e *cedarschema.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *cedarschema.Error", err, err)
	}
	if len(e.Diagnostics) == 0 {
		t.Fatalf("*cedarschema.Error without diagnostics")
	}
	return e.Diagnostics
}
