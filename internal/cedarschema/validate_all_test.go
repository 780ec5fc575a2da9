package cedarschema_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cedarschema"
)

func TestValidateAll(t *testing.T) {
	schemaA := mustGenerate(t, fixtureTools())
	// Schema B: the pay tool's new pin made amount a string.
	schemaB := mustGenerate(t, []cedarschema.Tool{
		{Action: "pay__send", InputSchema: []byte(`{"type":"object","properties":{"amount":{"type":"string"}},"required":["amount"]}`)},
		{Action: "github__create_issue", InputSchema: []byte(issueSchema)},
	})
	sets := map[string]cedarschema.SetSource{
		"payments": {Filename: "payments.cedar", Source: []byte(`permit(principal in Team::"payments", action in Action::"call_tool", resource);

@id("cap")
forbid(principal, action == Action::"pay__send", resource)
  when { context.arguments.amount > 500 };
`)},
		"github": {Filename: "github.cedar", Source: []byte(`permit(principal, action == Action::"github__create_issue", resource) when { context.arguments.title like "bug:*" };`)},
	}
	tests := []struct {
		name   string
		schema *cedarschema.Schema
		sets   map[string]cedarschema.SetSource
		want   []cedarschema.Diagnostic // nil: valid; Message is a substring
	}{
		{name: "valid under A", schema: schemaA, sets: sets},
		{
			name:   "amount became a string under B",
			schema: schemaB,
			sets:   sets,
			want: []cedarschema.Diagnostic{{
				Position: cedarschema.Position{Filename: "payments.cedar", Line: 3, Column: 1},
				PolicyID: "payments/cap",
				Message:  "unexpected type",
			}},
		},
		{
			name:   "problems in several sets, in set order",
			schema: mustGenerate(t, nil),
			sets:   sets,
			want: []cedarschema.Diagnostic{
				{Position: cedarschema.Position{Filename: "github.cedar", Line: 1, Column: 1}, PolicyID: "github/policy0", Message: "unrecognized action `Action::\"github__create_issue\"`"},
				{Position: cedarschema.Position{Filename: "payments.cedar", Line: 3, Column: 1}, PolicyID: "payments/cap", Message: "unrecognized action `Action::\"pay__send\"`"},
			},
		},
		{name: "no sets", schema: schemaB, sets: nil},
		{
			name:   "syntax error",
			schema: schemaA,
			sets:   map[string]cedarschema.SetSource{"broken": {Filename: "broken.cedar", Source: []byte("permit(\n\"")}},
			want:   []cedarschema.Diagnostic{{Position: cedarschema.Position{Filename: "broken.cedar", Line: 2, Column: 1}, Message: "literal not terminated"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cedarschema.ValidateAll(tt.schema, tt.sets)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateAll: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateAll succeeded, want diagnostics")
			}
			got := diagnostics(t, err)
			// Compare the first diagnostic of each expected (position, id).
			var firsts []cedarschema.Diagnostic
			for _, d := range got {
				if len(firsts) == 0 || firsts[len(firsts)-1].Position != d.Position || firsts[len(firsts)-1].PolicyID != d.PolicyID {
					firsts = append(firsts, d)
				}
			}
			if len(firsts) != len(tt.want) {
				t.Fatalf("got diagnostics\n%v\nwant %d policies at fault", err, len(tt.want))
			}
			for i, w := range tt.want {
				g := firsts[i]
				if g.Position != w.Position || g.PolicyID != w.PolicyID || !strings.Contains(g.Message, w.Message) {
					t.Errorf("diagnostic %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestValidateAllWithoutSchema(t *testing.T) {
	if err := cedarschema.ValidateAll(nil, nil); err == nil {
		t.Error("ValidateAll(nil, nil) succeeded")
	}
}
